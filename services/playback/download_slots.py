"""The plan's download limits: an account holds one ``download_slots`` row per download, at most ``max_downloads``
of them, and at most ``max_downloads_per_device`` for one device.

A slot is claimed by compare-and-set (a free slot, or one whose licence has expired: an expired download holds
nothing until it is renewed), renewed with its licence, and freed by release or revocation. The per-account limit
is exact (slot numbers stop at it). The per-device limit is checked before the claim and again after it: when
claims for one device race past it, each claimant that sees the device over its limit gives its slot back and is
refused, so the limit is never exceeded (at worst both racers are refused and retry)."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.errors import ResourceExhausted
from services.common.ids import now_micros
from services.common.plans import Plan
from services.common.store.port import MAX_QUERY_LIMIT, Row, Store
from services.playback.schema import DOWNLOAD_SLOTS


@dataclass(frozen=True)
class Holder:
    """Who a slot is for."""

    download_id: str
    profile_id: str
    device_id: str
    auth_session: str


def _limit_reached(what: str, limit: int) -> ResourceExhausted:
    return ResourceExhausted(
        f"the plan allows {limit} downloads {what}; release one first",
        reason="DOWNLOAD_LIMIT_REACHED",
        metadata={"limit": str(limit), "scope": "device" if "device" in what else "account"},
    )


class DownloadSlots:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def held(self, account_id: str) -> list[Row]:
        """The account's slots (live or expired), in slot order."""
        page = await self._store.query(DOWNLOAD_SLOTS, {"account_id": account_id}, limit=MAX_QUERY_LIMIT)
        return list(page.rows)

    async def claim(self, account_id: str, holder: Holder, plan: Plan, expire_time: int) -> int:
        """A slot for ``holder`` until ``expire_time``; RESOURCE_EXHAUSTED (DOWNLOAD_LIMIT_REACHED, the limit in
        the message) when the account or the device has the plan's number of downloads already."""
        if plan.max_downloads == 0 or plan.max_downloads_per_device == 0:
            raise ResourceExhausted(f"the {plan.display_name} plan has no downloads", reason="DOWNLOAD_LIMIT_REACHED")
        now = now_micros()
        rows = await self.held(account_id)
        live = [r for r in rows if r["expire_time"] > now]
        self._check_device(live, holder, plan)
        if len(live) >= plan.max_downloads:
            raise _limit_reached("at once on an account", plan.max_downloads)
        taken = {r["slot"]: r for r in rows}
        for slot in range(plan.max_downloads):
            if await self._take(account_id, slot, taken.get(slot), holder, expire_time, now):
                break
        else:
            raise _limit_reached("at once on an account", plan.max_downloads)
        # a claim for the same device may have raced this one past the device's limit: then give it back
        live = [r for r in await self.held(account_id) if r["expire_time"] > now]
        if sum(r["device_id"] == holder.device_id for r in live) > plan.max_downloads_per_device:
            await self.release(account_id, slot, holder.download_id)
            raise _limit_reached("at once on one device", plan.max_downloads_per_device)
        return slot

    @staticmethod
    def _check_device(live: list[Row], holder: Holder, plan: Plan) -> None:
        if sum(r["device_id"] == holder.device_id for r in live) >= plan.max_downloads_per_device:
            raise _limit_reached("at once on one device", plan.max_downloads_per_device)

    async def _take(
        self, account_id: str, slot: int, row: Row | None, holder: Holder, expire_time: int, now: int
    ) -> bool:
        key = {"account_id": account_id, "slot": slot}
        values = {
            "download_id": holder.download_id,
            "profile_id": holder.profile_id,
            "device_id": holder.device_id,
            "auth_session": holder.auth_session,
            "expire_time": expire_time,
        }
        if row is None:
            return await self._store.insert(DOWNLOAD_SLOTS, {**key, **values}, if_not_exists=True)
        if row["expire_time"] > now:
            return False
        # an expired download's slot: taken over unless its holder renewed it meanwhile
        return await self._store.update(
            DOWNLOAD_SLOTS,
            key,
            values,
            if_={"download_id": row["download_id"], "expire_time": row["expire_time"]},
        )

    async def renew(self, account_id: str, slot: int, download_id: str, expire_time: int) -> bool:
        """Moves the download's hold on its slot to ``expire_time``; False when the slot was taken over."""
        return await self._store.update(
            DOWNLOAD_SLOTS,
            {"account_id": account_id, "slot": slot},
            {"expire_time": expire_time},
            if_={"download_id": download_id},
        )

    async def release(self, account_id: str, slot: int, download_id: str) -> None:
        await self._store.delete(
            DOWNLOAD_SLOTS, {"account_id": account_id, "slot": slot}, if_={"download_id": download_id}
        )
