"""PlaybackService over gRPC: sessions and entitlements, positions, history, QoE.

A session is started for the caller's own profile. StartPlayback checks, in order: the title exists and is
playable, it is licensed in the client's region, the profile's maturity limit allows it, and the plan has a
free stream slot; it then asks steering for the session's pathways and signs the session's URLs. The region is
the server's answer for the caller's address (services/common/geo.py): ``client.region`` is a UI hint, never an
entitlement.

The session's signed URL token lives as long as its lease: it expires with the session's ``expire_time``, every
heartbeat (UpdatePosition) that extends the lease answers with the renewed token, and a stopped session's token is
revoked at once (``playback.session_ended``, which steering passes on to every edge). A session whose heartbeats
stop therefore loses its URLs when its lease lapses, which is also when its stream slot can be taken again; the
expiry sweep (:meth:`PlaybackServicer.end_expired`, run by every replica) then marks it ended and accounts for it.

A session ends once: ``ended`` is set by compare-and-set, and only the call that sets it (StopPlayback, a
revocation, a lost stream slot or the sweep, on whichever replica) publishes its end and observes its totals
(services/playback/engagement.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import grpc
from google.protobuf import duration_pb2, timestamp_pb2

from marquee.native import TokenKeyring
from marquee.v1 import (
    catalog_pb2,
    playback_pb2,
    playback_pb2_grpc,
    steering_pb2,
)
from services.common import urltokens
from services.common.auth import current_principal
from services.common.bus.port import EventBus
from services.common.context import Principal, access_token_var
from services.common.errors import (
    Aborted,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
)
from services.common.geo import Geo
from services.common.ids import new_id, now_micros
from services.common.names import NamePattern
from services.common.paging import PageTokens, page_size, query_fingerprint
from services.common.peer import caller_address
from services.common.plans import Plan, Plans
from services.common.store.port import MAX_QUERY_LIMIT, Row, Store
from services.common.timevalues import duration_ms, event_time_micros, timestamp_of
from services.common.topics import PLAYBACK_SESSION_ENDED, PLAYBACK_UPDATE, PLAYBACK_VIEWED
from services.playback import engagement, qoe
from services.playback.config import PlaybackConfig
from services.playback.media import MediaLibrary
from services.playback.positions import Positions, Report, clamp_event_time, update_event
from services.playback.positions_redis import RedisPositions
from services.playback.schema import LIVE_SESSIONS, LIVE_SHARDS, SESSIONS, STREAM_SLOTS, live_shard
from services.playback.streams import Streams

log = logging.getLogger("marquee.playback")
SERVICE_NAME = playback_pb2.DESCRIPTOR.services_by_name["PlaybackService"].full_name
Context = grpc.aio.ServicerContext[Any, Any]
SESSION = NamePattern("playbackSessions/{session}")
TITLE = NamePattern("titles/{title}")
PROFILE = NamePattern("accounts/{account}/profiles/{profile}")
DEVICE = NamePattern("accounts/{account}/devices/{device}")
ACCOUNT = NamePattern("accounts/{account}")
HISTORY = NamePattern("accounts/{account}/profiles/{profile}/watchHistory/{title}")
POSITION_SLACK_MS = 1_000  # positions may pass the runtime by this much (rounding at the end)
MAX_CACHED_SESSIONS = 100_000
QOE_ATTEMPTS = 3  # a final report (StopPlayback) retries its window's compare-and-set this often
SWEEP_PAGE = 1000


def _ms(value: int) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMilliseconds(value)
    return d


def seconds_up(micros: int) -> int:
    """Unix seconds no earlier than ``micros`` (a token must not outlive its lease, nor die before it)."""
    return -(-micros // 1_000_000)


async def get_title(catalog: Any, metadata: tuple[tuple[str, str], ...], title_id: str) -> catalog_pb2.Title:
    """The title from the catalog (``catalog`` a CatalogServiceStub), read with ``metadata`` (the service's own
    credentials): NOT_FOUND (TITLE_NOT_FOUND) when it does not exist, UNAVAILABLE when the catalog does not answer."""
    try:
        reply = await catalog.GetTitle(
            catalog_pb2.GetTitleRequest(name=TITLE.format(title=title_id)), metadata=metadata
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            raise NotFound(f"title titles/{title_id} does not exist", reason="TITLE_NOT_FOUND") from None
        raise Unavailable(f"the catalog did not answer: {exc.details()}") from None
    title: catalog_pb2.Title = reply.title
    return title


async def steer(
    steering: Any,
    metadata: tuple[tuple[str, str], ...],
    session_id: str,
    title_id: str,
    title: catalog_pb2.Title,
    address: str,
    region: str,
    account_id: str,
) -> tuple[list[dict[str, str]], str]:
    """The pathways steering gives a session (or a download) of ``title`` for a client at ``address`` (``steering``
    a SteeringServiceStub), as base URIs of the title's media, and its reload URI; UNAVAILABLE when no edge can
    serve it."""
    try:
        reply = await steering.GetSteering(
            steering_pb2.GetSteeringRequest(
                session=SESSION.format(session=session_id),
                title=TITLE.format(title=title_id),
                client_address=address,
                country=region,
                account=ACCOUNT.format(account=account_id),
            ),
            metadata=metadata,
        )
    except grpc.aio.AioRpcError as exc:
        raise Unavailable(f"no edge can serve this now: {exc.details()}") from None
    pathways = [{"id": p.id, "base_uri": f"{p.base_uri}{title.media}/"} for p in reply.pathways]
    return pathways, str(reply.reload_uri)


def check_entitlement(title: catalog_pb2.Title, title_id: str, region: str, principal: Principal) -> None:
    """May the caller watch ``title`` now: it is playable, licensed in ``region`` (the server's answer for the
    caller's address) and within the profile's maturity limit (the token's signed ``mat`` claim). StartPlayback
    checks it before a session starts, and the licence service again at every licence (a title can leave a
    region, a token can move to another profile's limit)."""
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


class FastPath(Protocol):
    """Where the servicer admits what it decided, for a native front to serve the same calls without it
    (services.playback.ingest)."""

    def admit(self, principal: Principal, token: str | None, session: Row, expire: int, renew: int, url: str) -> None:
        """``token``'s next reports for ``session`` may be answered without the servicer until ``renew``."""

    def forget(self, session_id: str) -> None:
        """The session ended: no more reports for it without the servicer."""


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
        plans: Plans,
        manifest_base: Callable[[], str],
        page_tokens: PageTokens,
        geo: Geo,
        positions: Positions | RedisPositions | None = None,
    ) -> None:
        self._config = config
        self._timeout_micros = int(config.session_timeout * 1_000_000)
        self._geo = geo
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
        self._positions = positions or Positions(store, config.finished_fraction)
        self._streams = Streams(store)
        # sessions being played here: their (immutable) rows, and the expiry last written for them
        self._rows: dict[str, Row] = {}
        self._held: dict[str, int] = {}
        self._signed: dict[str, tuple[int, str]] = {}  # session id -> (expiry, its URL token): one per lease
        self._completed: set[str] = set()  # sessions known to have counted their completion
        self._fast: FastPath | None = None

    def use_fast_path(self, fast: FastPath) -> None:
        """Admit every position report this servicer answers to ``fast``."""
        self._fast = fast

    # --- helpers --------------------------------------------------------------------------------------------

    def _own_profile(self, principal: Principal, name: str, field: str) -> tuple[str, str]:
        ids = PROFILE.parse(name, field)
        if principal.is_admin:
            return ids["account"], ids["profile"]
        if ids["account"] != principal.account_id or ids["profile"] != principal.profile_id:
            raise PermissionDenied(f"{field} is not the caller's profile (select that profile first)")
        return ids["account"], ids["profile"]

    def _plan(self, principal: Principal) -> Plan:
        return self._plans.effective(principal.plan, by=lambda p: (p.max_concurrent_streams, p.max_resolution_height))

    async def _title(self, title_id: str) -> catalog_pb2.Title:
        return await get_title(self._catalog, self._credentials(), title_id)

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

    @staticmethod
    def _event_time(request: playback_pb2.UpdatePositionRequest | playback_pb2.StopPlaybackRequest) -> int:
        """The request's event_time, checked, and clamped to our clock plus the allowed skew."""
        micros = event_time_micros(request.event_time, "event_time", present=request.HasField("event_time"))
        return clamp_event_time(micros, now_micros())

    def _url_token(self, session: Row, expire_micros: int) -> str:
        """The session's signed URL token, valid until its lease expires, for clients in the title's licensed
        regions (when it has any: the edges check the client's address against them). Signed once per lease:
        every position report until the lease is extended answers the same token."""
        session_id = session["session_id"]
        signed = self._signed.get(session_id)
        if signed is not None and signed[0] == expire_micros:
            return signed[1]
        acl = urltokens.session_acl(session_id, session["media_id"])
        regions = session.get("regions") or None
        token = self._keys.sign(acl, seconds_up(expire_micros), session_id, regions)
        if len(self._signed) >= MAX_CACHED_SESSIONS:
            self._signed.clear()
        self._signed[session_id] = (expire_micros, token)
        return token

    def _forget(self, session_id: str) -> None:
        if self._fast is not None:
            self._fast.forget(session_id)
        self._rows.pop(session_id, None)
        self._held.pop(session_id, None)
        self._signed.pop(session_id, None)
        self._completed.discard(session_id)

    async def _close(self, session_id: str) -> Row | None:
        """Marks the session ended unless it is already (compare-and-set: of every caller on every replica, one
        wins) and, for the winner, observes its totals, publishes ``playback.viewed`` and drops it from the expiry
        sweep's list: once per session, however it ended (stopped, revoked, or its lease lapsed). Returns the ended
        row, or None when the session had ended already. Every QoE report accounted to the session was accounted
        before this (a report's compare-and-set requires ``ended`` false), so the totals read here are final."""
        key = {"session_id": session_id}
        self._forget(session_id)
        if not await self._store.update(SESSIONS, key, {"ended": True}, if_={"ended": False}):
            return None
        row = await self._store.get(SESSIONS, key)
        if row is not None:
            engagement.observe_end(row)
            await self._publish_viewed(row)
        await self._store.delete(LIVE_SESSIONS, {"shard": live_shard(session_id), "session_id": session_id})
        return row

    async def _publish_viewed(self, session: Row) -> None:
        """``playback.viewed`` for an ended session: how far its profile got in the title (recommendations)."""
        row = await self._positions.get(session["account_id"], session["profile_id"], session["title_id"])
        viewed = playback_pb2.VideoViewedEvent(
            session=SESSION.format(session=session["session_id"]),
            profile=PROFILE.format(account=session["account_id"], profile=session["profile_id"]),
            title=TITLE.format(title=session["title_id"]),
            position=_ms(row["position_ms"] if row else 0),
            runtime=_ms(session["runtime_ms"]),
            finished=bool(row and row["finished"]),
            view_time=timestamp_of(now_micros()),
            region=session["region"],
        )
        await self._bus.publish(PLAYBACK_VIEWED, viewed.SerializeToString(), key=session["profile_id"])

    async def _end(self, session: Row, reason: playback_pb2.SessionEndReason.ValueType) -> bool:
        """Ends a live session: marked ended, its signed URLs revoked at every edge (through steering), then its
        stream slot freed (so a new session can never stream beside the old one's URLs). False (and nothing
        done) when another call ended it first."""
        session_id = session["session_id"]
        now = now_micros()
        # no token of the session outlives now + the timeout (each expires with the lease it was signed under),
        # whichever replica extended the lease last: the revocation lasts that long
        expire = max(session["expire_time"], self._held.get(session_id, 0), now + self._timeout_micros)
        if await self._close(session_id) is None:
            return False
        ended = playback_pb2.SessionEndedEvent(
            session=SESSION.format(session=session_id),
            profile=PROFILE.format(account=session["account_id"], profile=session["profile_id"]),
            reason=reason,
            end_time=timestamp_of(now),
            url_expire_time=timestamp_pb2.Timestamp(seconds=seconds_up(expire)),
        )
        await self._bus.publish(PLAYBACK_SESSION_ENDED, ended.SerializeToString(), key=session_id)
        await self._streams.release(session["account_id"], session["slot"], session_id)
        return True

    async def end_revoked(self, account_id: str, auth_session: str, revoke_time: int) -> int:
        """Ends the account's live sessions started at or before ``revoke_time`` (micros) whose access token came
        from ``auth_session`` (any, when empty): the account's tokens were revoked (accounts.revoked). Returns how
        many ended. The account's stream slots list its live sessions: a key read, no scan."""
        ended = 0
        slots = await self._store.query(STREAM_SLOTS, {"account_id": account_id}, limit=MAX_QUERY_LIMIT)
        for slot in slots.rows:
            row = await self._store.get(SESSIONS, {"session_id": slot["session_id"]})
            if row is None or row["ended"] or row["start_time"] > revoke_time:
                continue
            if auth_session and row["auth_session"] != auth_session:
                continue
            ended += await self._end(row, playback_pb2.SESSION_END_REASON_REVOKED)
        return ended

    async def end_expired(self) -> int:
        """The expiry sweep: ends the sessions whose lease lapsed (heartbeats stopped, no StopPlayback) and frees
        their stream slots; returns how many this call ended. It reads the live_sessions partitions (one per
        shard; key reads, no scan), whose expiry may lag the session's (heartbeats extend only the session row):
        an entry past its expiry is checked against the session row, and moved forward when the session is still
        live. Replicas may sweep at once: ending is a compare-and-set, so each session ends (and is observed) once.
        The session's URLs expired with its lease, so no revocation is published."""
        now = now_micros()
        ended = 0
        for shard in range(LIVE_SHARDS):
            after = None
            while True:
                page = await self._store.query(LIVE_SESSIONS, {"shard": shard}, limit=SWEEP_PAGE, after=after)
                for entry in page.rows:
                    if entry["expire_time"] > now:
                        continue
                    key = {"shard": shard, "session_id": entry["session_id"]}
                    row = await self._store.get(SESSIONS, {"session_id": entry["session_id"]})
                    if row is None or row["ended"]:
                        await self._store.delete(LIVE_SESSIONS, key)
                    elif row["expire_time"] > now:
                        await self._store.update(LIVE_SESSIONS, key, {"expire_time": row["expire_time"]})
                    elif await self._close(row["session_id"]) is not None:
                        await self._streams.release(row["account_id"], row["slot"], row["session_id"])
                        ended += 1
                if page.next is None:
                    break
                after = page.next
        return ended

    def _position_ms(self, d: duration_pb2.Duration, runtime_ms: int, field: str) -> int:
        position = duration_ms(d, field)
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
            event_time=timestamp_of(row["event_time"]),
        )

    def _history_pb(self, row: Row) -> playback_pb2.WatchHistoryEntry:
        """An entry from a watch history row (watched_at) or a position row (watch_time: continue watching)."""
        return playback_pb2.WatchHistoryEntry(
            name=HISTORY.format(account=row["account_id"], profile=row["profile_id"], title=row["title_id"]),
            title=TITLE.format(title=row["title_id"]),
            watch_time=timestamp_of(row["watched_at"] if "watched_at" in row else row["watch_time"]),
            position=_ms(row["position_ms"]),
            runtime=_ms(row["runtime_ms"]),
            finished=row["finished"],
        )

    async def _record(self, session: Row, position_ms: int, event_time: int) -> tuple[bool, Row]:
        """Write the report; when applied, its ``playback.update`` event is published (by the Redis script itself
        on the write-behind path, so the event is appended with the position it announces)."""
        report = Report(
            account_id=session["account_id"],
            profile_id=session["profile_id"],
            title_id=session["title_id"],
            session_id=session["session_id"],
            started=session["start_time"],
            position_ms=position_ms,
            runtime_ms=session["runtime_ms"],
            event_time=event_time,
            region=session["region"],
        )
        update = await self._positions.update(report)
        if update.applied and not update.published:
            event = update_event(report, update.row["finished"])
            await self._bus.publish(PLAYBACK_UPDATE, event, key=session["profile_id"])
        if self._positions.finished(position_ms, session["runtime_ms"]):
            await self._completion(session["session_id"])
        return update.applied, update.row

    async def _completion(self, session_id: str) -> None:
        """Counts the session's completion once: the first report at or past the finished threshold sets the
        row's ``completed`` by compare-and-set (later ones, here or on another replica, find it set; a report that
        reaches a replica after another ended the session counts nothing)."""
        if session_id in self._completed:
            return
        if await self._store.update(
            SESSIONS, {"session_id": session_id}, {"completed": True}, if_={"completed": False, "ended": False}
        ):
            engagement.COMPLETIONS.inc()
        if len(self._completed) >= MAX_CACHED_SESSIONS:
            self._completed.clear()
        self._completed.add(session_id)

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
        hint = request.client.region  # what the player believes: checked for form, never used for entitlements
        if hint and (len(hint) != 2 or not hint.isalpha() or not hint.isupper()):
            raise InvalidArgument("client.region must be an ISO 3166-1 alpha-2 code", field_name="client.region")
        address = caller_address(context, self._geo)
        region = self._geo.region(address)
        if request.client.max_height < 0:
            raise InvalidArgument("client.max_height must not be negative", field_name="client.max_height")
        title = await self._title(title_id)
        check_entitlement(title, title_id, region, principal)
        media = await self._media.get(title.media)
        plan = self._plan(principal)
        max_height = plan.max_resolution_height
        if request.client.max_height:
            max_height = min(max_height, request.client.max_height)
        session_id = new_id()
        now = now_micros()
        expire = now + self._timeout_micros
        slot = await self._streams.claim(account_id, session_id, plan.max_concurrent_streams, expire)
        if slot is None:
            raise ResourceExhausted(
                f"the plan allows {plan.max_concurrent_streams} streams at once; stop one first",
                reason="STREAM_LIMIT_REACHED",
            )
        try:
            pathways, reload_uri = await steer(
                self._steering, self._credentials(), session_id, title_id, title, address, region, account_id
            )
        except Unavailable:
            await self._streams.release(account_id, slot, session_id)
            raise
        row = {
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
            "steering_uri": reload_uri,
            "qoe_time": now,
            # the access token's sign-in session (its `sid` claim, when the token has one): a revocation of that
            # session ends this playback session too
            "auth_session": principal.session_id or "",
            "regions": list(title.licensed_regions),
            # the server's view of the profile (the access token's signed `kids` claim), for the watch-time label
            "profile_kind": engagement.profile_kind(principal.kids),
            "qoe_stalled_ms": 0,
            "qoe_playing_ms": 0,
            "qoe_switches": 0,
            "completed": False,
        }
        await self._store.insert(SESSIONS, row)
        await self._store.insert(LIVE_SESSIONS, {"shard": live_shard(session_id), "session_id": session_id,
                                                 "expire_time": expire})  # fmt: skip
        token = self._url_token(row, expire)
        base = f"{self._manifest_base()}/sessions/{session_id}"
        resume = await self._positions.get(account_id, profile_id, title_id)
        resume_ms = 0 if resume is None or resume["finished"] else resume["position_ms"]
        session = playback_pb2.PlaybackSession(
            name=SESSION.format(session=session_id),
            title=TITLE.format(title=title_id),
            profile=PROFILE.format(account=account_id, profile=profile_id),
            device=request.device,
            manifest_urls=playback_pb2.ManifestUrls(
                hls_uri=f"{base}/master.m3u8?token={token}",
                dash_uri=f"{base}/manifest.mpd?token={token}",
                hls_aes128_uri=f"{base}/master-aes128.m3u8?token={token}" if media.presentation.hls_aes128 else "",
            ),
            steering_uri=f"{reload_uri}?token={token}" if reload_uri else "",
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
            expire_time=timestamp_of(expire),
            url_token=token,
            # protected titles: the ClearKey licence endpoint of this session (next to its manifests)
            license_uri=f"{base}/license" if media.presentation.protection_scheme else "",
        )
        engagement.STARTS.inc()
        return playback_pb2.StartPlaybackResponse(session=session)

    async def UpdatePosition(
        self, request: playback_pb2.UpdatePositionRequest, context: Context
    ) -> playback_pb2.UpdatePositionResponse:
        principal = current_principal()
        session = await self._session(principal, request.session)
        self._live(session)
        position = self._position_ms(request.position, session["runtime_ms"], "position")
        event_time = self._event_time(request)
        expire = await self._keep_alive(session)
        applied, row = await self._record(session, position, event_time)
        url_token = self._url_token(session, expire)
        if self._fast is not None:
            renew = expire - self._timeout_micros // 2  # when _keep_alive extends the lease
            self._fast.admit(principal, access_token_var.get(), session, expire, renew, url_token)
        return playback_pb2.UpdatePositionResponse(
            applied=applied,
            position=_ms(row["position_ms"]),
            finished=row["finished"],
            expire_time=timestamp_of(expire),
            url_token=url_token,
        )

    async def _keep_alive(self, session: Row) -> int:
        """Extends the session and its stream slot, writing only when half the timeout has passed since the last
        extension (a heartbeat every 10 s would otherwise cost two more durable writes each)."""
        timeout = self._timeout_micros
        now = now_micros()
        session_id = session["session_id"]
        held: int = max(session["expire_time"], self._held.get(session_id, 0))
        if held - now > timeout // 2:
            return held
        expire = now + timeout
        if not await self._streams.renew(session["account_id"], session["slot"], session_id, expire):
            await self._close(session_id)  # expired, and its slot taken by another session meanwhile
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
        if request.HasField("final_report") and not session["ended"]:
            await self._account_qoe(request.session, request.final_report, attempts=QOE_ATTEMPTS)
        if request.HasField("position"):
            position = self._position_ms(request.position, session["runtime_ms"], "position")
            event_time = self._event_time(request)
            if not session["ended"]:
                await self._record(session, position, event_time)
        if not session["ended"]:  # playback.viewed is published once, by the call that ends the session
            await self._end(session, playback_pb2.SESSION_END_REASON_STOPPED)
        row = await self._positions.get(session["account_id"], session["profile_id"], session["title_id"])
        if row is None:
            row = {**session, "position_ms": 0, "event_time": 0, "finished": False, "watch_time": now_micros()}
        return playback_pb2.StopPlaybackResponse(position=self._position_pb(row))

    async def _page(
        self, parent: str, page_size_: int, token: str, *, in_progress: bool
    ) -> tuple[list[playback_pb2.WatchHistoryEntry], str]:
        account_id, profile_id = self._own_profile(current_principal(), parent, "parent")
        size = page_size(page_size_, default=20, maximum=self._config.max_page_size)
        fingerprint = query_fingerprint({"parent": parent, "in_progress": in_progress})
        state = self._pages.decode(token, fingerprint)
        if not in_progress:  # one slice of the history partition, resumed from the store's paging state
            history = await self._positions.history(account_id, profile_id, size, state or None)
            return [self._history_pb(r) for r in history.rows], self._pages.encode(history.next, fingerprint)
        offset = int(state.decode()) if state else 0
        rows = await self._positions.in_progress(account_id, profile_id)
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

    async def _account_qoe(self, name: str, r: playback_pb2.QoeReport, *, attempts: int = 1) -> None:
        """Checks a report against its window, claims the window and adds the report to the session's totals in
        one compare-and-set (on ``qoe_time`` and, while the session lives, ``ended``: a report that loses the race
        with the session's end is not in its totals, which were observed then), records its metrics and tells
        steering of its pathway's problems. ABORTED when another report of the session took the window meanwhile
        (after ``attempts`` tries, each checked against the window as it is then)."""
        for name_, events in (("stalls", r.stalls), ("bitrate_switches", r.bitrate_switches), ("errors", r.errors)):
            if len(events) > qoe.MAX_EVENTS:
                raise InvalidArgument(f"at most {qoe.MAX_EVENTS} {name_} per report", field_name=f"report.{name_}")
        key = {"session_id": SESSION.parse(name, "session")["session"]}
        for attempt in range(attempts):
            # the report covers the time since the session's previous report (or its start), claimed atomically so
            # that two reports cannot both account for the same seconds
            row = await self._store.get(SESSIONS, key)
            if row is None:
                raise NotFound(f"playback session {name} does not exist", reason="SESSION_NOT_FOUND")
            since = row["qoe_time"] or row["start_time"]
            now = now_micros()
            bounds = qoe.Bounds(
                window_ms=max(0, now - since) // 1000,
                runtime_ms=row["runtime_ms"],
                pathways=[p["id"] for p in row["pathways"]],
            )
            qoe.check(r, bounds)
            values: dict[str, Any] = {"qoe_time": now}
            condition: dict[str, Any] = {"qoe_time": row["qoe_time"]}
            if not row["ended"]:  # an ended session's report is recorded as before, but not in its totals
                values |= engagement.added(row, r)
                condition["ended"] = False
            if await self._store.update(SESSIONS, key, values, if_=condition):
                break
            if attempt == attempts - 1:
                raise Aborted("another QoE report of this session was taken just now", reason="CONCURRENT_MODIFICATION")
        stalls, errors = qoe.record(r)
        if r.pathway_id and (stalls or errors):
            kind = steering_pb2.PATHWAY_PROBLEM_KIND_ERROR if errors else steering_pb2.PATHWAY_PROBLEM_KIND_STALL
            try:
                await self._steering.ReportPathwayProblem(
                    steering_pb2.ReportPathwayProblemRequest(
                        session=name, pathway_id=r.pathway_id, kind=kind, count=min(stalls + errors, 1000)
                    ),
                    metadata=self._credentials(),
                )
            except grpc.aio.AioRpcError as exc:  # telemetry must not fail the player
                log.warning("steering did not take a pathway problem report: %s", exc.details())

    async def ReportQoe(
        self, request: playback_pb2.ReportQoeRequest, context: Context
    ) -> playback_pb2.ReportQoeResponse:
        await self._session(current_principal(), request.session)  # the caller's own session
        await self._account_qoe(request.session, request.report)
        return playback_pb2.ReportQoeResponse()
