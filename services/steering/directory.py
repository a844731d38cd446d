"""The session directory: where a steering session's durable facts live, so that any replica can steer any live
session (issue #17). A port with two adapters: ``LocalDirectory`` (one process: the ``Steering`` in memory is the
whole truth, as with ``[state] kind = "memory"``) and ``RedisDirectory`` (services/steering/directory_redis.py).

Only the facts a session starts with are shared: its id, title, client address, country, zone name, account and
the pathways its manifests list. Its soft state (the pathways it demoted for itself, the edge it was assigned)
stays with the replica that steered it."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SessionFacts:
    session_id: str
    title_id: str
    client: str  # the client's address, as text
    country: str
    zone: str  # the coverage zone it matched where it started ("" when none)
    account: str
    known_pathways: dict[str, str]  # pathway id -> base URI


class Ended(enum.Enum):
    """The directory's answer for a session that ended (playback ended it, or it went idle on every replica)."""

    ENDED = "ended"


Lookup = SessionFacts | Ended | None  # None: no replica has it (never started, corrupt, or forgotten)


class SessionDirectory(Protocol):
    async def write(self, facts: SessionFacts) -> bool:
        """Records (or refreshes) a live session, for ``session_idle_timeout`` more; False when it has ended."""
        ...

    async def end(self, session_id: str) -> None:
        """Marks a session ended, for ``ended_session_memory``."""
        ...

    async def lookup(self, session_id: str) -> Lookup: ...


class LocalDirectory:
    """One process: nothing to share, and nothing beyond what the local ``Steering`` holds."""

    async def write(self, facts: SessionFacts) -> bool:
        return True

    async def end(self, session_id: str) -> None:
        return None

    async def lookup(self, session_id: str) -> Lookup:
        return None
