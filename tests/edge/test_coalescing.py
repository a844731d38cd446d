"""Request coalescing: concurrent misses for one object make one upstream fetch, streamed to every waiter."""

from __future__ import annotations

import asyncio
import resource
from pathlib import Path

from tests.edge.conftest import TITLE, EdgeFactory
from tests.edge.http import get

CONCURRENCY = 1000


def _enough_descriptors(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


async def test_a_thousand_concurrent_misses_make_one_upstream_fetch(origin: Path, make_edge: EdgeFactory) -> None:
    _enough_descriptors(4 * CONCURRENCY)
    # the shield sends slowly, so the edge's single fill is still in flight while the requests arrive
    shield = make_edge("shield", origin, rate_limit_bytes_per_sec=400_000)
    edge = make_edge("edge-a", shield, workers=2)
    key = f"{TITLE}/480p/seg-1.m4s"
    data = (origin / key).read_bytes()
    assert len(data) > 100_000
    replies = await asyncio.gather(*(get(edge.port, f"/v/{key}") for _ in range(CONCURRENCY)))
    assert all(r.status == 200 and r.body == data for r in replies)
    stats = edge.stats()
    assert stats["upstream_fetches"] == 1
    assert shield.stats()["requests"] == 1
    assert stats["misses"] + stats["coalesced_waiters"] + stats["hits_memory"] == CONCURRENCY
    assert stats["coalesced_waiters"] > 0, "requests joined the fill in flight"
    labels = {r.headers["x-cache"] for r in replies}
    assert "MISS-COALESCED" in labels


async def test_ranged_waiters_get_their_slices_from_one_fill(origin: Path, make_edge: EdgeFactory) -> None:
    shield = make_edge("shield", origin, rate_limit_bytes_per_sec=300_000)
    edge = make_edge("edge-a", shield)
    key = f"{TITLE}/480p/seg-2.m4s"
    data = (origin / key).read_bytes()
    step = len(data) // 50
    ranges = [(i * step, i * step + step - 1) for i in range(50)]
    replies = await asyncio.gather(*(get(edge.port, f"/v/{key}", Range=f"bytes={a}-{b}") for a, b in ranges))
    assert b"".join(r.body for r in replies) == data[: 50 * step]
    assert edge.stats()["upstream_fetches"] == 1
