"""`marquee train` as an operator runs it beside the running platform: the titles come from the catalog's
CatalogService (with a service token minted from the platform's own key), the model lands in the store; a catalog
that is not running is one clear line."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from services.catalog.config import CatalogConfig
from services.catalog.importer import import_demo_catalog
from services.catalog.schema import SCHEMA as CATALOG_SCHEMA
from services.catalog.server import create_server as create_catalog
from services.common.config import ServerConfig, load_config
from services.common.movielens import load
from services.common.ports import free_port
from services.platform.runtime import open_runtime
from services.recommendations.schema import CURRENT, MODELS, SCHEMA
from tests.catalog.conftest import MEDIA_IDS


def _train(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.platform.cli", "--data-dir", str(data), "train", "--seed", "7", *args],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "MARQUEE_LOGGING__LEVEL": "ERROR",
            "MARQUEE_SERVICES__RECOMMENDATIONS__TRAINING__LIGHTFM_EPOCHS": "[5]",
        },
        timeout=600,
    )


def test_an_unreachable_catalog_is_one_clear_line(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port('127.0.0.1')}"
    out = _train(tmp_path, "--catalog", address)
    assert out.returncode == 1
    assert out.stderr.strip().startswith(f"marquee train: the catalog at {address}: "), out.stderr
    assert "(is `marquee up` running?)" in out.stderr and "Traceback" not in out.stderr, out.stderr


async def test_train_reads_the_titles_from_the_running_catalog(tmp_path: Path) -> None:
    runtime = open_runtime(load_config(data_dir=tmp_path))
    store = runtime.deps.store
    await store.migrate(CATALOG_SCHEMA)
    await import_demo_catalog(store, MEDIA_IDS, load())
    config = CatalogConfig(server=ServerConfig(host="127.0.0.1", port=0, drain_delay=0, grace_period=1))
    catalog = await create_catalog(config, runtime.deps)
    await catalog.start()
    try:
        out = await asyncio.to_thread(_train, tmp_path, "--catalog", f"127.0.0.1:{catalog.grpc_port}")
    finally:
        await catalog.stop()
    if out.returncode != 0:
        await runtime.close()
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    # every demo title, and the MovieLens audience mapped onto them through Title.source
    assert summary["items"] == 1682 and summary["users"] == 943, summary
    await store.migrate(SCHEMA)
    current = await store.get(MODELS, {"name": CURRENT})
    await runtime.close()
    assert current is not None
