"""The Marquee chart as its tests render it: `helm template` of charts/marquee with one of its CI values sets (or
values of a test's own), parsed into objects, with small helpers to find objects and their pods."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.k8s.helm import template
from tests.k8s.tools import ROOT, K8sTools
from tests.k8s.validate import load_documents

CHART = ROOT / "charts" / "marquee"
CI_VALUES = {path.stem.removesuffix("-values"): path for path in sorted((CHART / "ci").glob("*-values.yaml"))}
NAMESPACE = "marquee"
WORKLOADS = ("Deployment", "StatefulSet", "Job")


class RenderError(AssertionError):
    """helm template refused the values (the message is helm's)."""


def render(
    tools: K8sTools,
    values_files: Sequence[Path] = (),
    set_values: Mapping[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
    tmp: Path | None = None,
    release: str = "marquee",
) -> list[dict[str, Any]]:
    """The objects of a release: ``values_files`` (then ``values``, written to a file in ``tmp``) and ``--set``."""
    files = list(values_files)
    if values is not None:
        if tmp is None:
            raise ValueError("values need a directory to be written to")
        path = tmp / f"values-{len(list(tmp.glob('values-*.yaml')))}.yaml"
        path.write_text(yaml.safe_dump(dict(values)))
        files.append(path)
    out = template(tools.helm, CHART, files, set_values, release=release, namespace=NAMESPACE)
    if not out.ok:
        raise RenderError(out.stderr)
    return load_documents(out.stdout)


def find(objects: Sequence[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    if len(matches) != 1:
        raise KeyError(f"{kind}/{name}: {len(matches)} rendered")
    return matches[0]


def of_kind(objects: Sequence[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def pod_specs(objects: Sequence[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) of every workload."""
    for obj in objects:
        if obj["kind"] in WORKLOADS:
            yield f"{obj['kind']}/{obj['metadata']['name']}", obj["spec"]["template"]["spec"]


def config_toml(objects: Sequence[dict[str, Any]], release: str = "marquee") -> str:
    return str(find(objects, "ConfigMap", f"{release}-config")["data"]["marquee.toml"])


def dump(objects: Sequence[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False)
