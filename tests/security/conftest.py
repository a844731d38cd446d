"""The hostile-client suite's platform: the all-in-one's own plugins (accounts, catalog, steering, the edge tier
with its shield, playback, the gateway) started in this process on loopback free ports, over an origin holding a
title really encoded by the pipeline. The shield takes players' signed URLs here, so that it can be probed with
them like the edges; the default (it refuses every player) has its own test in tests/edge/test_shield.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest_asyncio

from marquee.native import TokenKeyring
from marquee.v1 import (
    catalog_pb2,
    catalog_pb2_grpc,
    common_pb2,
    encoding_pb2,
    playback_pb2,
    playback_pb2_grpc,
    steering_pb2,
    steering_pb2_grpc,
)
from services.common import urltokens
from services.common.config import load_config
from services.common.topics import ENCODING_DONE
from services.platform.admin import admin_metadata
from services.platform.plugins import discover
from services.platform.runtime import open_runtime
from services.platform.supervisor import Platform
from tests.edge.conftest import TITLE, origin  # noqa: F401 - the session fixture with a really encoded title

Metadata = tuple[tuple[str, str], ...]
SERVICES = ("accounts", "catalog", "steering", "edge", "playback", "gateway")


@dataclass
class Stack:
    platform: Platform
    endpoints: dict[str, dict[str, str]]  # service -> endpoint label -> address
    admin: Metadata
    playback: Any  # PlaybackServiceStub
    catalog: Any  # CatalogServiceStub
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    @property
    def url_keys(self) -> TokenKeyring:
        return urltokens.keyring(self.platform.runtime.config.url_signing)

    def caller(self, account: str, profile: str = "p1", plan: str = "basic", **kw: Any) -> Metadata:
        token = self.platform.runtime.deps.tokens.issue(
            account, profile_id=profile, plan=plan, max_maturity=common_pb2.MATURITY_RATING_ADULT, **kw
        ).token
        return (("authorization", f"Bearer {token}"),)

    async def start(self, account: str, profile: str = "p1") -> playback_pb2.PlaybackSession:
        request = playback_pb2.StartPlaybackRequest(
            title=f"titles/{TITLE}", profile=f"accounts/{account}/profiles/{profile}"
        )
        reply = await self.playback.StartPlayback(request, metadata=self.caller(account, profile))
        session: playback_pb2.PlaybackSession = reply.session
        return session

    async def stop(self, account: str, session: playback_pb2.PlaybackSession, profile: str = "p1") -> None:
        request = playback_pb2.StopPlaybackRequest(session=session.name)
        await self.playback.StopPlayback(request, metadata=self.caller(account, profile))


def token_of(url: str) -> str:
    """The signed URL token in a URL's query."""
    return url.split("token=", 1)[1].split("&", 1)[0]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: Any, origin: Path) -> AsyncIterator[Stack]:  # noqa: F811
    data_dir = tmp_path_factory.mktemp("security") / "data"
    services = {
        "accounts": {"demo": {"enabled": False}},
        "catalog": {"demo": {"enabled": False}},
        "playback": {"origin": str(origin)},
        "edge": {
            "origin": str(origin),
            "disk_bytes": 0,
            "shield_disk_bytes": 0,
            "shield_serves_players": True,
            "heartbeat_interval": 0.5,
        },
    }
    runtime = open_runtime(load_config(data_dir=data_dir, services=services), ephemeral_ports=True)
    platform = Platform(runtime, [p for p in discover() if p.name in SERVICES])
    await platform.start()
    endpoints = {name: {e["label"]: e["address"] for e in eps} for name, eps in platform.describe().items()}
    admin = admin_metadata(runtime.config)
    channels = [grpc.aio.insecure_channel(runtime.addresses[name]) for name in ("playback", "catalog", "steering")]
    stack = Stack(
        platform,
        endpoints,
        admin,
        playback_pb2_grpc.PlaybackServiceStub(channels[0]),
        catalog_pb2_grpc.CatalogServiceStub(channels[1]),
        channels,
    )
    try:
        # the encoded title is in the origin: encoding.done makes the catalog title playable
        title = catalog_pb2.Title(
            display_name="Pattern", type=catalog_pb2.TITLE_TYPE_MOVIE, maturity_rating=common_pb2.MATURITY_RATING_PG
        )
        await stack.catalog.CreateTitle(catalog_pb2.CreateTitleRequest(title=title, title_id=TITLE), metadata=admin)
        done = encoding_pb2.EncodingDoneEvent(title=f"titles/{TITLE}", media_path=TITLE)
        await runtime.deps.bus.publish(ENCODING_DONE, done.SerializeToString())
        steering = steering_pb2_grpc.SteeringServiceStub(channels[2])
        deadline = time.monotonic() + 30
        while True:
            got = await stack.catalog.GetTitle(catalog_pb2.GetTitleRequest(name=f"titles/{TITLE}"), metadata=admin)
            edges = await steering.ListEdges(steering_pb2.ListEdgesRequest(), metadata=admin)
            if got.title.playable and {"edges/edge-a", "edges/edge-b"} <= {e.name for e in edges.edges}:
                break
            assert time.monotonic() < deadline, "the title did not become playable, or the edges did not register"
            await asyncio.sleep(0.05)
        yield stack
    finally:
        for channel in channels:
            await channel.close(None)
        await platform.stop()
