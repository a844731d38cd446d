"""CatalogService over real gRPC: browse with filters and keyset paging, maturity and region limits in browse and
search, admin writes visible at once, ratings exact under concurrency, reviews, and bad input."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2

from marquee.v1 import catalog_pb2 as pb
from marquee.v1 import common_pb2, encoding_pb2
from services.catalog.titles import MATURITY_VALUE
from services.common.topics import CATALOG_RATING, ENCODING_DONE
from tests.catalog.conftest import ADMIN, ADULT, KIDS, Catalog, profile


async def fails(call: object, code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    assert err.value.code() == code, err.value.details()
    return err.value.details() or ""


async def test_paging_has_no_duplicates_or_gaps_while_titles_are_added(catalog: Catalog) -> None:
    f = pb.TitleFilter(genre="Comedy")
    before = {t for t, r in catalog.view.rows.items() if "Comedy" in r["genres"]}
    seen: list[str] = []
    token = ""
    added = 0
    while True:
        request = pb.ListTitlesRequest(filter=f, order_by=pb.TITLE_ORDER_POPULARITY, page_size=37, page_token=token)
        page = await catalog.stub.ListTitles(request, metadata=ADULT)
        if not token:
            assert page.total_size == len(before)
        seen += [t.name.removeprefix("titles/") for t in page.titles]
        popularity = [t.popularity for t in page.titles]
        assert popularity == sorted(popularity, reverse=True)
        # titles keep arriving between pages
        title = pb.Title(
            display_name=f"New Comedy {added}",
            type=pb.TITLE_TYPE_MOVIE,
            maturity_rating=common_pb2.MATURITY_RATING_PG,
            genres=["Comedy"],
            release_year=2020,
        )
        await catalog.stub.CreateTitle(pb.CreateTitleRequest(title=title), metadata=ADMIN)
        added += 1
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)), "no title twice"
    assert before <= set(seen), "no title that was there all along is missed"


async def test_orders_and_filters(catalog: Catalog) -> None:
    f = pb.TitleFilter(min_year=1990, max_year=1995, genre="Drama")
    by_year = await catalog.stub.ListTitles(
        pb.ListTitlesRequest(filter=f, order_by=pb.TITLE_ORDER_RELEASE_YEAR, page_size=100), metadata=ADULT
    )
    years = [t.release_year for t in by_year.titles]
    assert years == sorted(years, reverse=True) and all(1990 <= y <= 1995 for y in years)
    assert all("Drama" in t.genres for t in by_year.titles)
    by_name = await catalog.stub.ListTitles(
        pb.ListTitlesRequest(order_by=pb.TITLE_ORDER_DISPLAY_NAME, page_size=50), metadata=ADULT
    )
    names = [t.display_name.casefold() for t in by_name.titles]
    assert names == sorted(names)
    genres = await catalog.stub.ListGenres(pb.ListGenresRequest(), metadata=ADULT)
    assert {"Comedy", "Drama", "Film-Noir", "Sci-Fi"} <= set(genres.genres)


async def test_maturity_and_region_limits_in_browse_and_search(catalog: Catalog) -> None:
    kids_limit = common_pb2.MATURITY_RATING_KIDS_7
    page = await catalog.stub.ListTitles(pb.ListTitlesRequest(page_size=1000), metadata=KIDS)
    assert page.titles and all(t.maturity_rating <= kids_limit for t in page.titles)
    assert page.total_size == sum(
        MATURITY_VALUE[r["maturity_rating"]] <= kids_limit for r in catalog.view.rows.values()
    )
    found = await catalog.stub.SearchTitles(pb.SearchTitlesRequest(query="godfather"), metadata=KIDS)
    assert all(r.title.maturity_rating <= kids_limit for r in found.results)
    assert "The Godfather" not in {r.title.display_name for r in found.results}
    adult = await catalog.stub.SearchTitles(pb.SearchTitlesRequest(query="godfather"), metadata=ADULT)
    godfather = adult.results[0].title
    assert godfather.display_name == "The Godfather" and godfather.maturity_rating > kids_limit
    await fails(
        catalog.stub.GetTitle(pb.GetTitleRequest(name=godfather.name), metadata=KIDS), grpc.StatusCode.NOT_FOUND
    )
    rows = await catalog.stub.ListBrowseRows(pb.ListBrowseRowsRequest(max_rows=5, titles_per_row=10), metadata=KIDS)
    assert rows.rows and all(t.maturity_rating <= kids_limit for row in rows.rows for t in row.titles)
    # region: only titles licensed in JP (or everywhere), in browse and in search
    region = pb.TitleFilter(region="JP")
    jp = await catalog.stub.ListTitles(pb.ListTitlesRequest(filter=region, page_size=1000), metadata=ADULT)
    assert all(not t.licensed_regions or "JP" in t.licensed_regions for t in jp.titles)
    elsewhere = [r for r in catalog.view.rows.values() if r["licensed_regions"] and "JP" not in r["licensed_regions"]]
    assert elsewhere, "the demo catalog has region-limited titles"
    hidden = elsewhere[0]
    search = await catalog.stub.SearchTitles(
        pb.SearchTitlesRequest(query=hidden["display_name"], filter=region, page_size=50), metadata=ADULT
    )
    assert hidden["title_id"] not in {r.title.name.removeprefix("titles/") for r in search.results}
    anywhere = await catalog.stub.SearchTitles(
        pb.SearchTitlesRequest(query=hidden["display_name"], page_size=50), metadata=ADULT
    )
    assert hidden["title_id"] in {r.title.name.removeprefix("titles/") for r in anywhere.results}


async def test_admin_writes_are_searchable_at_once(catalog: Catalog) -> None:
    title = pb.Title(
        display_name="Spider-Man",
        type=pb.TITLE_TYPE_MOVIE,
        maturity_rating=common_pb2.MATURITY_RATING_TEEN_13,
        genres=["Action"],
        release_year=2002,
        cast=[pb.Person(display_name="Tobey Maguire", character="Peter Parker")],
        artwork=pb.Artwork(poster_uri="https://images.example/spider-man.jpg"),
    )
    created = (await catalog.stub.CreateTitle(pb.CreateTitleRequest(title=title), metadata=ADMIN)).title
    assert created.name == "titles/spider-man-2002"
    assert created.artwork.poster_uri == "https://images.example/spider-man.jpg"
    for query in ("spider man", "spiderman", "Spider-Man", "spider-m"):
        reply = await catalog.stub.SearchTitles(pb.SearchTitlesRequest(query=query, page_size=3), metadata=ADULT)
        assert reply.results[0].title.name == created.name, query
    by_cast = await catalog.stub.SearchTitles(
        pb.SearchTitlesRequest(query="tobey maguire", page_size=3), metadata=ADULT
    )
    ours = [r for r in by_cast.results if r.title.name == created.name]
    assert ours and "cast" in ours[0].matched_fields
    await fails(
        catalog.stub.CreateTitle(pb.CreateTitleRequest(title=title), metadata=ADMIN), grpc.StatusCode.ALREADY_EXISTS
    )
    renamed = pb.Title(name=created.name, display_name="The Amazing Spider-Man", etag=created.etag)
    mask = field_mask_pb2.FieldMask(paths=["display_name"])
    updated = (
        await catalog.stub.UpdateTitle(pb.UpdateTitleRequest(title=renamed, update_mask=mask), metadata=ADMIN)
    ).title
    assert updated.display_name == "The Amazing Spider-Man" and updated.genres == ["Action"]
    reply = await catalog.stub.SearchTitles(pb.SearchTitlesRequest(query="amazing spid"), metadata=ADULT)
    assert reply.results[0].title.name == created.name
    stale = pb.UpdateTitleRequest(
        title=pb.Title(name=created.name, description="x", etag=created.etag),
        update_mask=pb.UpdateTitleRequest().update_mask,
    )
    stale.update_mask.paths.append("description")
    await fails(catalog.stub.UpdateTitle(stale, metadata=ADMIN), grpc.StatusCode.FAILED_PRECONDITION)
    await fails(
        catalog.stub.UpdateTitle(
            pb.UpdateTitleRequest(title=renamed, update_mask=field_mask_pb2.FieldMask(paths=["popularity"])),
            metadata=ADMIN,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    await catalog.stub.DeleteTitle(pb.DeleteTitleRequest(name=created.name), metadata=ADMIN)
    reply = await catalog.stub.SearchTitles(pb.SearchTitlesRequest(query="amazing spider man"), metadata=ADULT)
    assert created.name not in {r.title.name for r in reply.results}
    await fails(catalog.stub.GetTitle(pb.GetTitleRequest(name=created.name), metadata=ADULT), grpc.StatusCode.NOT_FOUND)
    await fails(
        catalog.stub.CreateTitle(pb.CreateTitleRequest(title=title), metadata=ADULT), grpc.StatusCode.PERMISSION_DENIED
    )


async def test_shows_with_seasons_and_episodes(catalog: Catalog) -> None:
    show = pb.Title(
        display_name="Night Harbour",
        type=pb.TITLE_TYPE_SHOW,
        maturity_rating=common_pb2.MATURITY_RATING_TEEN_13,
        genres=["Drama"],
        release_year=2021,
        seasons=[
            pb.Season(number=2, episodes=[pb.Episode(number=1, display_name="Return")]),
            pb.Season(
                number=1,
                episodes=[
                    pb.Episode(number=2, display_name="The Tide", title="titles/night-harbour-s1e2"),
                    pb.Episode(number=1, display_name="Arrival", title="titles/night-harbour-s1e1"),
                ],
            ),
        ],
    )
    created = (await catalog.stub.CreateTitle(pb.CreateTitleRequest(title=show), metadata=ADMIN)).title
    assert [s.number for s in created.seasons] == [1, 2]
    assert [e.display_name for e in created.seasons[0].episodes] == ["Arrival", "The Tide"]
    episode = pb.Title(
        display_name="Arrival",
        type=pb.TITLE_TYPE_EPISODE,
        maturity_rating=common_pb2.MATURITY_RATING_TEEN_13,
        series=created.name,
    )
    await catalog.stub.CreateTitle(pb.CreateTitleRequest(title=episode, title_id="night-harbour-s1e1"), metadata=ADMIN)
    shows = await catalog.stub.ListTitles(
        pb.ListTitlesRequest(filter=pb.TitleFilter(type=pb.TITLE_TYPE_SHOW)), metadata=ADULT
    )
    assert [t.name for t in shows.titles] == [created.name]
    got = (await catalog.stub.GetTitle(pb.GetTitleRequest(name="titles/night-harbour-s1e1"), metadata=ADULT)).title
    assert got.series == created.name and got.type == pb.TITLE_TYPE_EPISODE
    duplicate = pb.Title(
        display_name="Broken",
        type=pb.TITLE_TYPE_SHOW,
        maturity_rating=common_pb2.MATURITY_RATING_PG,
        seasons=[pb.Season(number=1), pb.Season(number=1)],
    )
    await fails(
        catalog.stub.CreateTitle(pb.CreateTitleRequest(title=duplicate), metadata=ADMIN),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


async def test_ratings_stay_exact_under_concurrent_writes(catalog: Catalog) -> None:
    title = "titles/fargo-1996"
    events = await catalog.bus.subscribe(CATALOG_RATING, "test", "t1")
    stars = {n: 1 + n % 5 for n in range(50)}

    async def rate(n: int, s: int) -> None:
        name = f"{title}/ratings/p{n}"
        await catalog.stub.RateTitle(pb.RateTitleRequest(name=name, stars=s), metadata=profile(n))

    await asyncio.gather(*(rate(n, s) for n, s in stars.items()))
    summary = (await catalog.stub.GetRatingSummary(pb.GetRatingSummaryRequest(title=title), metadata=ADULT)).summary
    assert summary.count == 50
    assert summary.average == pytest.approx(sum(stars.values()) / 50)
    assert list(summary.histogram) == [sum(1 for s in stars.values() if s == k) for k in range(1, 6)]
    # everyone changes their mind at once: a new rating replaces the old one
    changed = {n: 6 - s for n, s in stars.items()}
    await asyncio.gather(*(rate(n, s) for n, s in changed.items()))
    summary = (await catalog.stub.GetRatingSummary(pb.GetRatingSummaryRequest(title=title), metadata=ADULT)).summary
    assert summary.count == 50
    assert list(summary.histogram) == [sum(1 for s in changed.values() if s == k) for k in range(1, 6)]
    got = await catalog.stub.GetRating(pb.GetRatingRequest(name=f"{title}/ratings/p7"), metadata=profile(7))
    assert got.rating.stars == changed[7]
    await catalog.stub.DeleteRating(pb.DeleteRatingRequest(name=f"{title}/ratings/p7"), metadata=profile(7))
    summary = (await catalog.stub.GetRatingSummary(pb.GetRatingSummaryRequest(title=title), metadata=ADULT)).summary
    assert summary.count == 49
    received = []
    while (message := await events.next(timeout=1.0)) is not None:
        received.append(pb.TitleRatedEvent.FromString(message.payload))
        await events.ack(message)
    assert len(received) == 101 and {e.title for e in received} == {title}
    assert received[-1].stars == 0 and received[-1].previous_stars == changed[7]
    title_pb = (await catalog.stub.GetTitle(pb.GetTitleRequest(name=title), metadata=ADULT)).title
    assert title_pb.rating_summary.count == 49
    # bad input and other profiles
    for bad in (0, 6):
        await fails(rate(1, bad), grpc.StatusCode.INVALID_ARGUMENT)
    await fails(
        catalog.stub.RateTitle(pb.RateTitleRequest(name=f"{title}/ratings/p2", stars=3), metadata=profile(1)),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    await fails(
        catalog.stub.RateTitle(pb.RateTitleRequest(name="titles/nope/ratings/p1", stars=3), metadata=profile(1)),
        grpc.StatusCode.NOT_FOUND,
    )


async def test_reviews_newest_first_paged_and_hidden_after_reports(catalog: Catalog) -> None:
    parent = "titles/casablanca-1942"
    names = []
    for i in range(7):
        review = pb.Review(text=f"Review number {i}")
        created = await catalog.stub.CreateReview(
            pb.CreateReviewRequest(parent=parent, review=review), metadata=profile(i)
        )
        names.append(created.review.name)
        assert created.review.author == f"accounts/acct-{i}/profiles/p{i}"
    texts: list[str] = []
    token = ""
    while True:
        page = await catalog.stub.ListReviews(
            pb.ListReviewsRequest(parent=parent, page_size=3, page_token=token), metadata=ADULT
        )
        texts += [r.text for r in page.reviews]
        token = page.next_page_token
        if not token:
            break
    assert texts == [f"Review number {i}" for i in reversed(range(7))]
    target = names[3]
    states = []
    for reporter in (10, 11, 11, 12):  # one report per account: 11's second report does not count
        reply = await catalog.stub.ReportReview(
            pb.ReportReviewRequest(name=target, reason="spoilers"), metadata=profile(reporter)
        )
        states.append(reply.state)
    assert states == [pb.REVIEW_STATE_VISIBLE, pb.REVIEW_STATE_VISIBLE, pb.REVIEW_STATE_VISIBLE, pb.REVIEW_STATE_HIDDEN]
    page = await catalog.stub.ListReviews(pb.ListReviewsRequest(parent=parent, page_size=50), metadata=ADULT)
    assert target not in {r.name for r in page.reviews} and len(page.reviews) == 6
    await fails(
        catalog.stub.DeleteReview(pb.DeleteReviewRequest(name=names[0]), metadata=profile(1)),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    await catalog.stub.DeleteReview(pb.DeleteReviewRequest(name=names[0]), metadata=profile(0))
    too_long = pb.Review(text="x" * 5001)
    await fails(
        catalog.stub.CreateReview(pb.CreateReviewRequest(parent=parent, review=too_long), metadata=profile(1)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    await fails(
        catalog.stub.CreateReview(pb.CreateReviewRequest(parent=parent, review=pb.Review(text="hi")), metadata=ADMIN),
        grpc.StatusCode.PERMISSION_DENIED,
    )


async def test_bad_input_gets_clear_errors(catalog: Catalog) -> None:
    stub = catalog.stub
    for query in ("", "   ", "x" * 10_000, "!!! ???"):
        await fails(
            stub.SearchTitles(pb.SearchTitlesRequest(query=query), metadata=ADULT), grpc.StatusCode.INVALID_ARGUMENT
        )
    for f in (
        pb.TitleFilter(min_year=2000, max_year=1990),
        pb.TitleFilter(min_year=12),
        pb.TitleFilter(region="usa"),
        pb.TitleFilter(max_maturity=99),  # type: ignore[arg-type]
        pb.TitleFilter(type=42),  # type: ignore[arg-type]
        pb.TitleFilter(genre="g" * 100),
    ):
        await fails(stub.ListTitles(pb.ListTitlesRequest(filter=f), metadata=ADULT), grpc.StatusCode.INVALID_ARGUMENT)
        await fails(
            stub.SearchTitles(pb.SearchTitlesRequest(query="star", filter=f), metadata=ADULT),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
    comedy = await stub.ListTitles(
        pb.ListTitlesRequest(filter=pb.TitleFilter(genre="Comedy"), page_size=5), metadata=ADULT
    )
    details = await fails(
        stub.ListTitles(
            pb.ListTitlesRequest(filter=pb.TitleFilter(genre="Drama"), page_size=5, page_token=comedy.next_page_token),
            metadata=ADULT,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "page_token" in details
    searched = await stub.SearchTitles(pb.SearchTitlesRequest(query="star", page_size=2), metadata=ADULT)
    await fails(
        stub.SearchTitles(pb.SearchTitlesRequest(query="love", page_token=searched.next_page_token), metadata=ADULT),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    await fails(
        stub.ListTitles(pb.ListTitlesRequest(page_token="garbage"), metadata=ADULT), grpc.StatusCode.INVALID_ARGUMENT
    )
    await fails(stub.GetTitle(pb.GetTitleRequest(name="movies/x"), metadata=ADULT), grpc.StatusCode.INVALID_ARGUMENT)
    await fails(
        stub.GetTitle(pb.GetTitleRequest(name="titles/no-such-title"), metadata=ADULT), grpc.StatusCode.NOT_FOUND
    )
    await fails(stub.ListTitles(pb.ListTitlesRequest()), grpc.StatusCode.UNAUTHENTICATED)
    await fails(
        stub.BatchGetTitles(pb.BatchGetTitlesRequest(names=["titles/x"] * 501), metadata=ADULT),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    nothing = await stub.SearchTitles(pb.SearchTitlesRequest(query="godfahter parrt"), metadata=ADULT)
    assert nothing.results or nothing.suggestions


async def test_suggestions_when_nothing_matches(catalog: Catalog) -> None:
    reply = await catalog.stub.SearchTitles(pb.SearchTitlesRequest(query="casablanqua"), metadata=ADULT)
    if not reply.results:
        assert "Casablanca" in reply.suggestions
    else:
        assert reply.results[0].title.display_name == "Casablanca"
    none = await catalog.stub.SearchTitles(pb.SearchTitlesRequest(query="qqqqzzzzxxxx"), metadata=ADULT)
    assert not none.results


async def test_encoding_done_makes_titles_playable_in_browse(catalog: Catalog) -> None:
    playable = pb.TitleFilter(playable_only=True)
    assert (await catalog.stub.ListTitles(pb.ListTitlesRequest(filter=playable), metadata=ADULT)).total_size == 0
    event = encoding_pb2.EncodingDoneEvent(title="titles/bikes", media_path="bikes", heights=[720])
    await catalog.bus.publish(ENCODING_DONE, event.SerializeToString())
    expected = sum(r["media_id"] == "bikes" for r in catalog.view.rows.values())
    for _ in range(200):
        reply = await catalog.stub.ListTitles(pb.ListTitlesRequest(filter=playable, page_size=1), metadata=ADULT)
        if reply.total_size == expected:
            break
        await asyncio.sleep(0.05)
    assert reply.total_size == expected and reply.titles[0].playable
    assert reply.titles[0].artwork.thumbnail_uri == "/v/bikes/thumbnail.jpg"
    found = await catalog.stub.SearchTitles(
        pb.SearchTitlesRequest(query=reply.titles[0].display_name, filter=playable), metadata=ADULT
    )
    assert found.results and all(r.title.playable for r in found.results)


async def test_a_crash_between_rating_and_summary_is_repaired_at_start(
    tmp_path: Path, store_kind: str, request: pytest.FixtureRequest
) -> None:
    from services.catalog.ratings import Ratings
    from services.catalog.schema import PENDING_TITLES, RATING_OPS, RATINGS, SCHEMA, bucket_of
    from services.common.bus.memory import InMemoryBus
    from tests.cql import open_test_store

    store = await open_test_store(store_kind, tmp_path, request, "crash")
    await store.migrate(SCHEMA)
    ratings = Ratings(store, InMemoryBus())
    await ratings.rate("fargo-1996", "p1", "a1", 5)
    # what a process killed after the rating write, before the summary update, leaves behind
    await store.insert(RATING_OPS, {"title_id": "fargo-1996", "op_id": "op-1"})
    await store.insert(PENDING_TITLES, {"bucket": bucket_of("fargo-1996"), "title_id": "fargo-1996"})
    await store.insert(
        RATINGS, {"title_id": "fargo-1996", "profile_id": "p2", "account_id": "a2", "stars": 3, "update_time": 1}
    )
    assert (await ratings.summary("fargo-1996")).count == 1
    assert await Ratings(store, InMemoryBus()).repair() == ["fargo-1996"]
    summary = await ratings.summary("fargo-1996")
    assert (summary.count, summary.total, summary.histogram) == (2, 8, (0, 0, 1, 0, 1))
    assert await ratings.repair() == [], "nothing left to repair"
    await store.close()
