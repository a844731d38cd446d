"""A real Kubernetes API server for the chart checks: etcd and kube-apiserver on free 127.0.0.1 ports, with the
CRDs the chart uses installed, and kubectl pointed at it through a kubeconfig of its own.

    cluster = start_cluster(tools, workdir)
    result = cluster.dry_run(manifest_yaml)     # kubectl apply --dry-run=server
    cluster.stop()

The server is what a cluster's control plane would be (admission, defaulting, validation, RBAC, CRD schemas),
without nodes or controllers: nothing runs, which is all `--dry-run=server` needs. Flags after the blueprint's
verified recipe: a static token in system:masters, service-account keys made with openssl, RBAC, no endpoint
reconciler (no nodes to point the kubernetes Service at), no ServiceAccount admission (no token controller).
"""

from __future__ import annotations

import json
import secrets
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from services.common.ports import free_port
from tests.k8s.tools import K8sTools

# Generous upper bounds on start-up (ready in seconds on an idle machine); the waits end as soon as the servers
# report ready, these only turn a server that never gets there into a clear error.
ETCD_START_TIMEOUT = 60.0
APISERVER_START_TIMEOUT = 180.0
KUBECTL_TIMEOUT = 120.0


class ClusterError(RuntimeError):
    """The servers did not start, or kubectl failed where it must not; the message carries their output."""


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass(frozen=True)
class Applied:
    """What ``kubectl apply --dry-run=server`` answered."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def accepted(self) -> bool:
        return self.returncode == 0


@dataclass
class Cluster:
    tools: K8sTools
    workdir: Path
    url: str
    kubeconfig: Path
    token: str
    ca_file: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)  # in start order

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Runs kubectl against this server (its own discovery cache, so CRDs installed later are seen)."""
        cmd = [str(self.tools.kubectl), "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.cache_dir)]
        out = subprocess.run(
            [*cmd, *args], input=stdin, capture_output=True, text=True, timeout=KUBECTL_TIMEOUT, check=False
        )
        if check and out.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} exited {out.returncode}: {out.stderr.strip()}")
        return out

    @property
    def cache_dir(self) -> Path:
        return self.workdir / "kubectl-cache"

    def dry_run(self, manifest: str, namespace: str = "default") -> Applied:
        """``kubectl apply --dry-run=server`` of a YAML stream: admission, defaulting and validation (strict
        field validation, CRD schemas) as a cluster would apply it, without storing anything."""
        out = self.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", stdin=manifest, check=False)
        return Applied(out.returncode, out.stdout, out.stderr)

    def create_namespace(self, name: str) -> None:
        if self.kubectl("get", "namespace", name, check=False).returncode != 0:
            self.kubectl("create", "namespace", name)

    def install_crds(self, files: list[Path]) -> None:
        """Creates the CRDs (server-side apply: the big ones exceed the client-side annotation limit) and waits
        until the server reports each Established, then drops kubectl's discovery cache."""
        if not files:
            raise ClusterError("no CRD files to install")
        args = [a for f in files for a in ("-f", str(f))]
        self.kubectl("apply", "--server-side", "--field-manager=marquee-tests", *args)
        self.kubectl("wait", "--for=condition=Established", "--timeout=120s", *args)
        shutil.rmtree(self.cache_dir, ignore_errors=True)

    def get(self, path: str) -> tuple[int, str]:
        """A GET on the API with the admin token: (HTTP status, body)."""
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {self.token}"})
        context = ssl.create_default_context(cafile=str(self.ca_file))
        try:
            with urllib.request.urlopen(request, context=context, timeout=10) as response:
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def stop(self) -> None:
        """Stops kube-apiserver, then etcd (idempotent)."""
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        self.processes.clear()


def _start(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _start_etcd(tools: K8sTools, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    client, peer = free_port(), free_port()
    client_url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    cmd = [
        str(tools.etcd),
        "--name=marquee-tests",
        f"--data-dir={workdir / 'etcd'}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=marquee-tests={peer_url}",
        "--log-level=warn",
    ]
    log = workdir / "etcd.log"
    proc = _start(cmd, log)
    deadline = time.monotonic() + ETCD_START_TIMEOUT
    last = ""
    while True:
        if proc.poll() is not None:
            raise ClusterError(f"etcd exited {proc.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(f"{client_url}/health", timeout=5) as response:
                last = response.read().decode()
                if json.loads(last).get("health") == "true":
                    return proc, client_url
        except (OSError, ValueError) as exc:
            last = str(exc)
        if time.monotonic() > deadline:
            proc.kill()
            raise ClusterError(f"etcd not healthy after {ETCD_START_TIMEOUT:.0f} s ({last}):\n{_tail(log)}")
        time.sleep(0.1)


def _service_account_keys(workdir: Path) -> tuple[Path, Path]:
    key, pub = workdir / "sa.key", workdir / "sa.pub"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(key)],
        check=True,
        capture_output=True,
    )
    subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-out", str(pub)], check=True, capture_output=True)
    return key, pub


def _write_kubeconfig(path: Path, url: str, ca_file: Path, token: str) -> None:
    # JSON is YAML: kubectl reads it as a kubeconfig
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "marquee-tests", "cluster": {"server": url, "certificate-authority": str(ca_file)}}],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": "marquee-tests", "context": {"cluster": "marquee-tests", "user": "admin"}}],
        "current-context": "marquee-tests",
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)


def _wait_ready(cluster: Cluster, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Polls /readyz?verbose until it answers ok; on failure the error carries its last report (which checks
    were still failing) and the server's log."""
    deadline = time.monotonic() + APISERVER_START_TIMEOUT
    report = "no answer yet"
    while True:
        if proc.poll() is not None:
            raise ClusterError(f"kube-apiserver exited {proc.returncode}:\n{_tail(log)}")
        if cluster.ca_file.exists():
            try:
                status, body = cluster.get("/readyz?verbose")
                if status == 200 and body.rstrip().endswith("readyz check passed"):
                    return
                report = f"HTTP {status}: " + " ".join(line for line in body.splitlines() if line.startswith("[-]"))
            except (OSError, ssl.SSLError) as exc:
                report = str(exc)
        if time.monotonic() > deadline:
            raise ClusterError(
                f"kube-apiserver not ready after {APISERVER_START_TIMEOUT:.0f} s; /readyz: {report}\n{_tail(log)}"
            )
        time.sleep(0.2)


def start_cluster(tools: K8sTools, workdir: Path, *, crds: bool = True) -> Cluster:
    """etcd, then kube-apiserver on it, ready, with the CRDs installed (``crds``); stop() ends both."""
    workdir.mkdir(parents=True, exist_ok=True)
    etcd, etcd_url = _start_etcd(tools, workdir)
    port = free_port()
    token = secrets.token_urlsafe(32)
    cert_dir = workdir / "certs"
    tokens = workdir / "tokens.csv"
    tokens.write_text(f'{token},marquee-admin,marquee-admin,"system:masters"\n')
    tokens.chmod(0o600)
    sa_key, sa_pub = _service_account_keys(workdir)
    cluster = Cluster(
        tools=tools,
        workdir=workdir,
        url=f"https://127.0.0.1:{port}",
        kubeconfig=workdir / "kubeconfig",
        token=token,
        # the self-signed serving certificate kube-apiserver writes into --cert-dir (with its CA after it)
        ca_file=cert_dir / "apiserver.crt",
        processes=[etcd],
    )
    try:
        cmd = [
            str(tools.kube_apiserver),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={cert_dir}",
            f"--token-auth-file={tokens}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={sa_pub}",
            f"--service-account-signing-key-file={sa_key}",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--endpoint-reconciler-type=none",
            "--disable-admission-plugins=ServiceAccount",
            "--enable-priority-and-fairness=false",
        ]
        log = workdir / "kube-apiserver.log"
        apiserver = _start(cmd, log)
        cluster.processes.append(apiserver)
        _wait_ready(cluster, apiserver, log)
        _write_kubeconfig(cluster.kubeconfig, cluster.url, cluster.ca_file, token)
        if crds:
            cluster.install_crds(tools.crd_files)
    except BaseException:
        cluster.stop()
        raise
    return cluster
