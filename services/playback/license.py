"""The licence service: content keys for a live playback session of the caller's own profile, in two forms.

- ``LicenseService.AcquireLicense`` over gRPC (the playback server hosts it beside PlaybackService);
- ``POST /sessions/{session}/license`` next to the session's manifests (the manifest endpoint's HTTP site), the
  W3C ClearKey licence exchange an EME player makes: ``{"kids": [base64url, ...], "type": "temporary"}`` in,
  ``{"keys": [{"kty": "oct", "kid": ..., "k": ...}], "type": "temporary"}`` out, the access token as
  ``Authorization: Bearer``. DASH manifests of protected titles name this URL (``dashif:Laurl``), and
  StartPlayback returns it (``license_uri``).

Both go through one :meth:`Licenser.grant`, which checks everything from the server's side (the verified token,
the stored session, the caller's address), never from request fields: the session exists and is the token's
profile's; it is live (not ended, its lease not lapsed, still holding its plan's stream slot); its title is still
playable, licensed in the caller's region and within the profile's maturity limit (the checks StartPlayback made,
made again: a title can leave a region mid-session); every key id asked for is a content key of that title. The
keys come from the encoder's ContentKeyService (the encoder is their only holder) with this service's own
service credential. A licence lasts ``[services.playback.license] duration``, never past the session's lease.

Key systems plug in around :meth:`Licenser.grant`: a key system is a request parser (which KIDs, for which
session) and a licence formatter. ClearKey does both here; a Widevine or FairPlay proxy would parse the key ids
from its challenge (or take them from the session's title), call the same ``grant`` and forward the challenge
with the granted keys to the vendor's licence server (docs/drm.md, "Key systems")."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from aiohttp import web

from marquee.v1 import content_keys_pb2, license_pb2, license_pb2_grpc
from services.common.auth import AccessTokens, authenticate, bearer_token, current_principal
from services.common.context import Principal
from services.common.denylist import DenyList
from services.common.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    ServiceError,
    Unavailable,
)
from services.common.geo import Geo
from services.common.ids import now_micros
from services.common.names import NamePattern
from services.common.peer import caller_address
from services.common.ratelimit import Rate, RateLimiter
from services.common.store.port import Store, StoreUnavailable
from services.common.timevalues import duration_of, timestamp_of
from services.playback.config import LicenseConfig
from services.playback.schema import SESSIONS, STREAM_SLOTS
from services.playback.servicer import check_entitlement, get_title

log = logging.getLogger("marquee.playback")
SERVICE_NAME = license_pb2.DESCRIPTOR.services_by_name["LicenseService"].full_name
SESSION = NamePattern("playbackSessions/{session}")
CONTENT_KEYS = NamePattern("titles/{title}/contentKeys")
KID_BYTES = 16
Credentials = Callable[[], tuple[tuple[str, str], ...]]
Context = grpc.aio.ServicerContext[Any, Any]


@dataclass(frozen=True)
class GrantedKey:
    track_type: str
    kid: bytes
    key: bytes

    def __repr__(self) -> str:  # never print a key
        return f"GrantedKey({self.track_type!r}, kid={self.kid.hex()})"


@dataclass(frozen=True)
class Grant:
    """What one licence gives: the keys asked for (in the order asked) and until when."""

    session_id: str
    keys: tuple[GrantedKey, ...]
    issue_micros: int
    expire_micros: int

    @property
    def duration_micros(self) -> int:
        return self.expire_micros - self.issue_micros


class Licenser:
    """The checks and the keys of every licence, whatever the key system (see the module's docstring)."""

    def __init__(
        self,
        config: LicenseConfig,
        store: Store,
        catalog: Any,  # CatalogServiceStub on a grpc.aio channel
        content_keys: Any,  # ContentKeyServiceStub on a grpc.aio channel (the encoder); None: no encoder known
        service_credentials: Credentials,
        limiter: RateLimiter,
    ) -> None:
        self._config = config
        self._store = store
        self._limiter = limiter
        self._catalog = catalog
        self._content_keys = content_keys
        self._credentials = service_credentials

    @property
    def max_key_ids(self) -> int:
        return self._config.max_key_ids

    def check_key_ids(self, key_ids: Sequence[bytes]) -> list[bytes]:
        """The key ids asked for, without repeats: at least one, at most the limit, 16 bytes each."""
        if not key_ids:
            raise InvalidArgument(
                "a licence request names at least one key id", field_name="key_ids", reason="LICENSE_REQUEST_INVALID"
            )
        if len(key_ids) > self._config.max_key_ids:
            raise InvalidArgument(
                f"a licence request names at most {self._config.max_key_ids} key ids ({len(key_ids)} given)",
                field_name="key_ids",
                reason="LICENSE_TOO_MANY_KEYS",
            )
        for i, kid in enumerate(key_ids):
            if len(kid) != KID_BYTES:
                raise InvalidArgument(
                    f"key_ids[{i}] is {len(kid)} bytes long; a key id is {KID_BYTES}",
                    field_name=f"key_ids[{i}]",
                    reason="LICENSE_REQUEST_INVALID",
                )
        return list(dict.fromkeys(key_ids))

    async def admit(self, account_id: str) -> None:
        """Counts one licence (streaming or offline) against the account's ``per_account`` rate."""
        await limit(self._limiter, f"license:account:{account_id}", self._config.per_account, "licences")

    async def grant(self, principal: Principal, session_name: str, key_ids: Sequence[bytes], region: str) -> Grant:
        """The licence for ``key_ids`` of session ``session_name`` to ``principal`` (a verified access token),
        calling from ``region`` (the server's answer for its address); a typed refusal otherwise."""
        wanted = self.check_key_ids(key_ids)
        session_id = SESSION.parse(session_name, "session")["session"]
        await self.admit(principal.account_id)
        row = await self._store.get(SESSIONS, {"session_id": session_id})
        if row is None:
            raise NotFound(f"playback session {session_name} does not exist", reason="SESSION_NOT_FOUND")
        if (row["account_id"], row["profile_id"]) != (principal.account_id, principal.profile_id):
            # no admin exception: a licence is for the viewer whose session it is
            raise PermissionDenied(
                "the playback session belongs to another profile", reason="LICENSE_SESSION_NOT_YOURS"
            )
        now = now_micros()
        if row["ended"] or row["expire_time"] <= now:
            raise FailedPrecondition(
                f"playback session {session_name} has ended: start a new one", reason="LICENSE_SESSION_NOT_LIVE"
            )
        slot = await self._store.get(STREAM_SLOTS, {"account_id": row["account_id"], "slot": row["slot"]})
        if slot is None or slot["session_id"] != session_id or slot["expire_time"] <= now:
            raise FailedPrecondition(
                f"playback session {session_name} no longer holds a stream of the plan: start a new one",
                reason="LICENSE_SESSION_NOT_LIVE",
            )
        title_id = row["title_id"]
        title = await get_title(self._catalog, self._credentials(), title_id)
        check_entitlement(title, title_id, region, principal)
        # keys belong to the media the session plays (the encoder makes them per encoded title), which several
        # catalog titles may share
        keys = await self.media_keys(row["media_id"])
        granted = []
        for kid in wanted:
            found = keys.get(kid)
            if found is None:
                raise PermissionDenied(
                    f"key id {kid.hex()} is not a content key of the session's title",
                    reason="LICENSE_KEY_NOT_IN_TITLE",
                    metadata={"key_id": kid.hex()},
                )
            granted.append(found)
        expire = min(now + int(self._config.duration * 1_000_000), row["expire_time"])
        log.info(
            "licence for playbackSessions/%s: %s",
            session_id,
            ", ".join(f"{k.track_type} {k.kid.hex()}" for k in granted),  # KIDs only, never keys
        )
        return Grant(session_id, tuple(granted), now, expire)

    async def media_keys(self, media_id: str) -> dict[bytes, GrantedKey]:
        """The content keys of a title's media (the encoder's title: ``Title.media``) by KID, from the encoder."""
        if self._content_keys is None:
            raise FailedPrecondition(
                "no key service is known to this playback service (set addresses.encoder)",
                reason="CONTENT_KEY_UNAVAILABLE",
            )
        request = content_keys_pb2.GetContentKeysRequest(name=CONTENT_KEYS.format(title=media_id))
        try:
            reply = await self._content_keys.GetContentKeys(request, metadata=self._credentials())
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:  # never packaged protected: no key id is the title's
                return {}
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                raise FailedPrecondition(
                    f"the content keys of media {media_id} are unavailable: {exc.details()}",
                    reason="CONTENT_KEY_UNAVAILABLE",
                ) from None
            raise Unavailable(f"the key service (encoder) did not answer: {exc.details()}") from None
        return {
            k.key_id: GrantedKey(k.track_type, k.key_id, k.key)
            for k in reply.content_keys.keys
            if len(k.key_id) == KID_BYTES
        }


class LicenseServicer(license_pb2_grpc.LicenseServiceServicer):
    def __init__(self, licenser: Licenser, geo: Geo) -> None:
        self._licenser = licenser
        self._geo = geo

    async def AcquireLicense(
        self, request: license_pb2.AcquireLicenseRequest, context: Context
    ) -> license_pb2.AcquireLicenseResponse:
        principal = current_principal()
        region = self._geo.region(caller_address(context, self._geo))
        grant = await self._licenser.grant(principal, request.session, list(request.key_ids), region)
        return license_pb2.AcquireLicenseResponse(
            license=license_pb2.License(
                session=SESSION.format(session=grant.session_id),
                keys=[
                    content_keys_pb2.ContentKey(track_type=k.track_type, key_id=k.kid, key=k.key) for k in grant.keys
                ],
                duration=duration_of(grant.duration_micros),
                expire_time=timestamp_of(grant.expire_micros),
            )
        )


# --- ClearKey over HTTP -------------------------------------------------------------------------------------------

CLEARKEY_TYPES = ("temporary",)  # persistent-license comes with offline downloads
_B64URL = re.compile(r"^[A-Za-z0-9_-]{22}(==)?$")  # 16 bytes: 22 characters, padding tolerated
CORS = {
    "Access-Control-Allow-Origin": "*",  # bearer tokens, never cookies: any origin may ask, none is trusted more
    "Access-Control-Expose-Headers": "Marquee-License-Duration, Marquee-License-Expires",
}
HEADERS = {"Cache-Control": "no-store", **CORS}
PREFLIGHT = {
    **CORS,
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "authorization, content-type, x-request-id",
    "Access-Control-Max-Age": "7200",
}
_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
}
# by reason, where the code alone does not say it: 410 for a session over for good, 503 for keys the encoder cannot
# unwrap now (every other FAILED_PRECONDITION, a refusal of this caller for this title, is 403)
_BY_REASON = {"LICENSE_SESSION_NOT_LIVE": 410, "CONTENT_KEY_UNAVAILABLE": 503}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parse_clearkey_request(body: bytes, max_key_ids: int) -> tuple[list[bytes], str]:
    """The key ids and licence type of a W3C ClearKey licence request; INVALID_ARGUMENT (reason
    LICENSE_REQUEST_INVALID, or LICENSE_TOO_MANY_KEYS) naming what is wrong otherwise."""

    def invalid(message: str, field: str = "body") -> InvalidArgument:
        return InvalidArgument(message, field_name=field, reason="LICENSE_REQUEST_INVALID")

    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise invalid('the licence request is not JSON (W3C ClearKey: {"kids": [...], "type": ...})') from None
    if not isinstance(doc, dict):
        raise invalid("the licence request is not a JSON object")
    kids = doc.get("kids")
    if not isinstance(kids, list) or not kids:
        raise invalid('the licence request needs "kids": a non-empty list of base64url key ids', "kids")
    if len(kids) > max_key_ids:
        raise InvalidArgument(
            f"a licence request names at most {max_key_ids} key ids ({len(kids)} given)",
            field_name="kids",
            reason="LICENSE_TOO_MANY_KEYS",
        )
    kind = doc.get("type", "temporary")
    if kind not in CLEARKEY_TYPES:
        raise invalid(
            f'"type" must be one of {", ".join(CLEARKEY_TYPES)} (offline licences come with downloads)', "type"
        )
    key_ids = []
    for i, kid in enumerate(kids):
        if not isinstance(kid, str) or not _B64URL.match(kid):
            raise invalid(f"kids[{i}] is not a base64url key id of {KID_BYTES} bytes", f"kids[{i}]")
        try:
            key_ids.append(base64.urlsafe_b64decode(kid.rstrip("=") + "=="))
        except (binascii.Error, ValueError):
            raise invalid(f"kids[{i}] is not base64url", f"kids[{i}]") from None
    return key_ids, str(kind)


def clearkey_licence(grant: Grant, kind: str) -> dict[str, Any]:
    """The W3C ClearKey licence (a JSON Web Key set) for a grant."""
    return {"keys": [{"kty": "oct", "kid": b64url(k.kid), "k": b64url(k.key)} for k in grant.keys], "type": kind}


async def limit(limiter: RateLimiter, key: str, rate: Rate, what: str) -> None:
    """Count one request against ``rate`` for ``key``: RESOURCE_EXHAUSTED (RATE_LIMITED, with the exact wait)
    above it."""
    decision = await limiter.hit(key, rate)
    if not decision.allowed:
        raise ResourceExhausted(
            f"too many {what} asked for (at most {rate.limit} per {rate.period:g} s): retry in"
            f" {math.ceil(decision.retry_after)} s",
            reason="RATE_LIMITED",
            retry_after=decision.retry_after,
        )


def _refused(err: ServiceError) -> web.Response:
    status = _BY_REASON.get(err.reason) or _STATUS.get(err.code, 403)
    body = {"error": {"code": err.code.name, "reason": err.reason, "message": err.message}}
    headers = dict(HEADERS)
    retry_after = getattr(err, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return web.json_response(body, status=status, headers=headers)


class ClearKeyEndpoint:
    """On the manifest endpoint's site (with their CORS preflights): ``POST /sessions/{session}/license``, the W3C
    ClearKey licence exchange, and ``GET /sessions/{session}/keys/{kid}``, one key raw (16 bytes): HLS key delivery
    with ``KEYFORMAT="identity"``, the key URI the edges write into a protected title's media playlists (how Shaka
    Player takes ClearKey from HLS). Both make every check of a licence."""

    def __init__(
        self,
        licenser: Licenser,
        tokens: AccessTokens,
        denylist: DenyList,
        geo: Geo,
        config: LicenseConfig,
        limiter: RateLimiter,
    ) -> None:
        self._licenser = licenser
        self._tokens = tokens
        self._denylist = denylist
        self._geo = geo
        self._max_body = config.max_body_bytes
        self._per_address = config.per_address
        self._limiter = limiter

    def add_routes(self, app: web.Application, session_pattern: str) -> None:
        path = f"/sessions/{{session:{session_pattern}}}/license"
        app.router.add_post(path, self.handle)
        app.router.add_route("OPTIONS", path, self.preflight)
        key = f"/sessions/{{session:{session_pattern}}}/keys/{{kid:[0-9a-f]{{32}}}}"
        app.router.add_get(key, self.key)
        app.router.add_route("OPTIONS", key, self.preflight)

    async def preflight(self, request: web.Request) -> web.Response:
        return web.Response(status=204, headers=PREFLIGHT)

    async def _body(self, request: web.Request) -> bytes:
        too_large = InvalidArgument(
            f"the licence request is larger than {self._max_body} bytes", reason="LICENSE_REQUEST_INVALID"
        )
        if request.content_length is not None and request.content_length > self._max_body:
            raise too_large
        body = b""
        while chunk := await request.content.read(self._max_body + 1 - len(body)):
            body += chunk
            if len(body) > self._max_body:
                raise too_large
        return body

    async def _caller(self, request: web.Request) -> tuple[Principal, str]:
        """The verified, unrevoked caller and its region, once its address is within its request rate."""
        address, region = self._geo.http_client(request)
        await limit(self._limiter, f"license:address:{address}", self._per_address, "licence requests")
        token = bearer_token(request.headers.get("Authorization", ""))
        return await authenticate(token, self._tokens, self._denylist), region

    @staticmethod
    def _headers(grant: Grant) -> dict[str, str]:
        return {
            **HEADERS,
            "Marquee-License-Duration": str(grant.duration_micros // 1_000_000),
            "Marquee-License-Expires": str(grant.expire_micros // 1_000_000),
        }

    async def handle(self, request: web.Request) -> web.Response:
        session = SESSION.format(session=request.match_info["session"])
        try:
            principal, region = await self._caller(request)
            try:
                body = await self._body(request)
            except InvalidArgument as err:
                response = _refused(err)
                response.set_status(413)
                return response
            key_ids, kind = parse_clearkey_request(body, self._licenser.max_key_ids)
            grant = await self._licenser.grant(principal, session, key_ids, region)
        except ServiceError as err:
            return _refused(err)
        except StoreUnavailable as exc:
            return _refused(Unavailable(str(exc), reason="STORE_UNAVAILABLE"))
        return web.json_response(clearkey_licence(grant, kind), headers=self._headers(grant))

    async def key(self, request: web.Request) -> web.Response:
        session = SESSION.format(session=request.match_info["session"])
        try:
            principal, region = await self._caller(request)
            grant = await self._licenser.grant(principal, session, [bytes.fromhex(request.match_info["kid"])], region)
        except ServiceError as err:
            return _refused(err)
        except StoreUnavailable as exc:
            return _refused(Unavailable(str(exc), reason="STORE_UNAVAILABLE"))
        return web.Response(
            body=grant.keys[0].key, content_type="application/octet-stream", headers=self._headers(grant)
        )
