"""The origin's staging directory, shared by every encoder replica: each encode builds its title in
``{origin}/.staging/{job_id}.{attempt}`` (and sets a replaced title aside in ``{job_id}.{attempt}-old``), so a
leftover is tied to its job: it is removed once that attempt no longer runs under a live lease. Directories of any
other name (left by older versions, or by encodes run outside a job) are removed only when older than
``LEGACY_AGE_SECONDS``, since nothing says whether their encode is still running.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from services.encoder.media.pipeline import OLD_SUFFIX, STAGING

log = logging.getLogger("marquee.encoder")

LEGACY_AGE_SECONDS = 3600.0
_NAME_RE = re.compile(rf"^(?P<job>[0-9a-f]{{24}})\.(?P<attempt>[0-9]+)(?:{re.escape(OLD_SUFFIX)})?$")


def staging_name(job_id: str, attempt: int) -> str:
    """The staging directory of one attempt of a job."""
    return f"{job_id}.{attempt}"


def attempt_of(name: str) -> tuple[str, int] | None:
    """(job id, attempt) a staging directory belongs to, or None for a name not in that format."""
    match = _NAME_RE.match(name)
    return (match["job"], int(match["attempt"])) if match else None


def _stale(path: Path, live: set[tuple[str, int]], now: float) -> bool:
    owner = attempt_of(path.name)
    if owner is not None:
        return owner not in live
    try:
        return now - path.stat().st_mtime > LEGACY_AGE_SECONDS
    except FileNotFoundError:
        return False


def remove_stale(entries: list[Path], live: set[tuple[str, int]]) -> list[str]:
    """Remove those of ``entries`` (staging directories listed *before* ``live`` was read) that no live attempt
    owns; the names removed."""
    removed = []
    now = time.time()
    for path in entries:
        if _stale(path, live, now):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed


def _entries(origin: Path) -> list[Path]:
    try:
        return list((origin / STAGING).iterdir())
    except FileNotFoundError:
        return []


async def sweep_staging(origin: Path, live_attempts: Callable[[], Awaitable[set[tuple[str, int]]]]) -> list[str]:
    """List the staging directory, then read the live attempts, then remove what none owns: an encode claimed
    after the read cannot have made its directory before the listing, so it is never removed under it."""
    entries = await asyncio.to_thread(_entries, origin)
    if not entries:
        return []
    live = await live_attempts()
    removed = await asyncio.to_thread(remove_stale, entries, live)
    if removed:
        log.info("removed staging left by ended or dead encodes: %s", ", ".join(sorted(removed)))
    return removed
