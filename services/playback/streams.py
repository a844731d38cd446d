"""Concurrent-stream limits: an account holds one slot row per stream, claimed by compare-and-set, renewed by
heartbeats, released by StopPlayback or taken over once expired (heartbeats stopped)."""

from __future__ import annotations

from services.common.ids import now_micros
from services.common.store.port import Store
from services.playback.schema import STREAM_SLOTS


class Streams:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def claim(self, account_id: str, session_id: str, limit: int, expire_time: int) -> int | None:
        """A free (or expired) slot below ``limit`` for the session; None when every slot is in use."""
        now = now_micros()
        for slot in range(limit):
            key = {"account_id": account_id, "slot": slot}
            row = {**key, "session_id": session_id, "expire_time": expire_time}
            if await self._store.insert(STREAM_SLOTS, row, if_not_exists=True):
                return slot
            held = await self._store.get(STREAM_SLOTS, key)
            if held is None:
                if await self._store.insert(STREAM_SLOTS, row, if_not_exists=True):
                    return slot
                continue
            if held["expire_time"] <= now and await self._store.update(
                STREAM_SLOTS,
                key,
                {"session_id": session_id, "expire_time": expire_time},
                if_={"session_id": held["session_id"], "expire_time": held["expire_time"]},
            ):
                return slot
        return None

    async def renew(self, account_id: str, slot: int, session_id: str, expire_time: int) -> bool:
        """Extends the session's hold on its slot; False when the slot was lost (expired and taken)."""
        return await self._store.update(
            STREAM_SLOTS,
            {"account_id": account_id, "slot": slot},
            {"expire_time": expire_time},
            if_={"session_id": session_id},
        )

    async def release(self, account_id: str, slot: int, session_id: str) -> None:
        await self._store.delete(STREAM_SLOTS, {"account_id": account_id, "slot": slot}, if_={"session_id": session_id})
