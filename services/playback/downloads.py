"""Offline downloads (``DownloadService``, served by playback): a title saved on a registered device with a
persistent licence that expires.

Everything that decides comes from the server's side: the device is the access token's (SelectProfile with a
registered device), checked against the accounts service at every create and check-in; the plan (its download
limits and offline terms) is the token's; the region is the caller's address's. A download holds a slot of the
plan's limits (``download_slots.py``) while its licence is valid. Its signed manifest URLs (on the manifest
endpoint, ``/downloads/{account}/{profile}/{download}/``) and its title's media URLs are bound to the download's id
and expire with its licence; revoking or releasing it revokes them at every edge through the same
``playback.session_ended`` event that ends a playback session's URLs.

Revocation: the follower of ``accounts.revoked`` revokes the downloads made under revoked sign-in sessions (all
of an account's on sign-out everywhere, a password change or deletion); a check-in (RenewDownload) revokes a
download whose device was removed or whose title the caller may no longer watch (it left the caller's region, the
profile's maturity limit, not playable). A device learns of a revocation at its next check-in."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from marquee.native import TokenKeyring
from marquee.v1 import accounts_pb2, content_keys_pb2, download_pb2, download_pb2_grpc, playback_pb2
from services.common.auth import require_profile
from services.common.bus.port import EventBus
from services.common.context import Principal
from services.common.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, Unavailable
from services.common.geo import Geo
from services.common.ids import new_id, now_micros
from services.common.names import NamePattern
from services.common.paging import PageTokens, page_size, query_fingerprint
from services.common.peer import caller_address
from services.common.plans import Plan, Plans
from services.common.store.port import MAX_QUERY_LIMIT, Row, Store
from services.common.timevalues import duration_of, timestamp_of
from services.common.topics import PLAYBACK_SESSION_ENDED
from services.playback.download_slots import DownloadSlots, Holder
from services.playback.license import GrantedKey, Licenser
from services.playback.media import MediaLibrary
from services.playback.schema import DOWNLOAD_REVOCATIONS, DOWNLOADS
from services.playback.servicer import check_entitlement, get_title, seconds_up, steer

log = logging.getLogger("marquee.playback")
SERVICE_NAME = download_pb2.DESCRIPTOR.services_by_name["DownloadService"].full_name
Context = grpc.aio.ServicerContext[Any, Any]
Credentials = Callable[[], tuple[tuple[str, str], ...]]
DOWNLOAD = NamePattern("accounts/{account}/profiles/{profile}/downloads/{download}")
PROFILE = NamePattern("accounts/{account}/profiles/{profile}")
DEVICE = NamePattern("accounts/{account}/devices/{device}")
TITLE = NamePattern("titles/{title}")
SESSION = NamePattern("playbackSessions/{session}")
ACTIVE, REVOKED = "active", "revoked"
# revoked and expired downloads stay listed this long past their licence's expiry (so a device that checks in
# late still learns why), then the next listing drops them
KEEP_MICROS = 30 * 86_400 * 1_000_000
# a revoked sign-in session is remembered as long as an offline licence can last (Plan.offline_days <= 365)
REVOCATION_TTL = 366 * 86_400
# a refusal of the title at check-in that revokes the download (anything else, an outage, leaves it as it is)
REVOKING = ("GEO_BLOCKED", "MATURITY_RESTRICTED", "TITLE_NOT_PLAYABLE", "TITLE_NOT_FOUND")


def manifest_path(row: Row) -> str:
    """Where a download's manifests are, on the manifest endpoint: ``/downloads/{account}/{profile}/{download}``."""
    return f"/downloads/{row['account_id']}/{row['profile_id']}/{row['download_id']}"


def download_acl(row: Row) -> list[str]:
    """The paths a download's signed URL token grants: its manifests and its title's media."""
    return [f"/v/{row['media_id']}/*", f"{manifest_path(row)}/*"]


class DownloadServicer(download_pb2_grpc.DownloadServiceServicer):
    def __init__(
        self,
        store: Store,
        bus: EventBus,
        plans: Plans,
        licenser: Licenser,
        catalog: Any,  # CatalogServiceStub
        steering: Any,  # SteeringServiceStub
        accounts: Any,  # AccountServiceStub; None: no accounts service known (downloads are refused)
        service_credentials: Credentials,
        keys: TokenKeyring,
        manifest_base: Callable[[], str],
        pages: PageTokens,
        geo: Geo,
        media: MediaLibrary,
    ) -> None:
        self._store = store
        self._bus = bus
        self._plans = plans
        self._licenser = licenser
        self._catalog = catalog
        self._steering = steering
        self._accounts = accounts
        self._credentials = service_credentials
        self._keys = keys
        self._manifest_base = manifest_base
        self._pages = pages
        self._geo = geo
        self._media = media
        self._slots = DownloadSlots(store)

    # --- helpers ------------------------------------------------------------------------------------------------

    def _plan(self, principal: Principal) -> Plan:
        return self._plans.effective(
            principal.plan, by=lambda p: (p.max_downloads, p.max_downloads_per_device, p.offline_days)
        )

    @staticmethod
    def _device(principal: Principal) -> str:
        if not principal.device_id:
            raise FailedPrecondition(
                "downloads are for a registered device: select the profile with the device (SelectProfile.device)",
                reason="DEVICE_REQUIRED",
            )
        return principal.device_id

    async def _check_registered(self, account_id: str, device_id: str) -> bool:
        """Whether the device is still registered to the account (the accounts service says; its outage is
        UNAVAILABLE, never a guess)."""
        if self._accounts is None:
            raise FailedPrecondition(
                "no accounts service is known to this playback service (set addresses.accounts)",
                reason="DEVICE_NOT_REGISTERED",
            )
        request = accounts_pb2.GetDeviceRequest(name=DEVICE.format(account=account_id, device=device_id))
        try:
            await self._accounts.GetDevice(request, metadata=self._credentials())
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise Unavailable(f"the accounts service did not answer: {exc.details()}") from None
        return True

    async def _record(self, name: str, field: str = "name") -> tuple[Principal, Row]:
        """The caller's own download (its profile's, or any for an admin): NOT_FOUND otherwise."""
        ids = DOWNLOAD.parse(name, field)
        principal = require_profile(ids["account"], ids["profile"])
        row = await self._store.get(
            DOWNLOADS, {"account_id": ids["account"], "profile_id": ids["profile"], "download_id": ids["download"]}
        )
        if row is None:
            raise NotFound(f"download {name} does not exist", reason="DOWNLOAD_NOT_FOUND")
        return principal, row

    @staticmethod
    def _on_its_device(principal: Principal, row: Row) -> None:
        if principal.device_id != row["device_id"]:
            raise PermissionDenied(
                "the download is held by another device of the account: renew or play it there",
                reason="DOWNLOAD_OTHER_DEVICE",
                metadata={"device": DEVICE.format(account=row["account_id"], device=row["device_id"])},
            )

    @staticmethod
    def _revoked_error(row: Row) -> FailedPrecondition:
        reason = row["revoke_reason"] or "REVOKED"
        return FailedPrecondition(
            f"the download was revoked ({reason}): delete it from the device",
            reason="DOWNLOAD_REVOKED",
            metadata={"revoke_reason": reason},
        )

    def _name(self, row: Row) -> str:
        return DOWNLOAD.format(account=row["account_id"], profile=row["profile_id"], download=row["download_id"])

    def _pb(self, row: Row, now: int) -> download_pb2.Download:
        state = download_pb2.Download.STATE_ACTIVE
        if row["state"] == REVOKED:
            state = download_pb2.Download.STATE_REVOKED
        elif row["expire_time"] <= now:
            state = download_pb2.Download.STATE_EXPIRED
        d = download_pb2.Download(
            name=self._name(row),
            title=TITLE.format(title=row["title_id"]),
            device=DEVICE.format(account=row["account_id"], device=row["device_id"]),
            state=state,
            revoke_reason=row["revoke_reason"] or "",
            max_resolution_height=row["max_height"],
            create_time=timestamp_of(row["create_time"]),
            expire_time=timestamp_of(row["expire_time"]),
        )
        if row["play_start_time"]:
            d.play_start_time.CopyFrom(timestamp_of(row["play_start_time"]))
        if state == download_pb2.Download.STATE_ACTIVE:
            token = self._keys.sign(
                download_acl(row), seconds_up(row["expire_time"]), row["download_id"], row["regions"] or None
            )
            base = f"{self._manifest_base()}{manifest_path(row)}"
            d.manifest_urls.CopyFrom(
                playback_pb2.ManifestUrls(
                    hls_uri=f"{base}/master.m3u8?token={token}", dash_uri=f"{base}/manifest.mpd?token={token}"
                )
            )
        return d

    def _licence(self, row: Row, keys: Sequence[GrantedKey], plan: Plan) -> download_pb2.OfflineLicense:
        log.info(
            "offline licence for %s: %s", self._name(row), ", ".join(f"{k.track_type} {k.kid.hex()}" for k in keys)
        )  # KIDs only, never keys
        return download_pb2.OfflineLicense(
            download=self._name(row),
            keys=[content_keys_pb2.ContentKey(track_type=k.track_type, key_id=k.kid, key=k.key) for k in keys],
            expire_time=timestamp_of(row["expire_time"]),
            play_window=duration_of(int(plan.offline_play_hours * 3600 * 1_000_000)),
        )

    async def _entitled_keys(self, principal: Principal, title_id: str, region: str) -> tuple[Any, list[GrantedKey]]:
        """The title, checked as StartPlayback checks it, and its content keys (none for a title in the clear)."""
        title = await get_title(self._catalog, self._credentials(), title_id)
        check_entitlement(title, title_id, region, principal)
        if not (await self._media.get(title.media)).doc.get("protection"):
            return title, []
        keys = await self._licenser.media_keys(title.media)
        return title, sorted(keys.values(), key=lambda k: k.track_type)

    async def _end_urls(self, row: Row) -> None:
        """Revokes the download's signed URLs at every edge (steering follows ``playback.session_ended``)."""
        now = now_micros()
        ended = playback_pb2.SessionEndedEvent(
            session=SESSION.format(session=row["download_id"]),
            profile=PROFILE.format(account=row["account_id"], profile=row["profile_id"]),
            reason=playback_pb2.SESSION_END_REASON_REVOKED,
            end_time=timestamp_of(now),
            url_expire_time=timestamp_pb2.Timestamp(seconds=seconds_up(max(row["expire_time"], now))),
        )
        await self._bus.publish(PLAYBACK_SESSION_ENDED, ended.SerializeToString(), key=row["download_id"])

    async def revoke(self, row: Row, reason: str) -> bool:
        """Revokes an active download (once, whichever replica or call gets there first): its slot is freed and
        its URLs revoked at the edges. False when it was not active."""
        key = {k: row[k] for k in ("account_id", "profile_id", "download_id")}
        values = {"state": REVOKED, "revoke_reason": reason}
        if not await self._store.update(DOWNLOADS, key, values, if_={"state": ACTIVE}):
            return False
        await self._end_urls(row)
        await self._slots.release(row["account_id"], row["slot"], row["download_id"])
        log.info("download %s revoked: %s", self._name(row), reason)
        return True

    async def revoke_signed_out(self, account_id: str, auth_session: str, revoke_time: int) -> int:
        """The follower of ``accounts.revoked``: revokes the account's downloads made at or before ``revoke_time``
        under sign-in session ``auth_session`` (every one, when empty). The account's slots list its active
        downloads: a key read, no scan; the revocation is also kept, so a download whose licence had lapsed (and
        whose slot went to another) is revoked at its next check-in. Returns how many were revoked now."""
        await self._store.insert(
            DOWNLOAD_REVOCATIONS,
            {"account_id": account_id, "auth_session": auth_session, "revoke_time": revoke_time},
            ttl=REVOCATION_TTL,
            timestamp=revoke_time,  # a late copy of an older revocation never replaces a newer one
        )
        revoked = 0
        for slot in await self._slots.held(account_id):
            if auth_session and slot["auth_session"] != auth_session:
                continue
            row = await self._store.get(
                DOWNLOADS,
                {"account_id": account_id, "profile_id": slot["profile_id"], "download_id": slot["download_id"]},
            )
            if row is None or row["state"] != ACTIVE or row["create_time"] > revoke_time:
                continue
            revoked += await self.revoke(row, "SIGNED_OUT")
        return revoked

    async def _check_live(self, row: Row) -> None:
        """FAILED_PRECONDITION DOWNLOAD_REVOKED when the download is revoked, or (revoking it now) when its sign-in
        session, or every session of its account, was revoked after it was made."""
        if row["state"] == REVOKED:
            raise self._revoked_error(row)
        page = await self._store.query(DOWNLOAD_REVOCATIONS, {"account_id": row["account_id"]}, limit=MAX_QUERY_LIMIT)
        for r in page.rows:
            if r["auth_session"] in ("", row["auth_session"]) and r["revoke_time"] >= row["create_time"]:
                await self.revoke(row, "SIGNED_OUT")
                raise self._revoked_error({**row, "revoke_reason": "SIGNED_OUT"})

    # --- RPCs ---------------------------------------------------------------------------------------------------

    async def CreateDownload(
        self, request: download_pb2.CreateDownloadRequest, context: Context
    ) -> download_pb2.CreateDownloadResponse:
        ids = PROFILE.parse(request.parent, "parent")
        principal = require_profile(ids["account"], ids["profile"])
        account_id, profile_id = ids["account"], ids["profile"]
        device_id = self._device(principal)
        title_id = TITLE.parse(request.title, "title")["title"]
        if request.max_height < 0:
            raise InvalidArgument("max_height must not be negative", field_name="max_height")
        await self._licenser.admit(account_id)
        if not await self._check_registered(account_id, device_id):
            raise FailedPrecondition(
                "the access token's device is no longer registered to the account", reason="DEVICE_NOT_REGISTERED"
            )
        address = caller_address(context, self._geo)
        region = self._geo.region(address)
        plan = self._plan(principal)
        title, keys = await self._entitled_keys(principal, title_id, region)
        max_height = plan.max_resolution_height
        if request.max_height:
            max_height = min(max_height, request.max_height)
        download_id = new_id()
        now = now_micros()
        expire = now + int(plan.offline_days * 86_400 * 1_000_000)
        holder = Holder(download_id, profile_id, device_id, principal.session_id or "")
        slot = await self._slots.claim(account_id, holder, plan, expire)
        try:  # a download is fetched once: its pathways, without steering's reloads
            pathways, _ = await steer(
                self._steering, self._credentials(), download_id, title_id, title, address, region, account_id
            )
        except Unavailable:
            await self._slots.release(account_id, slot, download_id)
            raise
        row = {
            "account_id": account_id,
            "profile_id": profile_id,
            "download_id": download_id,
            "device_id": device_id,
            "title_id": title_id,
            "media_id": title.media,
            "max_height": max_height,
            "pathways": pathways,
            "regions": list(title.licensed_regions),
            "auth_session": principal.session_id or "",
            "slot": slot,
            "state": ACTIVE,
            "revoke_reason": "",
            "create_time": now,
            "expire_time": expire,
            "play_start_time": 0,
        }
        await self._store.insert(DOWNLOADS, row)
        return download_pb2.CreateDownloadResponse(download=self._pb(row, now), license=self._licence(row, keys, plan))

    async def GetDownload(
        self, request: download_pb2.GetDownloadRequest, context: Context
    ) -> download_pb2.GetDownloadResponse:
        _, row = await self._record(request.name)
        return download_pb2.GetDownloadResponse(download=self._pb(row, now_micros()))

    async def ListDownloads(
        self, request: download_pb2.ListDownloadsRequest, context: Context
    ) -> download_pb2.ListDownloadsResponse:
        ids = PROFILE.parse(request.parent, "parent")
        require_profile(ids["account"], ids["profile"])
        size = page_size(request.page_size, default=50, maximum=100)
        fingerprint = query_fingerprint({"parent": request.parent, "list": "downloads"})
        state = self._pages.decode(request.page_token, fingerprint)
        partition = {"account_id": ids["account"], "profile_id": ids["profile"]}
        page = await self._store.query(DOWNLOADS, partition, limit=min(size, MAX_QUERY_LIMIT), after=state or None)
        now = now_micros()
        shown = []
        for row in page.rows:
            if row["expire_time"] + KEEP_MICROS <= now and (row["state"] == REVOKED or row["expire_time"] <= now):
                # long over: dropped (its slot went with its expiry or revocation)
                await self._store.delete(DOWNLOADS, {**partition, "download_id": row["download_id"]})
                continue
            shown.append(self._pb(row, now))
        return download_pb2.ListDownloadsResponse(
            downloads=shown, next_page_token=self._pages.encode(page.next, fingerprint)
        )

    async def RenewDownload(
        self, request: download_pb2.RenewDownloadRequest, context: Context
    ) -> download_pb2.RenewDownloadResponse:
        principal, row = await self._record(request.name)
        self._on_its_device(principal, row)
        await self._check_live(row)
        await self._licenser.admit(row["account_id"])
        if not await self._check_registered(row["account_id"], row["device_id"]):
            await self.revoke(row, "DEVICE_REMOVED")
            raise self._revoked_error({**row, "revoke_reason": "DEVICE_REMOVED"})
        region = self._geo.region(caller_address(context, self._geo))
        try:
            _, keys = await self._entitled_keys(principal, row["title_id"], region)
        except (FailedPrecondition, NotFound) as err:
            if err.reason not in REVOKING:
                raise
            await self.revoke(row, err.reason)
            raise self._revoked_error({**row, "revoke_reason": err.reason}) from None
        plan = self._plan(principal)
        now = now_micros()
        expire = now + int(plan.offline_days * 86_400 * 1_000_000)
        slot = row["slot"]
        if row["expire_time"] > now and await self._slots.renew(row["account_id"], slot, row["download_id"], expire):
            pass  # still within its licence: the same slot, held longer
        else:  # expired: its place in the limits is claimed again, as for a new download
            await self._slots.release(row["account_id"], slot, row["download_id"])
            holder = Holder(row["download_id"], row["profile_id"], row["device_id"], row["auth_session"])
            slot = await self._slots.claim(row["account_id"], holder, plan, expire)
        key = {k: row[k] for k in ("account_id", "profile_id", "download_id")}
        values = {"expire_time": expire, "play_start_time": 0, "slot": slot}
        if not await self._store.update(DOWNLOADS, key, values, if_={"state": ACTIVE}):  # revoked meanwhile
            await self._slots.release(row["account_id"], slot, row["download_id"])
            latest = await self._store.get(DOWNLOADS, key)
            raise self._revoked_error(latest or row)
        row = {**row, **values}
        return download_pb2.RenewDownloadResponse(download=self._pb(row, now), license=self._licence(row, keys, plan))

    async def StartOfflinePlayback(
        self, request: download_pb2.StartOfflinePlaybackRequest, context: Context
    ) -> download_pb2.StartOfflinePlaybackResponse:
        principal, row = await self._record(request.name)
        self._on_its_device(principal, row)
        await self._check_live(row)
        now = now_micros()
        if row["expire_time"] <= now:
            raise FailedPrecondition("the download's licence has expired: renew it", reason="DOWNLOAD_EXPIRED")
        if not row["play_start_time"]:
            window = int(self._plan(principal).offline_play_hours * 3600 * 1_000_000)
            expire = min(row["expire_time"], now + window)
            key = {k: row[k] for k in ("account_id", "profile_id", "download_id")}
            started = {"play_start_time": now, "expire_time": expire}
            if await self._store.update(DOWNLOADS, key, started, if_={"state": ACTIVE, "play_start_time": 0}):
                await self._slots.renew(row["account_id"], row["slot"], row["download_id"], expire)
            latest = await self._store.get(DOWNLOADS, key)
            row = latest or row
            if row["state"] == REVOKED:
                raise self._revoked_error(row)
        return download_pb2.StartOfflinePlaybackResponse(download=self._pb(row, now))

    async def ReleaseDownload(
        self, request: download_pb2.ReleaseDownloadRequest, context: Context
    ) -> download_pb2.ReleaseDownloadResponse:
        _, row = await self._record(request.name)
        key = {k: row[k] for k in ("account_id", "profile_id", "download_id")}
        if await self._store.delete(DOWNLOADS, key, if_exists=True) and row["state"] == ACTIVE:
            await self._end_urls(row)
            await self._slots.release(row["account_id"], row["slot"], row["download_id"])
        return download_pb2.ReleaseDownloadResponse()
