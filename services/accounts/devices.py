"""Devices: registered per account, limited by the plan's ``max_devices``, listed in registration order."""

from __future__ import annotations

from services.accounts import schema, validation
from services.accounts.profiles import adjust_count
from services.accounts.records import DeviceRecord
from services.common.errors import NotFound
from services.common.ids import new_id, now_micros
from services.common.store.port import Page, PagingState, Store


class Devices:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def register(self, account_id: str, display_name: str, device_type: int, max_devices: int) -> DeviceRecord:
        display = validation.display_name(display_name, "device.display_name")
        await adjust_count(self._store, account_id, "device_count", +1, max_devices)
        now = now_micros()
        row = {
            "account_id": account_id,
            "device_id": new_id(),
            "display_name": display,
            "type": device_type,
            "create_time": now,
            "last_seen_time": now,
        }
        await self._store.insert(schema.DEVICES, row)
        return DeviceRecord.from_row(row)

    async def get(self, account_id: str, device_id: str) -> DeviceRecord:
        row = await self._store.get(schema.DEVICES, {"account_id": account_id, "device_id": device_id})
        if row is None:
            raise NotFound(
                f"device accounts/{account_id}/devices/{device_id} does not exist", reason="DEVICE_NOT_FOUND"
            )
        return DeviceRecord.from_row(row)

    async def list(self, account_id: str, limit: int, after: PagingState | None) -> tuple[list[DeviceRecord], Page]:
        page = await self._store.query(schema.DEVICES, {"account_id": account_id}, limit=limit, after=after)
        return [DeviceRecord.from_row(r) for r in page.rows], page

    async def touch(self, account_id: str, device_id: str) -> None:
        await self._store.update(
            schema.DEVICES,
            {"account_id": account_id, "device_id": device_id},
            {"last_seen_time": now_micros()},
            if_exists=True,
        )

    async def remove(self, account_id: str, device_id: str) -> None:
        await self.get(account_id, device_id)
        if await self._store.delete(schema.DEVICES, {"account_id": account_id, "device_id": device_id}):
            await adjust_count(self._store, account_id, "device_count", -1, None)
