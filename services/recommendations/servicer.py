"""RecommendationService: rows of titles for a profile, from the precomputed list reranked by its latest views, and
the impressions and clicks of the rows served (events.py)."""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import grpc

from marquee.v1 import recommendations_pb2 as pb
from marquee.v1 import recommendations_pb2_grpc
from services.common.auth import current_principal, require_profile
from services.common.errors import InvalidArgument, NotFound, PermissionDenied, Unavailable
from services.common.geo import Geo
from services.common.names import NamePattern
from services.common.paging import PageTokens, page_size, query_fingerprint
from services.common.peer import caller_address
from services.common.store.port import MAX_QUERY_LIMIT, Store
from services.recommendations import events, ranking
from services.recommendations.config import RecommendationsConfig
from services.recommendations.events import EventTokens
from services.recommendations.model import ServingModel
from services.recommendations.ranking import Candidate, Context
from services.recommendations.schema import INTERACTIONS, LISTS, ROW_EVENTS

SERVICE_NAME = "marquee.v1.RecommendationService"
PROFILE = NamePattern("accounts/{account}/profiles/{profile}")
TITLE = NamePattern("titles/{title}")
REGION = re.compile(r"^[A-Z]{2}$")
MAX_ROWS = 10
MAX_ITEMS_PER_ROW = 50
LIST_CACHE_PROFILES = 10_000  # precomputed lists kept in memory (about 200 candidates each)
_ROW_NAMES = {
    pb.RECOMMENDATION_ROW_TOP_PICKS: "Top picks for you",
    pb.RECOMMENDATION_ROW_TRENDING: "Trending now",
}


class RecommendationServicer(recommendations_pb2_grpc.RecommendationServiceServicer):
    def __init__(
        self,
        config: RecommendationsConfig,
        store: Store,
        model: Callable[[], ServingModel | None],
        trained_time: Callable[[], int],
        page_tokens: PageTokens,
        geo: Geo,
        event_tokens: EventTokens,
    ) -> None:
        self._config = config
        self._events = event_tokens
        self._geo = geo
        self._store = store
        self._model = model
        self._trained_time = trained_time
        self._pages = page_tokens
        self._lists: OrderedDict[str, tuple[tuple[str, int], list[Candidate]]] = OrderedDict()

    # --- requests -------------------------------------------------------------------------------------------

    def _serving(self) -> ServingModel:
        model = self._model()
        if model is None:
            raise Unavailable("the recommendation model is not trained yet; retry shortly", reason="MODEL_NOT_READY")
        return model

    def _region(self, hint: str, context: grpc.aio.ServicerContext[Any, Any]) -> str:
        """The caller's region from its address (services/common/geo.py). The request's ``region`` is checked for
        form and believed only from an admin (a service or an operator asking for a region's rows)."""
        if hint and not REGION.match(hint):
            raise InvalidArgument(
                f"region must be an ISO 3166-1 alpha-2 code such as US (got {hint!r})", field_name="region"
            )
        if hint and current_principal().is_admin:
            return hint
        return self._geo.region(caller_address(context, self._geo))

    async def _precomputed(self, profile_id: str, model: ServingModel) -> list[Candidate]:
        """The profile's stored list, kept in a bounded cache until the next model (lists change only then)."""
        version = (model.version, self._trained_time())
        cached = self._lists.get(profile_id)
        if cached is not None and cached[0] == version:
            self._lists.move_to_end(profile_id)
            return cached[1]
        listed = await self._store.query(LISTS, {"profile_id": profile_id}, limit=self._config.training.list_size)
        base = [
            Candidate(model.index[r["title_id"]], r["score"], pb.ReasonType.Value(r["reason"]),
                      model.index.get(r["source_title"], -1))
            for r in listed.rows
            if r["title_id"] in model.index
        ]  # fmt: skip
        self._lists[profile_id] = (version, base)
        if len(self._lists) > LIST_CACHE_PROFILES:
            self._lists.popitem(last=False)
        return base

    async def _context(self, parent: str, region: str, model: ServingModel) -> tuple[Context, list[Candidate]]:
        ids = PROFILE.parse(parent, "parent")
        principal = require_profile(ids["account"], ids["profile"])
        profile_id = ids["profile"]
        history = await self._store.query(INTERACTIONS, {"profile_id": profile_id}, limit=MAX_QUERY_LIMIT)
        base = await self._precomputed(profile_id, model)
        seen = {model.index[r["title_id"]] for r in history.rows if r["title_id"] in model.index}
        since = self._trained_time() if base else 0
        views = sorted(
            (r for r in history.rows if (r["positive"] or r["kind"] != "rated") and r["title_id"] in model.index),
            key=lambda r: (-r["event_time"], r["title_id"]),
        )
        latest = [model.index[r["title_id"]] for r in views]
        recent = [model.index[r["title_id"]] for r in views if r["event_time"] > since]
        allowed = model.allowed(principal.max_maturity, region)
        return Context(model, allowed, seen, recent, latest, region, self._config), base

    def _row(self, ctx: Context, base: list[Candidate], row: int, title: str, size: int) -> list[Candidate]:
        if row == pb.RECOMMENDATION_ROW_TOP_PICKS:
            return ranking.top_picks(ctx, base, size)
        if row == pb.RECOMMENDATION_ROW_TRENDING:
            return ranking.trending(ctx, size)
        if row == pb.RECOMMENDATION_ROW_BECAUSE_YOU_WATCHED:
            return ranking.because_you_watched(ctx, ctx.latest[0], size) if ctx.latest else []
        if row == pb.RECOMMENDATION_ROW_SIMILAR_TITLES:
            if not title:
                raise InvalidArgument("title is required for RECOMMENDATION_ROW_SIMILAR_TITLES", field_name="title")
            title_id = TITLE.parse(title, "title")["title"]
            source = ctx.model.index.get(title_id)
            if source is None:
                raise NotFound(f"titles/{title_id} is not known to the recommender")
            return ranking.similar_titles(ctx, source, size)
        raise InvalidArgument(f"row must be one of the RecommendationRow values (got {row})", field_name="row")

    def _pb(self, model: ServingModel, c: Candidate, region: str) -> pb.Recommendation:
        reason = pb.Reason(type=c.reason)  # type: ignore[arg-type]
        if c.source >= 0:
            source = model.items[c.source]
            reason.source_title = TITLE.format(title=source.id)
        if c.reason == pb.REASON_TYPE_BECAUSE_YOU_WATCHED and c.source >= 0:
            reason.text = f"Because you watched {model.items[c.source].name}"
        elif c.reason == pb.REASON_TYPE_SIMILAR and c.source >= 0:
            reason.text = f"More like {model.items[c.source].name}"
        elif c.reason == pb.REASON_TYPE_TRENDING:
            reason.text = f"Trending in {region}" if region else "Trending now"
        elif c.reason == pb.REASON_TYPE_ONBOARDING:
            reason.text = "Popular on Marquee"
        else:
            reason.text = "Picked for you"
        return pb.Recommendation(title=TITLE.format(title=model.items[c.index].id), score=c.score, reason=reason)

    # --- RPCs -----------------------------------------------------------------------------------------------

    async def GetRecommendations(
        self, request: pb.GetRecommendationsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetRecommendationsResponse:
        region = self._region(request.region, context)
        size = page_size(request.page_size, default=self._config.default_page_size, maximum=self._config.max_page_size)
        model = self._serving()
        ctx, base = await self._context(request.parent, region, model)
        fingerprint = query_fingerprint(
            {"parent": request.parent, "row": request.row, "title": request.title, "region": region, "v": model.version}
        )
        state = self._pages.decode(request.page_token, fingerprint)
        offset = int.from_bytes(state, "big") if state else 0
        # the whole row is ranked every time, so pages cut one list (until a new view or model reorders it)
        ranked = self._row(ctx, base, request.row, request.title, self._config.training.list_size)
        depth = offset + size
        page = ranked[offset:depth]
        more = len(ranked) > depth
        token = self._pages.encode(depth.to_bytes(4, "big") if more else None, fingerprint)
        ids = PROFILE.parse(request.parent, "parent")
        return pb.GetRecommendationsResponse(
            recommendations=[self._pb(model, c, region) for c in page],
            next_page_token=token,
            event_token=self._events.issue(ids["account"], ids["profile"], request.row, len(page)) if page else "",
        )

    async def ListRecommendationRows(
        self, request: pb.ListRecommendationRowsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListRecommendationRowsResponse:
        region = self._region(request.region, context)
        if not 0 <= request.max_rows <= MAX_ROWS:
            raise InvalidArgument(f"max_rows must be 0..{MAX_ROWS} (0: 4)", field_name="max_rows")
        if not 0 <= request.items_per_row <= MAX_ITEMS_PER_ROW:
            raise InvalidArgument(f"items_per_row must be 0..{MAX_ITEMS_PER_ROW} (0: 20)", field_name="items_per_row")
        max_rows = request.max_rows or 4
        per_row = request.items_per_row or 20
        model = self._serving()
        ctx, base = await self._context(request.parent, region, model)
        ids = PROFILE.parse(request.parent, "parent")
        rows: list[pb.RecommendationRowResult] = []

        def add(kind: int, name: str, picks: list[Candidate]) -> None:
            if picks and len(rows) < max_rows:
                rows.append(
                    pb.RecommendationRowResult(
                        row=kind,  # type: ignore[arg-type]
                        display_name=name,
                        recommendations=[self._pb(model, c, region) for c in picks],
                        event_token=self._events.issue(ids["account"], ids["profile"], kind, len(picks)),
                    )
                )

        add(
            pb.RECOMMENDATION_ROW_TOP_PICKS,
            _ROW_NAMES[pb.RECOMMENDATION_ROW_TOP_PICKS],
            ranking.top_picks(ctx, base, per_row),
        )
        for source in ctx.latest[:2]:
            name = f"Because you watched {model.items[source].name}"
            add(pb.RECOMMENDATION_ROW_BECAUSE_YOU_WATCHED, name, ranking.because_you_watched(ctx, source, per_row))
        trending_name = f"Trending in {region}" if region else _ROW_NAMES[pb.RECOMMENDATION_ROW_TRENDING]
        add(pb.RECOMMENDATION_ROW_TRENDING, trending_name, ranking.trending(ctx, per_row))
        return pb.ListRecommendationRowsResponse(rows=rows)

    async def ReportRecommendationEvents(
        self, request: pb.ReportRecommendationEventsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ReportRecommendationEventsResponse:
        """Counts the impressions and clicks of rows served to the caller's profile, each once (events.py)."""
        ids = PROFILE.parse(request.parent, "parent")
        require_profile(ids["account"], ids["profile"])
        if not request.events:
            raise InvalidArgument("events must hold at least one event", field_name="events")
        if len(request.events) > events.MAX_EVENTS:
            raise InvalidArgument(f"at most {events.MAX_EVENTS} events per call", field_name="events")
        checked: dict[tuple[str, str], events.Served] = {}
        for i, event in enumerate(request.events):  # every event checked before any is counted
            served = self._events.verify(event.event_token, f"events[{i}].event_token")
            if (served.account_id, served.profile_id) != (ids["account"], ids["profile"]):
                raise PermissionDenied(
                    f"events[{i}].event_token was issued to another profile", reason="EVENT_TOKEN_NOT_YOURS"
                )
            if event.kind == pb.RECOMMENDATION_EVENT_KIND_IMPRESSION:
                if event.position:
                    raise InvalidArgument("an impression has no position", field_name=f"events[{i}].position")
                name = "impression"
            elif event.kind == pb.RECOMMENDATION_EVENT_KIND_CLICK:
                if not 0 <= event.position < served.items:
                    raise InvalidArgument(
                        f"the row was served with {served.items} tiles: position must be 0 to {served.items - 1}",
                        field_name=f"events[{i}].position",
                    )
                name = f"click:{event.position}"
            else:
                raise InvalidArgument("kind must be IMPRESSION or CLICK", field_name=f"events[{i}].kind")
            checked[(served.serve_id, name)] = served
        counted = 0
        for (serve_id, name), served in checked.items():
            row = {"serve_id": serve_id, "event": name}
            if await self._store.insert(ROW_EVENTS, row, if_not_exists=True, ttl=self._events.remaining(served)):
                counter = events.IMPRESSIONS if name == "impression" else events.CLICKS
                counter.labels(row=events.row_label(served.row)).inc()
                counted += 1
        return pb.ReportRecommendationEventsResponse(counted=counted)
