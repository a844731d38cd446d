"""helm as the chart checks run it: `helm lint --strict` and `helm template`, always for the Kubernetes version
every check targets (a go-installed helm must be told it, and the chart's `.Capabilities` follow it)."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.k8s.tools import KUBE_VERSION

HELM_TIMEOUT = 120.0


@dataclass(frozen=True)
class HelmResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _values_args(values_files: Sequence[Path], set_values: Mapping[str, str]) -> list[str]:
    args = [a for f in values_files for a in ("--values", str(f))]
    return args + [a for key, value in set_values.items() for a in ("--set", f"{key}={value}")]


def _helm(helm: Path, *args: str) -> HelmResult:
    out = subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=HELM_TIMEOUT, check=False)
    return HelmResult(out.returncode, out.stdout, out.stderr)


def lint(
    helm: Path, chart: Path, values_files: Sequence[Path] = (), set_values: Mapping[str, str] | None = None
) -> HelmResult:
    """``helm lint --strict`` (warnings fail too)."""
    return _helm(
        helm,
        "lint",
        "--strict",
        "--kube-version",
        KUBE_VERSION,
        str(chart),
        *_values_args(values_files, set_values or {}),
    )


def template(
    helm: Path,
    chart: Path,
    values_files: Sequence[Path] = (),
    set_values: Mapping[str, str] | None = None,
    release: str = "marquee",
    namespace: str = "default",
) -> HelmResult:
    """``helm template`` of a release: the YAML stream a cluster would receive (values.schema.json enforced)."""
    return _helm(
        helm,
        "template",
        release,
        str(chart),
        "--namespace",
        namespace,
        "--kube-version",
        KUBE_VERSION,
        *_values_args(values_files, set_values or {}),
    )
