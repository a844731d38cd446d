"""Edge test fixtures: a title really encoded into an origin store, and edges started on free loopback ports."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from edge.config import DataPlaneConfig, DirUpstream, EdgeNodeConfig, HttpUpstream
from edge.node import EdgeNode
from marquee.native import TokenKeyring
from services.encoder.media.pipeline import encode_title
from tests.encoder.conftest import make_source

TITLE = "pattern"
KEY_ID, SECRET = "k1", "edge-test-secret-0123456789"


@pytest.fixture(scope="session")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An origin store holding one title encoded by the real pipeline (480p source: 480p/360p/240p + audio)."""
    root = tmp_path_factory.mktemp("origin")
    source = make_source(tmp_path_factory.mktemp("src") / "master.mp4", width=854, height=480, seconds=12.5)
    encode_title(source, TITLE, root, preset="ultrafast")
    return root


@pytest.fixture(scope="session")
def segment_keys(origin: Path) -> list[str]:
    """Every object of the title, as cache keys (path below the origin root)."""
    return sorted(str(p.relative_to(origin)) for p in (origin / TITLE).rglob("*") if p.is_file())


@pytest.fixture
def keyring() -> TokenKeyring:
    return TokenKeyring({KEY_ID: SECRET.encode()}, KEY_ID)


def sign(keyring: TokenKeyring, acl: str = f"/v/{TITLE}/*", ttl: int = 300) -> str:
    return keyring.sign([acl], int(time.time()) + ttl)


EdgeFactory = Callable[..., EdgeNode]


@pytest.fixture
def make_edge(tmp_path: Path) -> Iterator[EdgeFactory]:
    """Starts edges; every one is stopped at the end of the test. ``upstream`` is a Path (origin) or an edge."""
    started: list[EdgeNode] = []

    def make(name: str, upstream: Path | EdgeNode, **data_plane: Any) -> EdgeNode:
        up = DirUpstream(root=upstream) if isinstance(upstream, Path) else HttpUpstream(base_url=upstream.base_url)
        data_plane.setdefault("memory_bytes", 64 << 20)
        if "disk_bytes" in data_plane:
            data_plane.setdefault("disk_dir", tmp_path / f"disk-{name}")
        if "token_keys" in data_plane:
            data_plane["token_keys"] = {k: SecretStr(v) for k, v in data_plane["token_keys"].items()}
        node = EdgeNode(EdgeNodeConfig(data_plane=DataPlaneConfig(name=name, upstream=up, **data_plane)))
        started.append(node)
        return node

    yield make
    for node in started:
        node.stop()
