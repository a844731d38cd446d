"""Per-RPC context carried in contextvars: request id, caller identity, deadline.

The server interceptors set these at the start of every RPC; handlers, loggers and outgoing client calls read
them without threading arguments through every function.
"""

from __future__ import annotations

import contextvars
import re
import time
import uuid
from dataclasses import dataclass, field

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("marquee_request_id", default="-")
deadline_var: contextvars.ContextVar[float | None] = contextvars.ContextVar("marquee_deadline", default=None)


@dataclass(frozen=True)
class Principal:
    """Who is calling, from a verified access token."""

    account_id: str
    profile_id: str | None = None
    device_id: str | None = None
    roles: frozenset[str] = field(default_factory=frozenset)
    token_id: str = ""
    plan: str = ""
    max_maturity: int | None = None  # the selected profile's limit (MaturityRating value)
    session_id: str | None = None  # the sign-in session (refresh-token family) the token was issued from
    issued_at: float = 0.0  # unix seconds, millisecond precision
    profile_name: str | None = None  # the selected profile's display name when the token was issued
    kids: bool = False  # the selected profile is a kids profile

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


principal_var: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("marquee_principal", default=None)
access_token_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("marquee_access_token", default=None)


def new_request_id(incoming: str | None = None) -> str:
    """Keep a well-formed incoming id (so one id follows a request across services), else make one."""
    if incoming and _REQUEST_ID_RE.match(incoming):
        return incoming
    return uuid.uuid4().hex


def time_remaining() -> float | None:
    """Seconds left before the current RPC's deadline, or None when it has none."""
    deadline = deadline_var.get()
    return None if deadline is None else deadline - time.monotonic()
