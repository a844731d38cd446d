"""Profiles: at most ``max_profiles`` per account, names unique per account (case-insensitive), kids profiles
capped at a maturity limit. Slots are reserved on the account row with a compare-and-set, so concurrent
creates cannot exceed the limit."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from services.accounts import schema, validation
from services.accounts.records import ProfileRecord
from services.common.errors import Aborted, AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from services.common.ids import new_id, now_micros
from services.common.store.port import Page, PagingState, Store

CAS_ATTEMPTS = 50


def name_key(display_name: str) -> str:
    return unicodedata.normalize("NFKC", display_name).casefold()


@dataclass(frozen=True)
class ProfileInput:
    display_name: str
    kids: bool
    maturity_limit: int
    language: str
    avatar_uri: str


async def adjust_count(store: Store, account_id: str, column: str, delta: int, limit: int | None) -> int:
    """Add ``delta`` to a count on the account row with compare-and-set; FAILED_PRECONDITION past ``limit``."""
    key = {"account_id": account_id}
    for _ in range(CAS_ATTEMPTS):
        row = await store.get(schema.ACCOUNTS, key)
        if row is None:
            raise NotFound(f"account accounts/{account_id} does not exist", reason="ACCOUNT_NOT_FOUND")
        current = int(row[column] or 0)
        wanted = max(0, current + delta)
        if delta > 0 and limit is not None and wanted > limit:
            raise FailedPrecondition(
                f"the account already has {current} of at most {limit} {column.removesuffix('_count')}s",
                reason="PROFILE_LIMIT_REACHED" if column == "profile_count" else "DEVICE_LIMIT_REACHED",
                metadata={"limit": str(limit)},
            )
        if await store.update(schema.ACCOUNTS, key, {column: wanted}, if_={column: row[column]}):
            return wanted
    raise Aborted("the account is being changed concurrently; retry", reason="CONCURRENT_MODIFICATION")


class Profiles:
    def __init__(self, store: Store, max_profiles: int, kids_max_maturity: int) -> None:
        self._store = store
        self._max = max_profiles
        self._kids_max = kids_max_maturity

    def _check(self, data: ProfileInput, field_prefix: str = "profile") -> ProfileInput:
        display = validation.display_name(
            data.display_name, f"{field_prefix}.display_name", max_length=validation.MAX_PROFILE_NAME
        )
        if data.maturity_limit < 0:
            raise InvalidArgument(
                "maturity_limit is not a maturity rating", field_name=f"{field_prefix}.maturity_limit"
            )
        if data.kids and data.maturity_limit > self._kids_max:
            raise InvalidArgument(
                "a kids profile's maturity_limit must be a children's rating",
                field_name=f"{field_prefix}.maturity_limit",
            )
        return ProfileInput(
            display_name=display,
            kids=data.kids,
            maturity_limit=data.maturity_limit,
            language=validation.language(data.language, f"{field_prefix}.language"),
            avatar_uri=validation.uri(data.avatar_uri, f"{field_prefix}.avatar_uri"),
        )

    async def create(self, account_id: str, data: ProfileInput) -> ProfileRecord:
        data = self._check(data)
        profile_id = new_id()
        key = name_key(data.display_name)
        await adjust_count(self._store, account_id, "profile_count", +1, self._max)
        if not await self._store.insert(
            schema.PROFILE_NAMES,
            {"account_id": account_id, "name_key": key, "profile_id": profile_id},
            if_not_exists=True,
        ):
            await adjust_count(self._store, account_id, "profile_count", -1, None)
            raise AlreadyExists(f"a profile named {data.display_name!r} already exists", reason="PROFILE_NAME_TAKEN")
        now = now_micros()
        row = {
            "account_id": account_id,
            "profile_id": profile_id,
            "display_name": data.display_name,
            "name_key": key,
            "kids": data.kids,
            "maturity_limit": data.maturity_limit,
            "language": data.language,
            "avatar_uri": data.avatar_uri,
            "create_time": now,
            "update_time": now,
        }
        await self._store.insert(schema.PROFILES, row)
        return ProfileRecord.from_row(row)

    async def get(self, account_id: str, profile_id: str) -> ProfileRecord:
        row = await self._store.get(schema.PROFILES, {"account_id": account_id, "profile_id": profile_id})
        if row is None:
            raise NotFound(
                f"profile accounts/{account_id}/profiles/{profile_id} does not exist", reason="PROFILE_NOT_FOUND"
            )
        return ProfileRecord.from_row(row)

    async def list(self, account_id: str, limit: int, after: PagingState | None) -> tuple[list[ProfileRecord], Page]:
        page = await self._store.query(schema.PROFILES, {"account_id": account_id}, limit=limit, after=after)
        return [ProfileRecord.from_row(r) for r in page.rows], page

    async def update(self, account_id: str, profile_id: str, changes: dict[str, object]) -> ProfileRecord:
        current = await self.get(account_id, profile_id)
        merged = ProfileInput(
            display_name=str(changes.get("display_name", current.display_name)),
            kids=bool(changes.get("kids", current.kids)),
            maturity_limit=int(changes.get("maturity_limit", current.maturity_limit)),  # type: ignore[call-overload]
            language=str(changes.get("language", current.language)),
            avatar_uri=str(changes.get("avatar_uri", current.avatar_uri)),
        )
        checked = self._check(merged)
        new_key = name_key(checked.display_name)
        old_key = name_key(current.display_name)
        if new_key != old_key:
            if not await self._store.insert(
                schema.PROFILE_NAMES,
                {"account_id": account_id, "name_key": new_key, "profile_id": profile_id},
                if_not_exists=True,
            ):
                raise AlreadyExists(
                    f"a profile named {checked.display_name!r} already exists", reason="PROFILE_NAME_TAKEN"
                )
            await self._store.delete(schema.PROFILE_NAMES, {"account_id": account_id, "name_key": old_key})
        await self._store.update(
            schema.PROFILES,
            {"account_id": account_id, "profile_id": profile_id},
            {
                "display_name": checked.display_name,
                "name_key": new_key,
                "kids": checked.kids,
                "maturity_limit": checked.maturity_limit,
                "language": checked.language,
                "avatar_uri": checked.avatar_uri,
                "update_time": now_micros(),
            },
            if_exists=True,
        )
        return await self.get(account_id, profile_id)

    async def delete(self, account_id: str, profile_id: str) -> None:
        profile = await self.get(account_id, profile_id)
        page = await self._store.query(schema.PROFILES, {"account_id": account_id}, limit=2)
        if len(page.rows) <= 1:
            raise FailedPrecondition("an account keeps at least one profile", reason="LAST_PROFILE")
        if await self._store.delete(schema.PROFILES, {"account_id": account_id, "profile_id": profile_id}):
            await self._store.delete(
                schema.PROFILE_NAMES, {"account_id": account_id, "name_key": name_key(profile.display_name)}
            )
            await adjust_count(self._store, account_id, "profile_count", -1, None)
