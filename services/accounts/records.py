"""Plain records the accounts domain works with (the servicer maps them to and from protobuf)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AccountRecord:
    account_id: str
    email: str
    display_name: str
    plan: str
    roles: tuple[str, ...]
    profile_count: int
    device_count: int
    create_time: int
    update_time: int
    password_hash: str = ""

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> AccountRecord:
        return cls(
            account_id=row["account_id"],
            email=row["email"],
            display_name=row["display_name"],
            plan=row["plan"],
            roles=tuple(row.get("roles") or ()),
            profile_count=int(row.get("profile_count") or 0),
            device_count=int(row.get("device_count") or 0),
            create_time=int(row["create_time"]),
            update_time=int(row["update_time"]),
            password_hash=row.get("password_hash") or "",
        )


@dataclass(frozen=True)
class ProfileRecord:
    account_id: str
    profile_id: str
    display_name: str
    kids: bool
    maturity_limit: int
    language: str
    avatar_uri: str
    create_time: int
    update_time: int

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ProfileRecord:
        return cls(
            account_id=row["account_id"],
            profile_id=row["profile_id"],
            display_name=row["display_name"],
            kids=bool(row["kids"]),
            maturity_limit=int(row["maturity_limit"]),
            language=row.get("language") or "",
            avatar_uri=row.get("avatar_uri") or "",
            create_time=int(row["create_time"]),
            update_time=int(row["update_time"]),
        )


@dataclass(frozen=True)
class DeviceRecord:
    account_id: str
    device_id: str
    display_name: str
    type: int
    create_time: int
    last_seen_time: int

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> DeviceRecord:
        return cls(
            account_id=row["account_id"],
            device_id=row["device_id"],
            display_name=row["display_name"],
            type=int(row["type"]),
            create_time=int(row["create_time"]),
            last_seen_time=int(row["last_seen_time"]),
        )


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    access_expires_at: int  # unix seconds
    refresh_token: str
    refresh_expires_at: int  # unix seconds
