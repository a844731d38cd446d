"""The revocation feed: playback sessions that ended before their signed URLs expired, as playback publishes them
on ``playback.session_ended``. Edges and shields follow it (WatchRevocations) and refuse those sessions' URLs.

Kept in memory in arrival order, each entry until its URLs expire by themselves, and bounded (the oldest go first
when full). Sequence numbers are contiguous within an epoch; the epoch is new for each process, so a follower
that resumes against a restarted feed is given everything still in force instead of a gap."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Revocation:
    sequence: int
    session_id: str
    expire_time: int  # unix seconds: the session's URLs expire by themselves then


class RevocationFeed:
    def __init__(self, capacity: int, clock: Callable[[], float] = time.time) -> None:
        self.epoch = secrets.token_hex(8)
        self.capacity = capacity
        self._clock = clock
        self._entries: deque[Revocation] = deque()
        self._sequence = 0
        self._changed = asyncio.Event()

    @property
    def sequence(self) -> int:
        """The sequence number of the latest revocation (0: none yet)."""
        return self._sequence

    def __len__(self) -> int:
        return len(self._entries)

    def revoke(self, session_id: str, expire_time: int) -> Revocation | None:
        """Appends a revocation; None when the session's URLs have expired already (nothing to refuse)."""
        if expire_time <= self._clock():
            return None
        self._sequence += 1
        entry = Revocation(self._sequence, session_id, expire_time)
        self._entries.append(entry)
        self._prune()
        self._changed.set()
        self._changed = asyncio.Event()
        return entry

    def resume_point(self, epoch: str, after: int) -> int:
        """Where a follower that last saw sequence ``after`` of ``epoch`` resumes: there, or at the start when the
        epoch is another (the feed restarted) or the sequence is not one this feed gave."""
        return after if epoch == self.epoch and 0 <= after <= self._sequence else 0

    def since(self, after: int) -> list[Revocation]:
        """Revocations still in force after sequence ``after`` of this epoch."""
        self._prune()
        if not self._entries:
            return []
        start = max(0, after - self._entries[0].sequence + 1)
        return [self._entries[i] for i in range(start, len(self._entries))]

    async def wait(self, after: int) -> None:
        """Returns once a revocation later than ``after`` exists."""
        while self._sequence <= after:
            await self._changed.wait()

    def _prune(self) -> None:
        now = self._clock()
        # entries leave from the front only, so sequence numbers stay contiguous; a later entry that expired first
        # is sent to followers once more, which ignore it
        while self._entries and (self._entries[0].expire_time <= now or len(self._entries) > self.capacity):
            self._entries.popleft()
