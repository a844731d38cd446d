"""Reviews cannot be forged or censored (issue 15, finding 4): the server writes the author's name and stars from
the caller's profile and rating, whatever the request says; reports count once per account, so one account's
profiles cannot hide a review; the author always sees their own review; a moderator (admin) hides at once."""

from __future__ import annotations

import grpc
import pytest

from marquee.v1 import catalog_pb2 as pb
from marquee.v1 import common_pb2
from tests.catalog.conftest import ADMIN, TOKENS, Catalog, bearer

TITLE = "titles/fargo-1996"
Metadata = tuple[tuple[str, str], ...]


def viewer(account: str, profile: str, name: str = "") -> Metadata:
    token = TOKENS.issue(
        account, profile_id=profile, profile_name=name or None, max_maturity=common_pb2.MATURITY_RATING_ADULT
    )
    return bearer(token.token)


async def _post(catalog: Catalog, md: Metadata, text: str, request_id: str = "", **forged: object) -> pb.Review:
    reply = await catalog.stub.CreateReview(
        pb.CreateReviewRequest(
            parent=TITLE,
            review=pb.Review(text=text, **forged),  # type: ignore[arg-type]
            request_id=request_id,
        ),
        metadata=md,
    )
    review: pb.Review = reply.review
    return review


async def _listed(catalog: Catalog, md: Metadata) -> dict[str, pb.Review]:
    reply = await catalog.stub.ListReviews(pb.ListReviewsRequest(parent=TITLE, page_size=50), metadata=md)
    return {r.name: r for r in reply.reviews}


async def test_the_author_and_stars_come_from_the_callers_profile_and_rating(catalog: Catalog) -> None:
    alex = viewer("acct-a", "p-alex", "Alex")
    forged = await _post(catalog, alex, "Great film.", author_display_name="Marquee Staff (official)", stars=5)
    assert forged.author_display_name == "Alex" and forged.stars == 0, "no rating: no stars"
    assert forged.author == "accounts/acct-a/profiles/p-alex"
    await catalog.stub.RateTitle(pb.RateTitleRequest(name=f"{TITLE}/ratings/p-alex", stars=2), metadata=alex)
    rated = await _post(catalog, alex, "Second thoughts.", stars=5)
    assert rated.stars == 2, "the caller's own rating of the title"
    listed = await _listed(catalog, viewer("acct-b", "p-b"))
    assert {r.author_display_name for r in listed.values()} == {"Alex"}
    assert {r.stars for r in listed.values()} == {0, 2}


async def test_one_accounts_profiles_cannot_hide_another_accounts_review(catalog: Catalog) -> None:
    author = viewer("acct-author", "p-author", "Author")
    review = await _post(catalog, author, "An honest opinion.")
    for profile in ("p1", "p2", "p3", "p4"):
        reply = await catalog.stub.ReportReview(
            pb.ReportReviewRequest(name=review.name, reason="disagree"), metadata=viewer("acct-troll", profile)
        )
        assert reply.state == pb.REVIEW_STATE_VISIBLE
    # the author's own account reporting it does not count either
    await catalog.stub.ReportReview(pb.ReportReviewRequest(name=review.name), metadata=viewer("acct-author", "p-2"))
    assert review.name in await _listed(catalog, viewer("acct-other", "p"))
    # three distinct accounts (the configured threshold: the troll's counted once, and two more) do hide it
    states = []
    for account in ("acct-r1", "acct-r2"):
        reply = await catalog.stub.ReportReview(
            pb.ReportReviewRequest(name=review.name, reason="spam"), metadata=viewer(account, "p")
        )
        states.append(reply.state)
    assert states == [pb.REVIEW_STATE_VISIBLE, pb.REVIEW_STATE_HIDDEN]
    assert review.name not in await _listed(catalog, viewer("acct-other", "p"))
    # ... from everyone but its author, who still sees it, marked hidden
    own = await _listed(catalog, author)
    assert own[review.name].state == pb.REVIEW_STATE_HIDDEN


async def test_a_moderator_hides_a_review_at_once(catalog: Catalog) -> None:
    review = await _post(catalog, viewer("acct-spam", "p", "Spammer"), "Buy cheap watches at ...")
    reply = await catalog.stub.ReportReview(pb.ReportReviewRequest(name=review.name, reason="spam"), metadata=ADMIN)
    assert reply.state == pb.REVIEW_STATE_HIDDEN
    assert review.name not in await _listed(catalog, viewer("acct-other", "p"))
    moderated = await _listed(catalog, ADMIN)  # moderators see hidden reviews, marked
    assert moderated[review.name].state == pb.REVIEW_STATE_HIDDEN


async def test_a_retried_create_with_its_request_id_writes_one_review(catalog: Catalog) -> None:
    """A client that lost the answer retries with the same request_id (to any replica): one review, returned again.
    The id is the profile's own: another profile's same id is another review; another title is refused."""
    alex = viewer("acct-retry", "p-alex", "Alex")
    first = await _post(catalog, alex, "Worth it.", request_id="req-1")
    again = await _post(catalog, alex, "Worth it.", request_id="req-1")
    assert again.name == first.name and again.create_time == first.create_time
    other = await _post(catalog, viewer("acct-retry", "p-sam", "Sam"), "Worth it.", request_id="req-1")
    assert other.name != first.name
    mine = [r for r in (await _listed(catalog, alex)).values() if r.author.startswith("accounts/acct-retry/")]
    assert sorted(r.name for r in mine) == sorted([first.name, other.name])
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await catalog.stub.CreateReview(
            pb.CreateReviewRequest(parent="titles/casablanca-1942", review=pb.Review(text="x"), request_id="req-1"),
            metadata=alex,
        )
    assert reused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "already created a review" in str(reused.value.details())
    with pytest.raises(grpc.aio.AioRpcError) as too_long:
        await _post(catalog, alex, "x", request_id="r" * 65)
    assert too_long.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "request_id" in str(too_long.value.details())
