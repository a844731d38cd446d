"""Where the Kubernetes tools of the chart checks are: built once by scripts/k8s-tools.sh into the tools cache
outside the clone (``./dev test`` runs it before pytest); this only asks the script where they are."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "k8s-tools.sh"
# The Kubernetes version every check targets: kube-apiserver's, the schemas', helm's --kube-version.
KUBE_VERSION = "1.37.2"


class ToolsMissing(RuntimeError):
    """A tool is not built yet: the message says which and how to build it."""


@dataclass(frozen=True)
class K8sTools:
    helm: Path
    kube_apiserver: Path
    kubectl: Path
    promtool: Path
    etcd: Path
    crds: Path  # a directory of CustomResourceDefinition YAML files (ScyllaCluster, ServiceMonitor, ...)

    @property
    def crd_files(self) -> list[Path]:
        return sorted(self.crds.glob("*.yaml"))


@cache
def k8s_tools() -> K8sTools:
    """The tools' paths (``scripts/k8s-tools.sh --check``, which builds nothing)."""
    out = subprocess.run([str(SCRIPT), "--check"], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise ToolsMissing(out.stderr.strip() or f"{SCRIPT} --check exited {out.returncode}")
    paths = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    return K8sTools(
        helm=Path(paths["helm"]),
        kube_apiserver=Path(paths["kube-apiserver"]),
        kubectl=Path(paths["kubectl"]),
        promtool=Path(paths["promtool"]),
        etcd=Path(paths["etcd"]),
        crds=Path(paths["crds"]),
    )
