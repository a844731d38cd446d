"""The memory and disk tiers: bounded by their sizes, the disk tier survives a restart, purge, the shield chain."""

from __future__ import annotations

from pathlib import Path

from tests.edge.conftest import TITLE, EdgeFactory
from tests.edge.http import get


async def test_eviction_keeps_both_tiers_within_their_sizes(
    origin: Path, segment_keys: list[str], make_edge: EdgeFactory, tmp_path: Path
) -> None:
    total = sum((origin / k).stat().st_size for k in segment_keys)
    memory, disk = total // 6, total // 3
    edge = make_edge("edge-a", origin, memory_bytes=memory, disk_bytes=disk, disk_dir=tmp_path / "disk")
    for _ in range(2):
        for key in segment_keys:
            reply = await get(edge.port, f"/v/{key}")
            assert reply.body == (origin / key).read_bytes()
            s = edge.stats()
            assert s["memory_used_bytes"] <= memory
            assert s["disk_used_bytes"] <= disk
    assert edge.stats()["evictions_memory"] > 0 and edge.stats()["evictions_disk"] > 0
    edge.stop()  # the disk writes have landed once the runtime is down
    files = list((tmp_path / "disk").iterdir())
    on_disk = sum(f.stat().st_size for f in files)
    assert 0 < on_disk <= disk + 512 * len(files), "file bodies within the tier size (plus small headers)"


async def test_a_restarted_edge_serves_from_its_disk_tier(
    origin: Path, segment_keys: list[str], make_edge: EdgeFactory, tmp_path: Path
) -> None:
    disk_dir = tmp_path / "disk"
    first = make_edge("edge-a", origin, disk_bytes=64 << 20, disk_dir=disk_dir)
    for key in segment_keys:
        assert (await get(first.port, f"/v/{key}")).status == 200
    first.stop()
    # the origin is gone for the second life: every answer must come from disk
    empty_origin = tmp_path / "no-origin"
    empty_origin.mkdir()
    second = make_edge("edge-a", empty_origin, disk_bytes=64 << 20, disk_dir=disk_dir)
    assert second.stats()["disk_objects"] == len(segment_keys)
    for key in segment_keys:
        reply = await get(second.port, f"/v/{key}")
        assert reply.status == 200 and reply.headers["x-cache"] == "HIT-DISK", key
        assert reply.body == (origin / key).read_bytes()
    assert second.stats()["upstream_fetches"] == 0
    assert second.usage().cached_titles == {TITLE: sum((origin / k).stat().st_size for k in segment_keys)}


async def test_purge_drops_a_title_from_both_tiers(origin: Path, make_edge: EdgeFactory, tmp_path: Path) -> None:
    edge = make_edge("edge-a", origin, disk_bytes=64 << 20, disk_dir=tmp_path / "disk")
    key = f"/v/{TITLE}/480p/seg-1.m4s"
    await get(edge.port, key)
    edge.stop()
    edge = make_edge("edge-a", origin, disk_bytes=64 << 20, disk_dir=tmp_path / "disk")
    await get(edge.port, key)  # now in memory and on disk
    assert edge.purge(f"{TITLE}/") == 2
    assert edge.usage().cached_titles == {}
    assert (await get(edge.port, key)).headers["x-cache"] == "MISS"


async def test_edge_shield_origin_chain(origin: Path, make_edge: EdgeFactory) -> None:
    shield = make_edge("shield", origin)
    edge_a = make_edge("edge-a", shield)
    edge_b = make_edge("edge-b", shield)
    key = f"{TITLE}/480p/seg-3.m4s"
    data = (origin / key).read_bytes()
    a = await get(edge_a.port, f"/v/{key}")
    b = await get(edge_b.port, f"/v/{key}")
    assert a.body == data and b.body == data
    assert a.headers["etag"] == b.headers["etag"], "the origin's validator travels through the shield"
    assert shield.stats()["upstream_fetches"] == 1, "the second edge's miss was a shield hit"
    assert shield.stats()["hits_memory"] == 1
    assert edge_a.stats()["upstream_fetches"] == edge_b.stats()["upstream_fetches"] == 1
    assert (await get(edge_a.port, f"/v/{TITLE}/480p/seg-77.m4s")).status == 404
