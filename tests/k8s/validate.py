"""Rendered Kubernetes objects checked offline against the Kubernetes 1.37 schemas (PyPI kubernetes-validate,
strict: unknown fields are errors). Custom resources have no bundled schema: the real API server checks them
against their CRDs (tests/k8s/apiserver.py), so they are set aside here by API group, never silently."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import kubernetes_validate
import yaml

from tests.k8s.tools import KUBE_VERSION

# The API groups of the CRDs the chart uses (scripts/k8s-tools.sh installs them into the test API server).
CUSTOM_GROUPS = frozenset({"scylla.scylladb.com", "monitoring.coreos.com", "keda.sh"})


@dataclass(frozen=True)
class SchemaReport:
    checked: list[str]  # kind/name of every object the schemas accepted
    custom: list[str]  # custom resources left to the API server
    problems: list[str]  # "kind/name: what is wrong (at which path)"

    @property
    def ok(self) -> bool:
        return not self.problems


def load_documents(text: str) -> list[dict[str, Any]]:
    """The objects of a YAML stream (as `helm template` prints it), empty documents left out."""
    docs = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    for doc in docs:
        if not isinstance(doc, dict):
            raise ValueError(f"not a Kubernetes object: {doc!r:.80}")
    return docs


def _name(obj: dict[str, Any]) -> str:
    metadata = obj.get("metadata") or {}
    return f"{obj.get('kind', '?')}/{metadata.get('name', '?') if isinstance(metadata, dict) else '?'}"


def validate_objects(objects: Iterable[dict[str, Any]], version: str = KUBE_VERSION) -> SchemaReport:
    """Every object against the strict schemas of ``version``; an object of no known kind is a problem."""
    checked: list[str] = []
    custom: list[str] = []
    problems: list[str] = []
    for obj in objects:
        name = _name(obj)
        api_version = str(obj.get("apiVersion", ""))
        if "/" in api_version and api_version.split("/", 1)[0] in CUSTOM_GROUPS:
            custom.append(name)
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(str(p) for p in exc.path) or "(top)"
            problems.append(f"{name}: {exc.message} (at {path})")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(f"{name}: {exc.message}")
        else:
            checked.append(name)
    return SchemaReport(checked, custom, problems)
