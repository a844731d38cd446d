"""The playback path on loopback: catalog, steering, a real edge in front of an origin holding a really encoded
title, and PlaybackService with its manifest endpoint; callers are profiles of accounts on given plans."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from edge.config import DataPlaneConfig, DirUpstream, EdgeGeoConfig, EdgeNodeConfig
from edge.node import EdgeNode
from marquee.v1 import (
    accounts_pb2_grpc,
    catalog_pb2,
    catalog_pb2_grpc,
    common_pb2,
    download_pb2_grpc,
    encoding_pb2,
    license_pb2_grpc,
    playback_pb2_grpc,
    steering_pb2,
    steering_pb2_grpc,
)
from services.accounts.config import AccountsConfig
from services.accounts.server import create_server as create_accounts
from services.catalog import schema as catalog_schema
from services.catalog.availability import Availability
from services.catalog.config import CatalogConfig, DemoCatalogConfig
from services.catalog.server import create_server as create_catalog
from services.common.auth import AccessTokens
from services.common.bus.memory import InMemoryBus
from services.common.bus.port import EventBus
from services.common.config import ContentKeysConfig, GeoConfig, RedisConfig, ServerConfig, load_config
from services.common.denylist import DenyList
from services.common.deps import Dependencies
from services.common.geo import Geo
from services.common.paging import PageTokens
from services.common.plans import Plan, Plans
from services.common.ratelimit import InMemoryRateLimiter
from services.common.service import Service
from services.common.store.port import Store
from services.common.tasks import cancel_all
from services.common.topics import CATALOG_TITLE, ENCODING_DONE
from services.encoder.config import DemoConfig, EncoderConfig
from services.encoder.server import create_server as create_encoder
from services.platform.runtime import local_config
from services.playback.config import ManifestHttpConfig, PlaybackConfig
from services.playback.positions_redis import WRITE_VISIBILITY, RedisPositions
from services.playback.server import create_server as create_playback
from services.steering.config import HttpConfig, SteeringConfig
from services.steering.server import create_server as create_steering
from services.steering.steerer import Steering
from tests.cql import open_test_store
from tests.edge.conftest import TITLE, origin  # noqa: F401 - the session fixture with a really encoded title

PLANS = Plans(
    [
        Plan(id="basic", display_name="Basic", max_concurrent_streams=1, max_resolution_height=360, max_devices=2),
        Plan(id="premium", display_name="Premium", max_concurrent_streams=2, max_resolution_height=2160, max_devices=9),
        # small download limits and a licence that lasts seconds (tests/playback/test_downloads.py)
        Plan(
            id="offline",
            display_name="Offline",
            max_concurrent_streams=1,
            max_resolution_height=720,
            max_devices=3,
            max_downloads=3,
            max_downloads_per_device=2,
            offline_days=30,
            offline_play_hours=1,
        ),
        Plan(
            id="brief",
            display_name="Brief",
            max_concurrent_streams=1,
            max_resolution_height=720,
            max_devices=3,
            max_downloads=1,
            max_downloads_per_device=1,
            offline_days=2 / 86_400,  # two seconds
        ),
    ]
)


@dataclass
class Playback:
    stub: Any
    catalog: Any
    steering: Any
    tokens: AccessTokens
    admin: tuple[tuple[str, str], ...]
    edge: EdgeNode
    store: Store
    bus: EventBus
    steering_state: Steering
    deps: Dependencies  # what the stack's services were built with (a second replica reuses its store, addresses)
    license: Any = None  # LicenseServiceStub on playback's server
    encoder: str = ""  # the encoder's address, when the stack runs one (playback_stack(content_keys=...))
    download: Any = None  # DownloadServiceStub on playback's server
    accounts: Any = None  # AccountServiceStub, when the stack runs the accounts service (playback_stack(accounts=True))
    service: Service | None = None  # the playback service

    def caller(
        self, account: str, profile: str, plan: str = "premium", maturity: int = common_pb2.MATURITY_RATING_ADULT
    ) -> tuple[tuple[str, str], ...]:
        token = self.tokens.issue(account, profile_id=profile, plan=plan, max_maturity=maturity).token
        return (("authorization", f"Bearer {token}"),)


async def add_title(p: Playback, title_id: str, **fields: Any) -> None:
    title = catalog_pb2.Title(
        display_name=title_id.replace("-", " ").title(),
        type=catalog_pb2.TITLE_TYPE_MOVIE,
        maturity_rating=fields.pop("maturity_rating", common_pb2.MATURITY_RATING_PG),
        **fields,
    )
    await p.catalog.CreateTitle(catalog_pb2.CreateTitleRequest(title=title, title_id=title_id), metadata=p.admin)


async def add_title_on_media(p: Playback, title_id: str, media_id: str) -> None:
    """A catalog title playing another title's media, linked as the demo catalog's importer links its titles
    (CreateTitle links a title to the media of its own id)."""
    await add_title(p, title_id)
    await p.store.update(catalog_schema.TITLES, {"title_id": title_id}, {"media_id": media_id})
    await p.store.insert(catalog_schema.TITLES_BY_MEDIA, {"media_id": media_id, "title_id": title_id})
    await Availability(p.store).refresh(media_id)
    # the catalog's view follows its titles' change events, as on every replica
    changed = catalog_pb2.TitleChangedEvent(title=f"titles/{title_id}")
    await p.bus.publish(CATALOG_TITLE, changed.SerializeToString(), key=title_id)
    await wait_playable(p, title_id)


async def wait_playable(p: Playback, title_id: str) -> None:
    """Until the catalog reports the title playable (it follows encoding.done of its media on its own time)."""
    for _ in range(500):
        got = await p.catalog.GetTitle(catalog_pb2.GetTitleRequest(name=f"titles/{title_id}"), metadata=p.admin)
        if got.title.playable:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"titles/{title_id} did not become playable")


@pytest.fixture
def playback_config() -> PlaybackConfig:
    return PlaybackConfig(server=ServerConfig(port=0, drain_delay=0, grace_period=1), http=ManifestHttpConfig(port=0))


@pytest.fixture
def geo_config() -> GeoConfig:
    return GeoConfig()


@pytest.fixture
def with_accounts() -> bool:
    """Whether the ``playback`` fixture's stack runs the accounts service too (a module overrides this)."""
    return False


@pytest.fixture
async def playback(
    tmp_path: Path,
    origin: Path,  # noqa: F811
    playback_config: PlaybackConfig,
    geo_config: GeoConfig,
    with_accounts: bool,
    store_kind: str,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Playback]:
    store = await open_test_store(store_kind, tmp_path, request, "all")
    try:
        async with playback_stack(tmp_path, origin, playback_config, store, geo_config, accounts=with_accounts) as p:
            yield p
    finally:
        await store.close()


@asynccontextmanager
async def playback_stack(
    tmp_path: Path,
    origin: Path,  # noqa: F811
    playback_config: PlaybackConfig,
    store: Store,
    geo_config: GeoConfig | None = None,
    bus: EventBus | None = None,
    content_keys: ContentKeysConfig | None = None,
    accounts: bool = False,
    denylist: DenyList | None = None,
    redis_server: RedisConfig | None = None,
    redis_prefix: str = "marquee:",
) -> AsyncIterator[Playback]:
    """Catalog, steering, playback and an edge on ``store``, with the encoded title playable; on ``bus`` when
    given (the caller closes it), else an in-process one of its own. With ``content_keys`` (master keys) the
    encoder runs too, holding them: the key service playback's licences read from. With ``accounts`` the accounts
    service runs too (sign-up, devices: what downloads check). With ``denylist`` on Redis, ``redis_server`` and
    positions on Redis, playback's native ingest front listens on its gRPC address."""
    geo_config = geo_config or GeoConfig()
    platform = local_config(load_config(data_dir=tmp_path / "data"))
    tokens = AccessTokens(platform.auth)
    admin = (("authorization", f"Bearer {tokens.issue('ops', roles=['admin']).token}"),)
    own_bus = bus is None
    bus = bus or InMemoryBus()
    addresses: dict[str, str] = {}
    deps = Dependencies(
        store,
        bus,
        InMemoryRateLimiter(),
        platform.auth,
        tokens,
        PageTokens(b"pages"),
        url_signing=platform.url_signing,
        geo=Geo(geo_config),
        plans=PLANS,
        addresses=addresses,
        redis_prefix=redis_prefix,
        redis_server=redis_server,
    )
    if denylist is not None:
        deps = dataclasses.replace(deps, denylist=denylist)
    quick = ServerConfig(port=0, drain_delay=0, grace_period=1)
    catalog = await create_catalog(CatalogConfig(server=quick, demo=DemoCatalogConfig(enabled=False)), deps)
    steering = await create_steering(SteeringConfig(server=quick, http=HttpConfig(port=0)), deps)
    catalog_port, steering_port = catalog.grpc_port, steering.grpc_port
    addresses.update(catalog=f"127.0.0.1:{catalog_port}", steering=f"127.0.0.1:{steering_port}")
    stack: list[Service] = [catalog, steering]
    if accounts:
        accounts_service = await create_accounts(AccountsConfig(server=quick, default_plan="premium"), deps)
        addresses["accounts"] = f"127.0.0.1:{accounts_service.grpc_port}"
        stack.append(accounts_service)
    if content_keys is not None:  # only the encoder holds the master keys
        encoder_config = EncoderConfig(server=quick, origin=tmp_path / "encoder-origin", demo=DemoConfig(enabled=False))
        encoder = await create_encoder(encoder_config, dataclasses.replace(deps, content_keys=content_keys))
        addresses["encoder"] = f"127.0.0.1:{encoder.grpc_port}"
        stack.append(encoder)
    playback = await create_playback(playback_config.model_copy(update={"origin": origin}), deps)
    stack.append(playback)
    port = playback.grpc_port
    steering_state = steering.steering
    for service in stack:
        await service.start()
    # the edge believes X-Forwarded-For from loopback, so a test can stand for clients anywhere
    geo = EdgeGeoConfig.of(geo_config, trusted_proxies=("127.0.0.1/32",))
    edge = EdgeNode(
        EdgeNodeConfig(
            data_plane=DataPlaneConfig(
                name="edge-a",
                upstream=DirUpstream(root=origin),
                token_keys=dict(platform.url_signing.keys),
                geo=geo,
                # protected titles' HLS media playlists name the session's raw keys on playback's endpoint
                key_uri_base=playback.sites["http"].public_url,
            )
        )
    )
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{port}") as pc,
        grpc.aio.insecure_channel(f"127.0.0.1:{catalog_port}") as cc,
        grpc.aio.insecure_channel(f"127.0.0.1:{steering_port}") as sc,
        grpc.aio.insecure_channel(addresses.get("accounts", "127.0.0.1:1")) as accounts_channel,
    ):
        p = Playback(
            playback_pb2_grpc.PlaybackServiceStub(pc),
            catalog_pb2_grpc.CatalogServiceStub(cc),
            steering_pb2_grpc.SteeringServiceStub(sc),
            tokens,
            admin,
            edge,
            store,
            bus,
            steering_state,
            deps,
            license_pb2_grpc.LicenseServiceStub(pc),
            addresses.get("encoder", ""),
            download_pb2_grpc.DownloadServiceStub(pc),
            service=playback,
        )
        if accounts:
            p.accounts = accounts_pb2_grpc.AccountServiceStub(accounts_channel)
        register = steering_pb2.RegisterEdgeRequest(
            edge_id="edge-a",
            edge=steering_pb2.Edge(
                base_uri=edge.base_url, zone="local", role=steering_pb2.EDGE_ROLE_EDGE, capacity_bps=10**10
            ),
        )
        await p.steering.RegisterEdge(register, metadata=admin)
        # the encoded title is in the origin: encoding.done makes the catalog title playable
        done = encoding_pb2.EncodingDoneEvent(title=f"titles/{TITLE}", media_path=TITLE)
        await bus.publish(ENCODING_DONE, done.SerializeToString())
        await add_title(p, TITLE, genres=["Drama"])
        await wait_playable(p, TITLE)
        yield p
    edge.stop()
    for service in reversed(stack):
        await service.stop()
    deps.geo.close()
    if own_bus:
        await bus.close()


async def drain_writer(positions: RedisPositions, *, visibility_timeout: float = WRITE_VISIBILITY) -> None:
    """Run a positions-writer until it has persisted every event of the stream, then stop it."""
    writer = asyncio.create_task(positions.write_behind("t-writer", visibility_timeout=visibility_timeout))
    try:
        while await positions.lag() > 0:
            assert not writer.done(), writer
            await asyncio.sleep(0.01)
    finally:
        await cancel_all([writer])  # a single cancel can be lost inside redis-py (see services.common.tasks)
