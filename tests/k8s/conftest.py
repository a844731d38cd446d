"""Kubernetes checks: the tools from scripts/k8s-tools.sh (built once into the tools cache; ./dev test runs it)
and one real API server for the whole session, with the chart's CRDs installed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.k8s.apiserver import Cluster, start_cluster
from tests.k8s.tools import K8sTools, ToolsMissing, k8s_tools

EXAMPLES = Path(__file__).parent / "examples"


@pytest.fixture(scope="session")
def tools() -> K8sTools:
    try:
        return k8s_tools()
    except ToolsMissing as exc:
        pytest.fail(f"the Kubernetes tools are not built: {exc}")


@pytest.fixture(scope="session")
def cluster(tools: K8sTools, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = start_cluster(tools, tmp_path_factory.mktemp("kube"))
    try:
        yield running
    finally:
        running.stop()
