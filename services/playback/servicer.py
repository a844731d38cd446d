"""PlaybackService over gRPC: sessions and entitlements, positions, history, QoE.

A session is started for the caller's own profile. StartPlayback checks, in order: the title exists and is
playable, it is licensed in the client's region, the profile's maturity limit allows it, and the plan has a
free stream slot; it then asks steering for the session's pathways and signs the session's URLs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import duration_pb2, timestamp_pb2

from marquee.native import TokenKeyring
from marquee.v1 import (
    catalog_pb2,
    playback_pb2,
    playback_pb2_grpc,
    steering_pb2,
)
from services.common.auth import current_principal
from services.common.bus.port import EventBus
from services.common.context import Principal
from services.common.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
)
from services.common.ids import new_id, now_micros
from services.common.names import NamePattern
from services.common.paging import PageTokens, page_size, query_fingerprint
from services.common.peer import client_address
from services.common.store.port import Row, Store
from services.common.topics import PLAYBACK_UPDATE, PLAYBACK_VIEWED
from services.playback import qoe
from services.playback.config import PlaybackConfig
from services.playback.media import MediaLibrary
from services.playback.positions import Positions
from services.playback.schema import SESSIONS
from services.playback.streams import Streams

log = logging.getLogger("marquee.playback")
SERVICE_NAME = playback_pb2.DESCRIPTOR.services_by_name["PlaybackService"].full_name
Context = grpc.aio.ServicerContext[Any, Any]
SESSION = NamePattern("playbackSessions/{session}")
TITLE = NamePattern("titles/{title}")
PROFILE = NamePattern("accounts/{account}/profiles/{profile}")
DEVICE = NamePattern("accounts/{account}/devices/{device}")
HISTORY = NamePattern("accounts/{account}/profiles/{profile}/watchHistory/{title}")
FUTURE_SLACK_US = 5 * 60 * 1_000_000  # event times may run this far ahead of ours (clock skew)
POSITION_SLACK_MS = 1_000  # positions may pass the runtime by this much (rounding at the end)
MAX_CACHED_SESSIONS = 100_000


@dataclass(frozen=True)
class PlanLimits:
    max_concurrent_streams: int
    max_resolution_height: int


def _duration_ms(d: duration_pb2.Duration, field: str) -> int:
    if d.seconds < 0 or d.nanos < 0:
        raise InvalidArgument(f"{field} must not be negative", field_name=field)
    return d.seconds * 1000 + d.nanos // 1_000_000


def _ms(value: int) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMilliseconds(value)
    return d


def _ts(micros: int) -> timestamp_pb2.Timestamp:
    t = timestamp_pb2.Timestamp()
    t.FromMicroseconds(micros)
    return t


class PlaybackServicer(playback_pb2_grpc.PlaybackServiceServicer):
    def __init__(
        self,
        config: PlaybackConfig,
        store: Store,
        bus: EventBus,
        media: MediaLibrary,
        catalog: Any,  # CatalogServiceStub on a grpc.aio channel
        steering: Any,  # SteeringServiceStub on a grpc.aio channel
        service_credentials: Callable[[], tuple[tuple[str, str], ...]],
        url_keys: TokenKeyring,
        plans: dict[str, PlanLimits],
        manifest_base: Callable[[], str],
        page_tokens: PageTokens,
    ) -> None:
        self._config = config
        self._store = store
        self._bus = bus
        self._media = media
        self._catalog = catalog
        self._steering = steering
        self._credentials = service_credentials
        self._keys = url_keys
        self._plans = plans
        self._manifest_base = manifest_base
        self._pages = page_tokens
        self._positions = Positions(store, config.finished_fraction)
        self._streams = Streams(store)
        # sessions being played here: their (immutable) rows, and the expiry last written for them
        self._rows: dict[str, Row] = {}
        self._held: dict[str, int] = {}

    # --- helpers --------------------------------------------------------------------------------------------

    def _own_profile(self, principal: Principal, name: str, field: str) -> tuple[str, str]:
        ids = PROFILE.parse(name, field)
        if principal.is_admin:
            return ids["account"], ids["profile"]
        if ids["account"] != principal.account_id or ids["profile"] != principal.profile_id:
            raise PermissionDenied(f"{field} is not the caller's profile (select that profile first)")
        return ids["account"], ids["profile"]

    def _plan(self, principal: Principal) -> PlanLimits:
        plan = self._plans.get(principal.plan)
        if plan is None:  # no plan in the token: the most restrictive one
            plan = min(self._plans.values(), key=lambda p: (p.max_concurrent_streams, p.max_resolution_height))
        return plan

    async def _title(self, title_id: str) -> catalog_pb2.Title:
        try:
            reply = await self._catalog.GetTitle(
                catalog_pb2.GetTitleRequest(name=TITLE.format(title=title_id)), metadata=self._credentials()
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise NotFound(f"title titles/{title_id} does not exist", reason="TITLE_NOT_FOUND") from None
            raise Unavailable(f"the catalog did not answer: {exc.details()}") from None
        title: catalog_pb2.Title = reply.title
        return title

    async def _session(self, principal: Principal, name: str, field: str = "session") -> Row:
        session_id = SESSION.parse(name, field)["session"]
        row = self._rows.get(session_id)
        if row is None:
            row = await self._store.get(SESSIONS, {"session_id": session_id})
            if row is not None and not row["ended"]:
                if len(self._rows) >= MAX_CACHED_SESSIONS:
                    self._rows.clear()
                self._rows[session_id] = row
        if row is None:
            raise NotFound(f"playback session {name} does not exist", reason="SESSION_NOT_FOUND")
        if not principal.is_admin and (row["account_id"], row["profile_id"]) != (
            principal.account_id,
            principal.profile_id,
        ):
            raise PermissionDenied("the session belongs to another profile")
        return row

    def _live(self, row: Row) -> None:
        expire = max(row["expire_time"], self._held.get(row["session_id"], 0))
        if row["ended"] or expire <= now_micros():
            raise FailedPrecondition(
                f"playback session playbackSessions/{row['session_id']} has ended", reason="SESSION_ENDED"
            )

    def _event_time(self, ts: timestamp_pb2.Timestamp, field: str) -> int:
        if ts.seconds <= 0:
            raise InvalidArgument(f"{field} is required", field_name=field)
        micros = ts.ToMicroseconds()
        if micros > now_micros() + FUTURE_SLACK_US:
            raise InvalidArgument(f"{field} is in the future", field_name=field)
        return micros

    def _position_ms(self, d: duration_pb2.Duration, runtime_ms: int, field: str) -> int:
        position = _duration_ms(d, field)
        if position > runtime_ms + POSITION_SLACK_MS:
            raise InvalidArgument(
                f"{field} {position / 1000:.3f} s is beyond the title's runtime {runtime_ms / 1000:.3f} s",
                field_name=field,
            )
        return min(position, runtime_ms)

    def _position_pb(self, row: Row) -> playback_pb2.Position:
        return playback_pb2.Position(
            title=TITLE.format(title=row["title_id"]),
            position=_ms(row["position_ms"]),
            runtime=_ms(row["runtime_ms"]),
            finished=row["finished"],
            event_time=_ts(row["event_time"]),
        )

    def _history_pb(self, row: Row) -> playback_pb2.WatchHistoryEntry:
        return playback_pb2.WatchHistoryEntry(
            name=HISTORY.format(account=row["account_id"], profile=row["profile_id"], title=row["title_id"]),
            title=TITLE.format(title=row["title_id"]),
            watch_time=_ts(row["watch_time"]),
            position=_ms(row["position_ms"]),
            runtime=_ms(row["runtime_ms"]),
            finished=row["finished"],
        )

    async def _record(self, session: Row, position_ms: int, event_time: int) -> tuple[bool, Row]:
        update = await self._positions.update(
            session["account_id"],
            session["profile_id"],
            session["title_id"],
            position_ms,
            session["runtime_ms"],
            event_time,
        )
        if update.applied:
            event = playback_pb2.PlaybackUpdateEvent(
                session=SESSION.format(session=session["session_id"]),
                profile=PROFILE.format(account=session["account_id"], profile=session["profile_id"]),
                title=TITLE.format(title=session["title_id"]),
                position=_ms(update.row["position_ms"]),
                runtime=_ms(update.row["runtime_ms"]),
                event_time=_ts(event_time),
                finished=update.row["finished"],
                region=session["region"],
            )
            await self._bus.publish(PLAYBACK_UPDATE, event.SerializeToString(), key=session["profile_id"])
        return update.applied, update.row

    # --- RPCs -----------------------------------------------------------------------------------------------

    async def StartPlayback(
        self, request: playback_pb2.StartPlaybackRequest, context: Context
    ) -> playback_pb2.StartPlaybackResponse:
        principal = current_principal()
        account_id, profile_id = self._own_profile(principal, request.profile, "profile")
        title_id = TITLE.parse(request.title, "title")["title"]
        device_id = ""
        if request.device:
            device = DEVICE.parse(request.device, "device")
            if device["account"] != account_id:
                raise PermissionDenied("the device belongs to another account")
            device_id = device["device"]
        region = request.client.region
        if region and (len(region) != 2 or not region.isalpha() or not region.isupper()):
            raise InvalidArgument("client.region must be an ISO 3166-1 alpha-2 code", field_name="client.region")
        if request.client.max_height < 0:
            raise InvalidArgument("client.max_height must not be negative", field_name="client.max_height")
        title = await self._title(title_id)
        if not title.playable or not title.media:
            raise FailedPrecondition(f"titles/{title_id} is not playable yet", reason="TITLE_NOT_PLAYABLE")
        if title.licensed_regions and region not in title.licensed_regions:
            raise FailedPrecondition(
                f"titles/{title_id} is not licensed in {region or 'an unknown region'}",
                reason="GEO_BLOCKED",
                metadata={"region": region or "unknown"},
            )
        limit = principal.max_maturity
        if limit is not None and title.maturity_rating > limit:
            raise FailedPrecondition(
                f"titles/{title_id} is rated above this profile's maturity limit", reason="MATURITY_RESTRICTED"
            )
        media = await self._media.get(title.media)
        plan = self._plan(principal)
        max_height = plan.max_resolution_height
        if request.client.max_height:
            max_height = min(max_height, request.client.max_height)
        session_id = new_id()
        now = now_micros()
        expire = now + int(self._config.session_timeout * 1_000_000)
        slot = await self._streams.claim(account_id, session_id, plan.max_concurrent_streams, expire)
        if slot is None:
            raise ResourceExhausted(
                f"the plan allows {plan.max_concurrent_streams} streams at once; stop one first",
                reason="STREAM_LIMIT_REACHED",
            )
        try:
            steering = await self._steering.GetSteering(
                steering_pb2.GetSteeringRequest(
                    session=SESSION.format(session=session_id),
                    title=TITLE.format(title=title_id),
                    client_address=client_address(context, False),
                    country=region,
                ),
                metadata=self._credentials(),
            )
        except grpc.aio.AioRpcError as exc:
            await self._streams.release(account_id, slot, session_id)
            raise Unavailable(f"no edge can serve this session now: {exc.details()}") from None
        pathways = [{"id": p.id, "base_uri": f"{p.base_uri}{title.media}/"} for p in steering.pathways]
        await self._store.insert(
            SESSIONS,
            {
                "session_id": session_id,
                "account_id": account_id,
                "profile_id": profile_id,
                "device_id": device_id,
                "title_id": title_id,
                "media_id": title.media,
                "runtime_ms": media.runtime_ms,
                "slot": slot,
                "max_height": max_height,
                "region": region,
                "start_time": now,
                "expire_time": expire,
                "ended": False,
                "pathways": pathways,
                "steering_uri": steering.reload_uri,
            },
        )
        expires_at = int(time.time()) + self._config.token_ttl
        token = self._keys.sign([f"/v/{title.media}/*", f"/sessions/{session_id}/*"], expires_at, session_id)
        base = f"{self._manifest_base()}/sessions/{session_id}"
        resume = await self._positions.get(account_id, profile_id, title_id)
        resume_ms = 0 if resume is None or resume["finished"] else resume["position_ms"]
        session = playback_pb2.PlaybackSession(
            name=SESSION.format(session=session_id),
            title=TITLE.format(title=title_id),
            profile=PROFILE.format(account=account_id, profile=profile_id),
            device=request.device,
            manifest_urls=playback_pb2.ManifestUrls(
                hls_uri=f"{base}/master.m3u8?token={token}", dash_uri=f"{base}/manifest.mpd?token={token}"
            ),
            steering_uri=steering.reload_uri,
            resume_position=_ms(resume_ms),
            audio_tracks=[
                playback_pb2.AudioTrack(
                    language=a.get("language", ""),
                    display_name=a.get("name", ""),
                    codecs=a.get("codecs", ""),
                    channels=a.get("channels", 0),
                )
                for a in media.doc.get("audio", [])
            ],
            max_resolution_height=max_height,
            heartbeat_interval=_ms(int(self._config.heartbeat_interval * 1000)),
            expire_time=_ts(expire),
        )
        return playback_pb2.StartPlaybackResponse(session=session)

    async def UpdatePosition(
        self, request: playback_pb2.UpdatePositionRequest, context: Context
    ) -> playback_pb2.UpdatePositionResponse:
        principal = current_principal()
        session = await self._session(principal, request.session)
        self._live(session)
        position = self._position_ms(request.position, session["runtime_ms"], "position")
        event_time = self._event_time(request.event_time, "event_time")
        expire = await self._keep_alive(session)
        applied, row = await self._record(session, position, event_time)
        return playback_pb2.UpdatePositionResponse(
            applied=applied, position=_ms(row["position_ms"]), finished=row["finished"], expire_time=_ts(expire)
        )

    async def _keep_alive(self, session: Row) -> int:
        """Extends the session and its stream slot, writing only when half the timeout has passed since the last
        extension (a heartbeat every 10 s would otherwise cost two more durable writes each)."""
        timeout = int(self._config.session_timeout * 1_000_000)
        now = now_micros()
        session_id = session["session_id"]
        held: int = max(session["expire_time"], self._held.get(session_id, 0))
        if held - now > timeout // 2:
            return held
        expire = now + timeout
        if not await self._streams.renew(session["account_id"], session["slot"], session_id, expire):
            await self._store.update(SESSIONS, {"session_id": session_id}, {"ended": True})
            self._rows.pop(session_id, None)
            raise FailedPrecondition("the session expired and its stream slot was taken", reason="SESSION_ENDED")
        await self._store.update(SESSIONS, {"session_id": session_id}, {"expire_time": expire})
        if len(self._held) >= MAX_CACHED_SESSIONS:
            self._held.clear()
        self._held[session_id] = expire
        return expire

    async def GetPosition(
        self, request: playback_pb2.GetPositionRequest, context: Context
    ) -> playback_pb2.GetPositionResponse:
        account_id, profile_id = self._own_profile(current_principal(), request.profile, "profile")
        title_id = TITLE.parse(request.title, "title")["title"]
        row = await self._positions.get(account_id, profile_id, title_id)
        if row is None:
            raise NotFound(f"no position for titles/{title_id} on this profile")
        return playback_pb2.GetPositionResponse(position=self._position_pb(row))

    async def StopPlayback(
        self, request: playback_pb2.StopPlaybackRequest, context: Context
    ) -> playback_pb2.StopPlaybackResponse:
        principal = current_principal()
        session = await self._session(principal, request.session)
        if request.HasField("position"):
            position = self._position_ms(request.position, session["runtime_ms"], "position")
            event_time = self._event_time(request.event_time, "event_time")
            if not session["ended"]:
                await self._record(session, position, event_time)
        ending = not session["ended"]
        if ending:
            await self._store.update(SESSIONS, {"session_id": session["session_id"]}, {"ended": True})
            await self._streams.release(session["account_id"], session["slot"], session["session_id"])
            self._rows.pop(session["session_id"], None)
            self._held.pop(session["session_id"], None)
        row = await self._positions.get(session["account_id"], session["profile_id"], session["title_id"])
        if row is None:
            row = {**session, "position_ms": 0, "event_time": 0, "finished": False, "watch_time": now_micros()}
        if ending:  # once per session, however often stop is called
            viewed = playback_pb2.VideoViewedEvent(
                session=request.session,
                profile=PROFILE.format(account=session["account_id"], profile=session["profile_id"]),
                title=TITLE.format(title=session["title_id"]),
                position=_ms(row["position_ms"]),
                runtime=_ms(session["runtime_ms"]),
                finished=row["finished"],
                view_time=_ts(now_micros()),
                region=session["region"],
            )
            await self._bus.publish(PLAYBACK_VIEWED, viewed.SerializeToString(), key=session["profile_id"])
        return playback_pb2.StopPlaybackResponse(position=self._position_pb(row))

    async def _page(
        self, parent: str, page_size_: int, token: str, *, in_progress: bool
    ) -> tuple[list[playback_pb2.WatchHistoryEntry], str]:
        account_id, profile_id = self._own_profile(current_principal(), parent, "parent")
        size = page_size(page_size_, default=20, maximum=self._config.max_page_size)
        fingerprint = query_fingerprint({"parent": parent, "in_progress": in_progress})
        state = self._pages.decode(token, fingerprint)
        offset = int(state.decode()) if state else 0
        rows = await self._positions.history(account_id, profile_id)
        if in_progress:
            rows = [r for r in rows if not r["finished"] and r["position_ms"] > 0]
        page = rows[offset : offset + size]
        more = offset + size < len(rows)
        return [self._history_pb(r) for r in page], self._pages.encode(
            str(offset + size).encode() if more else None, fingerprint
        )

    async def ListWatchHistory(
        self, request: playback_pb2.ListWatchHistoryRequest, context: Context
    ) -> playback_pb2.ListWatchHistoryResponse:
        entries, token = await self._page(request.parent, request.page_size, request.page_token, in_progress=False)
        return playback_pb2.ListWatchHistoryResponse(entries=entries, next_page_token=token)

    async def ListContinueWatching(
        self, request: playback_pb2.ListContinueWatchingRequest, context: Context
    ) -> playback_pb2.ListContinueWatchingResponse:
        entries, token = await self._page(request.parent, request.page_size, request.page_token, in_progress=True)
        return playback_pb2.ListContinueWatchingResponse(entries=entries, next_page_token=token)

    async def DeleteWatchHistoryEntry(
        self, request: playback_pb2.DeleteWatchHistoryEntryRequest, context: Context
    ) -> playback_pb2.DeleteWatchHistoryEntryResponse:
        ids = HISTORY.parse(request.name)
        self._own_profile(current_principal(), PROFILE.format(account=ids["account"], profile=ids["profile"]), "name")
        if not await self._positions.delete(ids["account"], ids["profile"], ids["title"]):
            raise NotFound(f"{request.name} does not exist")
        return playback_pb2.DeleteWatchHistoryEntryResponse()

    async def ReportQoe(
        self, request: playback_pb2.ReportQoeRequest, context: Context
    ) -> playback_pb2.ReportQoeResponse:
        await self._session(current_principal(), request.session)  # the caller's own session
        r = request.report
        if max(len(r.stalls), len(r.bitrate_switches), len(r.errors)) > qoe.MAX_EVENTS:
            raise InvalidArgument(
                f"at most {qoe.MAX_EVENTS} stalls, switches or errors per report", field_name="report"
            )
        for i, stall in enumerate(r.stalls):
            _duration_ms(stall.duration, f"report.stalls[{i}].duration")
        for field in ("startup_time", "playing_time"):
            _duration_ms(getattr(r, field), f"report.{field}")
        if r.current_bandwidth < 0 or r.bytes_downloaded < 0:
            raise InvalidArgument("bandwidth and bytes must not be negative", field_name="report")
        if r.pathway_id and len(r.pathway_id) > 64:
            raise InvalidArgument("report.pathway_id is longer than 64 characters", field_name="report.pathway_id")
        stalls, errors = qoe.record(r)
        if r.pathway_id and (stalls or errors):
            kind = steering_pb2.PATHWAY_PROBLEM_KIND_ERROR if errors else steering_pb2.PATHWAY_PROBLEM_KIND_STALL
            try:
                await self._steering.ReportPathwayProblem(
                    steering_pb2.ReportPathwayProblemRequest(
                        session=request.session, pathway_id=r.pathway_id, kind=kind, count=min(stalls + errors, 1000)
                    ),
                    metadata=self._credentials(),
                )
            except grpc.aio.AioRpcError as exc:  # telemetry must not fail the player
                log.warning("steering did not take a pathway problem report: %s", exc.details())
        return playback_pb2.ReportQoeResponse()
