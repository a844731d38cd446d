"""Durability: position updates are sent while the platform process is killed with SIGKILL; after a restart every
acknowledged update is there (the stored position is the last acknowledged one, or a later one that was in
flight when the process died)."""

from __future__ import annotations

import asyncio
import shutil
import signal
from pathlib import Path

import grpc
from google.protobuf import duration_pb2

from marquee.v1 import catalog_pb2, catalog_pb2_grpc, common_pb2, playback_pb2, playback_pb2_grpc
from services.catalog.schema import MEDIA
from services.catalog.schema import SCHEMA as CATALOG
from services.common.auth import AccessTokens
from services.common.config import load_config
from services.common.store.sqlite import SqliteStore
from services.common.timevalues import timestamp_of
from services.platform.admin import admin_metadata
from services.platform.runtime import local_config
from tests.edge.conftest import TITLE
from tests.platform.test_up import _start, _stop

SERVICES = ["catalog", "steering", "edge", "playback"]
ENV = {"MARQUEE_SERVICES__CATALOG__DEMO__ENABLED": "false"}


async def _prepare(data: Path, origin: Path) -> None:
    """The title's media in the origin store, and the catalog told it is encoded (as encoding.done would)."""
    shutil.copytree(origin / TITLE, data / "origin" / TITLE)
    store = SqliteStore(load_config(data_dir=data).sqlite_path)
    await store.migrate(CATALOG)
    await store.insert(MEDIA, {"media_id": TITLE, "ready": True, "media_path": TITLE, "heights": [480]})
    await store.close()


def _at(ms: int) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMilliseconds(ms)
    return d


def test_acknowledged_updates_survive_sigkill(tmp_path: Path, origin: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    asyncio.run(_prepare(data, origin))
    platform = local_config(load_config(data_dir=data))
    viewer = AccessTokens(platform.auth).issue("acct-1", profile_id="p1", plan="premium").token
    md = (("authorization", f"Bearer {viewer}"),)
    proc, endpoints = _start(tmp_path, ENV, only=SERVICES)
    acked: list[int] = []
    try:
        catalog = endpoints["catalog"][0]["address"]
        playback = endpoints["playback"][0]["address"]

        async def run() -> str:
            async with grpc.aio.insecure_channel(catalog) as cc, grpc.aio.insecure_channel(playback) as pc:
                title = catalog_pb2.Title(
                    display_name="Pattern", type=catalog_pb2.TITLE_TYPE_MOVIE,
                    maturity_rating=common_pb2.MATURITY_RATING_PG,
                )  # fmt: skip
                await catalog_pb2_grpc.CatalogServiceStub(cc).CreateTitle(
                    catalog_pb2.CreateTitleRequest(title=title, title_id=TITLE), metadata=admin_metadata(platform)
                )
                stub = playback_pb2_grpc.PlaybackServiceStub(pc)
                started = await stub.StartPlayback(
                    playback_pb2.StartPlaybackRequest(title=f"titles/{TITLE}", profile="accounts/acct-1/profiles/p1"),
                    metadata=md,
                )
                session = started.session.name
                base = 1_700_000_000_000_000
                for i in range(1, 400):
                    if i == 60:
                        proc.send_signal(signal.SIGKILL)  # mid-stream: updates keep coming
                    try:
                        reply = await stub.UpdatePosition(
                            playback_pb2.UpdatePositionRequest(
                                session=session, position=_at(i * 25), event_time=timestamp_of(base + i * 1000)
                            ),
                            metadata=md,
                            timeout=5,
                        )
                    except grpc.aio.AioRpcError:
                        break
                    assert reply.applied
                    acked.append(i * 25)
                return session

        asyncio.run(run())
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(acked) >= 59
    proc, endpoints = _start(tmp_path, ENV, only=SERVICES)
    try:

        async def position() -> int:
            async with grpc.aio.insecure_channel(endpoints["playback"][0]["address"]) as pc:
                reply = await playback_pb2_grpc.PlaybackServiceStub(pc).GetPosition(
                    playback_pb2.GetPositionRequest(profile="accounts/acct-1/profiles/p1", title=f"titles/{TITLE}"),
                    metadata=md,
                )
                return reply.position.position.ToMilliseconds()

        stored = asyncio.run(position())
    finally:
        code, _, err = _stop(proc, signal.SIGTERM)
    assert code == 0, err
    assert stored >= acked[-1], f"an acknowledged update was lost: stored {stored}, last acknowledged {acked[-1]}"
    assert stored <= acked[-1] + 25, "at most the one update in flight at the kill was applied without its ack"
