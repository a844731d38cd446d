"""Resource ids: lower-case, URL-safe, time-ordered (so listing by id lists in creation order)."""

from __future__ import annotations

import secrets
import time


def new_id() -> str:
    """24 hex characters: 48 bits of milliseconds then 48 random bits (sortable, collision-safe)."""
    return f"{int(time.time() * 1000) & 0xFFFFFFFFFFFF:012x}{secrets.randbits(48):012x}"


def now_micros() -> int:
    return time.time_ns() // 1000
