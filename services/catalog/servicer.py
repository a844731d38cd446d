"""CatalogService over gRPC: titles (browse, get, admin writes), search, ratings and reviews.

Every call needs an access token. What a caller sees is limited by its profile's maturity limit (a claim of the
token) and by the request's filter; titles above the limit are NOT_FOUND for that caller."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc

from marquee.v1 import catalog_pb2, catalog_pb2_grpc
from services.catalog import reviews as review_rows
from services.catalog.availability import Availability
from services.catalog.demo import slug
from services.catalog.ratings import RATING, Ratings
from services.catalog.reviews import REVIEW, Reviews
from services.catalog.schema import TITLES, TITLES_BY_BUCKET, TITLES_BY_MEDIA, bucket_of
from services.catalog.titles import (
    MATURITY_VALUE,
    TITLE,
    TITLE_ID,
    UPDATABLE,
    TitleFilter,
    fields_from_pb,
    parse_filter,
    words_of,
)
from services.catalog.view import ORDERS, CatalogView
from services.common.auth import current_principal, require_admin
from services.common.bus.port import EventBus
from services.common.context import Principal
from services.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from services.common.ids import now_micros
from services.common.paging import PageTokens, page_size, query_fingerprint
from services.common.store.port import Store
from services.common.topics import CATALOG_TITLE

SERVICE_NAME = catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"].full_name
Context = grpc.aio.ServicerContext[Any, Any]
MAX_BATCH = 500
MAX_QUERY_CHARS = 200
SUGGESTIONS = 3


def _slug_id(display_name: str, year: int) -> str:
    return slug(f"{display_name} {year}" if year else display_name)


def matched_fields(words: list[str], fields: dict[str, frozenset[str]]) -> list[str]:
    """Which fields a result matched: a whole query word, or a prefix of the word being typed (the last)."""
    wanted = frozenset(words)
    last = words[-1] if words and len(words[-1]) >= 2 else None
    return [
        name
        for name, have in fields.items()
        if wanted & have or (last is not None and any(w.startswith(last) for w in have))
    ]


class CatalogServicer(catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(
        self,
        store: Store,
        bus: EventBus,
        view: CatalogView,
        ratings: Ratings,
        reviews: Reviews,
        page_tokens: PageTokens,
        max_page: int,
    ) -> None:
        self._store = store
        self._bus = bus
        self._view = view
        self._ratings = ratings
        self._reviews = reviews
        self._tokens = page_tokens
        self._max_page = max_page

    # --- helpers --------------------------------------------------------------------------------------------

    def _visible(self, principal: Principal, title_id: str) -> dict[str, Any]:
        row = self._view.rows.get(title_id)
        if row is None or (
            principal.max_maturity is not None
            and MATURITY_VALUE.get(row["maturity_rating"], 6) > principal.max_maturity
        ):
            raise NotFound(f"title titles/{title_id} does not exist", reason="TITLE_NOT_FOUND")
        return row

    def _title_id(self, name: str, field: str = "name") -> str:
        return TITLE.parse(name, field)["title"]

    async def _title_pb(self, row: dict[str, Any]) -> catalog_pb2.Title:
        """A title with its rating summary (Get and BatchGet; lists and search leave the summary out)."""
        title = catalog_pb2.Title()
        title.CopyFrom(self._view.title(row["title_id"]))
        title.rating_summary.CopyFrom((await self._ratings.summary(row["title_id"])).to_pb())
        return title

    async def _changed(self, title_id: str, deleted: bool = False) -> None:
        event = catalog_pb2.TitleChangedEvent(title=TITLE.format(title=title_id), deleted=deleted)
        await self._bus.publish(CATALOG_TITLE, event.SerializeToString(), key=title_id)

    async def _written(self, title_id: str) -> catalog_pb2.Title:
        """After a write: the view and index updated, other replicas told, the stored title returned."""
        row = await self._view.refresh(title_id)
        await self._changed(title_id)
        if row is None:
            raise NotFound(f"title titles/{title_id} was deleted meanwhile", reason="TITLE_NOT_FOUND")
        return await self._title_pb(row)

    def _profile(self, principal: Principal, profile_id: str) -> None:
        if principal.is_admin:
            return
        if principal.profile_id is None:
            raise PermissionDenied("select a profile first: this call acts for a profile")
        if principal.profile_id != profile_id:
            raise PermissionDenied("the caller's token is for another profile")

    # --- titles ---------------------------------------------------------------------------------------------

    async def GetTitle(self, request: catalog_pb2.GetTitleRequest, context: Context) -> catalog_pb2.GetTitleResponse:
        row = self._visible(current_principal(), self._title_id(request.name))
        return catalog_pb2.GetTitleResponse(title=await self._title_pb(row))

    async def BatchGetTitles(
        self, request: catalog_pb2.BatchGetTitlesRequest, context: Context
    ) -> catalog_pb2.BatchGetTitlesResponse:
        if len(request.names) > MAX_BATCH:
            raise InvalidArgument(f"at most {MAX_BATCH} names", field_name="names")
        principal = current_principal()
        out = []
        for i, name in enumerate(request.names):
            try:
                out.append(await self._title_pb(self._visible(principal, self._title_id(name, f"names[{i}]"))))
            except NotFound:
                continue
        return catalog_pb2.BatchGetTitlesResponse(titles=out)

    async def ListTitles(
        self, request: catalog_pb2.ListTitlesRequest, context: Context
    ) -> catalog_pb2.ListTitlesResponse:
        principal = current_principal()
        f = parse_filter(request.filter, principal.max_maturity)
        order = request.order_by or catalog_pb2.TITLE_ORDER_POPULARITY
        if order not in ORDERS:
            raise InvalidArgument(f"order_by {order} is not a TitleOrder", field_name="order_by")
        size = page_size(request.page_size, default=20, maximum=self._max_page)
        fingerprint = query_fingerprint({"filter": f.index_json(), "order": order})
        state = self._tokens.decode(request.page_token, fingerprint)
        after = tuple(json.loads(state)) if state else None
        rows, last = self._view.page(f, order, size, after)
        token = self._tokens.encode(json.dumps(list(last)).encode() if last is not None else None, fingerprint)
        titles = [self._view.title(r["title_id"]) for r in rows]
        return catalog_pb2.ListTitlesResponse(titles=titles, next_page_token=token, total_size=self._view.count(f))

    async def CreateTitle(
        self, request: catalog_pb2.CreateTitleRequest, context: Context
    ) -> catalog_pb2.CreateTitleResponse:
        require_admin()
        values = fields_from_pb(request.title, ("display_name", "type", "maturity_rating"))
        values |= fields_from_pb(request.title, UPDATABLE - {"display_name", "type", "maturity_rating"})
        title_id = request.title_id or _slug_id(values["display_name"], values["release_year"])
        if not TITLE_ID.match(title_id):
            raise InvalidArgument("title_id must be 1-63 characters of [a-z0-9-]", field_name="title_id")
        now = now_micros()
        row = {
            "title_id": title_id,
            **values,
            "popularity": 0.0,
            "media_id": title_id,
            "playable": False,
            "source": "admin",
            "create_time": now,
            "update_time": now,
        }
        if not await self._store.insert(TITLES, row, if_not_exists=True):
            raise AlreadyExists(f"title titles/{title_id} already exists")
        await self._store.insert(TITLES_BY_BUCKET, {"bucket": bucket_of(title_id), "title_id": title_id})
        # the title plays the asset of the same id (`marquee ingest FILE --title ID`): playable if already encoded
        await self._store.insert(TITLES_BY_MEDIA, {"media_id": title_id, "title_id": title_id})
        await Availability(self._store).refresh(title_id)
        return catalog_pb2.CreateTitleResponse(title=await self._written(title_id))

    async def UpdateTitle(
        self, request: catalog_pb2.UpdateTitleRequest, context: Context
    ) -> catalog_pb2.UpdateTitleResponse:
        require_admin()
        title_id = self._title_id(request.title.name, "title.name")
        paths = list(request.update_mask.paths)
        if not paths:
            raise InvalidArgument("update_mask names no field", field_name="update_mask")
        values = fields_from_pb(request.title, paths)
        current = await self._store.get(TITLES, {"title_id": title_id})
        if current is None:
            raise NotFound(f"title titles/{title_id} does not exist", reason="TITLE_NOT_FOUND")
        if request.title.etag and request.title.etag != str(current["update_time"]):
            raise FailedPrecondition(
                "the title changed since it was read (etag mismatch)", reason="CONCURRENT_MODIFICATION"
            )
        values["update_time"] = max(now_micros(), current["update_time"] + 1)
        if not await self._store.update(
            TITLES, {"title_id": title_id}, values, if_={"update_time": current["update_time"]}
        ):
            raise FailedPrecondition(
                "the title changed during the update; read it again", reason="CONCURRENT_MODIFICATION"
            )
        return catalog_pb2.UpdateTitleResponse(title=await self._written(title_id))

    async def DeleteTitle(
        self, request: catalog_pb2.DeleteTitleRequest, context: Context
    ) -> catalog_pb2.DeleteTitleResponse:
        require_admin()
        title_id = self._title_id(request.name)
        if not await self._store.delete(TITLES, {"title_id": title_id}, if_exists=True):
            raise NotFound(f"title titles/{title_id} does not exist", reason="TITLE_NOT_FOUND")
        await self._store.delete(TITLES_BY_BUCKET, {"bucket": bucket_of(title_id), "title_id": title_id})
        await self._view.remove(title_id)
        await self._changed(title_id, deleted=True)
        return catalog_pb2.DeleteTitleResponse()

    async def ListGenres(
        self, request: catalog_pb2.ListGenresRequest, context: Context
    ) -> catalog_pb2.ListGenresResponse:
        current_principal()
        return catalog_pb2.ListGenresResponse(genres=self._view.genres())

    async def ListBrowseRows(
        self, request: catalog_pb2.ListBrowseRowsRequest, context: Context
    ) -> catalog_pb2.ListBrowseRowsResponse:
        principal = current_principal()
        if not 0 <= request.max_rows <= 50 or not 0 <= request.titles_per_row <= 50:
            raise InvalidArgument("max_rows and titles_per_row must be between 0 (default) and 50")
        base = parse_filter(catalog_pb2.TitleFilter(region=request.region), principal.max_maturity)
        max_rows, per_row = request.max_rows or 10, request.titles_per_row or 20
        weight: dict[str, float] = {}
        for row in self._view.rows.values():
            if base.matches(row):
                for g in row["genres"]:
                    weight[g] = weight.get(g, 0.0) + (row["popularity"] or 0.0)
        rows = []
        for genre in sorted(weight, key=lambda g: (-weight[g], g))[:max_rows]:
            f = TitleFilter(genre=genre, max_maturity=base.max_maturity, region=base.region)
            titles, _ = self._view.page(f, catalog_pb2.TITLE_ORDER_POPULARITY, per_row, None)
            row_titles = [self._view.title(t["title_id"]) for t in titles]
            rows.append(catalog_pb2.BrowseRow(genre=genre, display_name=genre, titles=row_titles))
        return catalog_pb2.ListBrowseRowsResponse(rows=rows)

    # --- search ---------------------------------------------------------------------------------------------

    async def SearchTitles(
        self, request: catalog_pb2.SearchTitlesRequest, context: Context
    ) -> catalog_pb2.SearchTitlesResponse:
        principal = current_principal()
        query = request.query.strip()
        if not query:
            raise InvalidArgument("query is required", field_name="query")
        if len(request.query) > MAX_QUERY_CHARS:
            raise InvalidArgument(f"query is longer than {MAX_QUERY_CHARS} characters", field_name="query")
        f = parse_filter(request.filter, principal.max_maturity)
        size = page_size(request.page_size, default=20, maximum=self._max_page)
        fingerprint = query_fingerprint({"query": query, "filter": f.index_json()})
        state = self._tokens.decode(request.page_token, fingerprint)
        offset = int(state.decode()) if state else 0
        filter_json = json.dumps(f.index_json())
        try:
            # off the event loop: the index releases the GIL, so searches use the other cores
            hits, total = await asyncio.to_thread(self._view.index.search, request.query, filter_json, size, offset)
        except ValueError as exc:  # InvalidArgumentError: nothing searchable in the query
            raise InvalidArgument(str(exc).removeprefix("invalid argument: "), field_name="query") from None
        words = words_of(query)
        results = [
            catalog_pb2.SearchResult(
                title=self._view.title(title_id),
                score=score,
                matched_fields=matched_fields(words, self._view.words(title_id)),
            )
            for title_id, score in hits
            if title_id in self._view.rows
        ]
        suggestions: list[str] = []
        if not results and offset == 0:
            seen: set[str] = set()
            for title_id in self._view.index.suggest(request.query, filter_json, SUGGESTIONS):
                name = self._view.rows[title_id]["display_name"] if title_id in self._view.rows else None
                if name and name not in seen:
                    seen.add(name)
                    suggestions.append(name)
        more = offset + len(hits) < total
        token = self._tokens.encode(str(offset + size).encode() if more else None, fingerprint)
        return catalog_pb2.SearchTitlesResponse(results=results, suggestions=suggestions, next_page_token=token)

    # --- ratings --------------------------------------------------------------------------------------------

    def _rating_name(self, name: str) -> tuple[str, str]:
        ids = RATING.parse(name)
        return ids["title"], ids["profile"]

    async def RateTitle(self, request: catalog_pb2.RateTitleRequest, context: Context) -> catalog_pb2.RateTitleResponse:
        principal = current_principal()
        title_id, profile_id = self._rating_name(request.name)
        self._profile(principal, profile_id)
        self._visible(principal, title_id)
        row, summary = await self._ratings.rate(title_id, profile_id, principal.account_id, request.stars)
        return catalog_pb2.RateTitleResponse(rating=self._rating_pb(row), summary=summary.to_pb())

    def _rating_pb(self, row: dict[str, Any]) -> catalog_pb2.Rating:
        r = catalog_pb2.Rating(name=RATING.format(title=row["title_id"], profile=row["profile_id"]), stars=row["stars"])
        r.update_time.FromMicroseconds(row["update_time"])
        return r

    async def GetRating(self, request: catalog_pb2.GetRatingRequest, context: Context) -> catalog_pb2.GetRatingResponse:
        principal = current_principal()
        title_id, profile_id = self._rating_name(request.name)
        self._profile(principal, profile_id)
        row = await self._ratings.get(title_id, profile_id)
        if row is None:
            raise NotFound(f"rating {request.name} does not exist")
        return catalog_pb2.GetRatingResponse(rating=self._rating_pb(row))

    async def DeleteRating(
        self, request: catalog_pb2.DeleteRatingRequest, context: Context
    ) -> catalog_pb2.DeleteRatingResponse:
        principal = current_principal()
        title_id, profile_id = self._rating_name(request.name)
        self._profile(principal, profile_id)
        if not await self._ratings.delete(title_id, profile_id):
            raise NotFound(f"rating {request.name} does not exist")
        return catalog_pb2.DeleteRatingResponse()

    async def GetRatingSummary(
        self, request: catalog_pb2.GetRatingSummaryRequest, context: Context
    ) -> catalog_pb2.GetRatingSummaryResponse:
        principal = current_principal()
        title_id = self._title_id(request.title, "title")
        self._visible(principal, title_id)
        return catalog_pb2.GetRatingSummaryResponse(summary=(await self._ratings.summary(title_id)).to_pb())

    # --- reviews --------------------------------------------------------------------------------------------

    async def CreateReview(
        self, request: catalog_pb2.CreateReviewRequest, context: Context
    ) -> catalog_pb2.CreateReviewResponse:
        principal = current_principal()
        title_id = self._title_id(request.parent, "parent")
        if principal.profile_id is None:
            raise PermissionDenied("select a profile first: reviews are written by a profile")
        self._visible(principal, title_id)
        rating = await self._ratings.get(title_id, principal.profile_id)
        row = await self._reviews.create(
            title_id,
            principal.account_id,
            principal.profile_id,
            principal.profile_name or "",
            request.review.text,
            rating["stars"] if rating else 0,
            request.request_id,
        )
        return catalog_pb2.CreateReviewResponse(review=review_rows.to_pb(row))

    async def ListReviews(
        self, request: catalog_pb2.ListReviewsRequest, context: Context
    ) -> catalog_pb2.ListReviewsResponse:
        principal = current_principal()
        title_id = self._title_id(request.parent, "parent")
        self._visible(principal, title_id)
        size = page_size(request.page_size, default=20, maximum=self._max_page)
        fingerprint = query_fingerprint({"reviews": title_id})
        state = self._tokens.decode(request.page_token, fingerprint)
        rows, page = await self._reviews.list(title_id, size, state, principal)
        token = self._tokens.encode(page.next, fingerprint)
        return catalog_pb2.ListReviewsResponse(reviews=[review_rows.to_pb(r) for r in rows], next_page_token=token)

    async def DeleteReview(
        self, request: catalog_pb2.DeleteReviewRequest, context: Context
    ) -> catalog_pb2.DeleteReviewResponse:
        principal = current_principal()
        ids = REVIEW.parse(request.name)
        row = await self._reviews.get(ids["title"], ids["review"])
        if not principal.is_admin and (row["account_id"], row["profile_id"]) != (
            principal.account_id,
            principal.profile_id,
        ):
            raise PermissionDenied("only the author or an admin may delete a review")
        await self._reviews.delete(ids["title"], ids["review"])
        return catalog_pb2.DeleteReviewResponse()

    async def ReportReview(
        self, request: catalog_pb2.ReportReviewRequest, context: Context
    ) -> catalog_pb2.ReportReviewResponse:
        principal = current_principal()
        ids = REVIEW.parse(request.name)
        hidden = await self._reviews.report(ids["title"], ids["review"], principal, request.reason)
        state = catalog_pb2.REVIEW_STATE_HIDDEN if hidden else catalog_pb2.REVIEW_STATE_VISIBLE
        return catalog_pb2.ReportReviewResponse(state=state)
