"""Edge hit path: marquee's Rust edge vs nginx serving the same segment files from the same machine, with wrk.

Both servers get two workers (this machine has two cores, shared with wrk's one thread); nginx serves the files
with sendfile and an open-file cache, the edge from its warm memory tier. Workloads: a mix of real encoded CMAF
segments (hundreds of kB) and small objects (init segments, ~1 kB: the request-rate bound). The edge runs once
as a shield would (no tokens) and once verifying a signed URL on every request, as player-facing edges do.
Throughput ratios are edge / nginx (target >= 1.0x); p99 ratios are nginx / edge (higher is better for the edge).
Run: ./dev bench edge_throughput
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import SecretStr

from edge.config import DataPlaneConfig, DirUpstream, EdgeNodeConfig
from edge.node import EdgeNode
from marquee.native import TokenKeyring
from services.common.ports import free_port
from services.encoder.media.pipeline import encode_title
from services.encoder.media.samples import sample_clip

TITLE = "bbb"
SECRET = "bench-secret-0123456789"


@dataclass
class Result:
    requests_per_sec: float
    bytes_per_sec: float
    p50_ms: float
    p99_ms: float


def origin_with_content(work: Path) -> Path:
    origin = work / "origin"
    encode_title(sample_clip("bigbuckbunny.mp4"), TITLE, origin, preset="ultrafast")
    return origin


def start_nginx(work: Path, origin: Path, port: int) -> subprocess.Popen[bytes]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    user = "user root root;" if os.geteuid() == 0 else ""
    conf = work / "nginx.conf"
    conf.write_text(
        f"""{user}
worker_processes 2;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    open_file_cache max=10000 inactive=60s;
    open_file_cache_valid 60s;
    etag on;
    types {{ video/iso.segment m4s; video/mp4 mp4; application/json json; image/jpeg jpg; }}
    client_body_temp_path {work}/nginx-body;
    proxy_temp_path {work}/nginx-proxy;
    fastcgi_temp_path {work}/nginx-fastcgi;
    uwsgi_temp_path {work}/nginx-uwsgi;
    scgi_temp_path {work}/nginx-scgi;
    server {{
        listen 127.0.0.1:{port} reuseport;
        location /v/ {{
            alias {origin}/;
            add_header Cache-Control "public, max-age=31536000, immutable";
            add_header Access-Control-Allow-Origin "*";
        }}
    }}
}}
"""
    )
    proc = subprocess.Popen([nginx, "-p", str(work), "-c", str(conf)], stderr=subprocess.PIPE)
    wait_until_serving(f"http://127.0.0.1:{port}/v/{TITLE}/media.json")
    return proc


def wait_until_serving(url: str) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def wrk(url: str, paths: list[str], work: Path, *, seconds: int, connections: int) -> Result:
    script = work / "paths.lua"
    listed = ",\n".join(f'"{p}"' for p in paths)
    script.write_text(
        f"paths = {{\n{listed}\n}}\ni = 0\n"
        "request = function()\n  i = i + 1\n  return wrk.format('GET', paths[(i % #paths) + 1])\nend\n"
    )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")

    def latency_ms(pct: str) -> float:
        m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            raise RuntimeError(out)
        return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    assert transfer is not None
    unit = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}[transfer.group(2)]
    return Result(rps, float(transfer.group(1)) * unit, latency_ms("50"), latency_ms("99"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8, help="per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs per server; the best is kept")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed: run ./dev bench (it installs scripts/apt-bench.txt)", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="marquee-bench-edge-"))
    os.chmod(work, 0o755)
    try:
        origin = origin_with_content(work)
        objects = sorted(p.relative_to(origin).as_posix() for p in (origin / TITLE).rglob("*.m4s"))
        inits = sorted(p.relative_to(origin).as_posix() for p in (origin / TITLE).rglob("init.mp4"))
        token = TokenKeyring({"k1": SECRET.encode()}, "k1").sign([f"/v/{TITLE}/*"], int(time.time()) + 3600)
        nginx_port = free_port()
        nginx = start_nginx(work, origin, nginx_port)
        plain = EdgeNode(
            EdgeNodeConfig(data_plane=DataPlaneConfig(name="bench", upstream=DirUpstream(root=origin), workers=2))
        )
        signed = EdgeNode(
            EdgeNodeConfig(
                data_plane=DataPlaneConfig(
                    name="bench-signed",
                    upstream=DirUpstream(root=origin),
                    workers=2,
                    token_keys={"k1": SecretStr(SECRET)},
                )
            )
        )
        try:
            sizes = [(origin / k).stat().st_size for k in objects]
            print(
                f"content: {len(objects)} segments of Big Buck Bunny ({min(sizes) // 1024}-{max(sizes) // 1024} kB), "
                f"{len(inits)} init segments; wrk -t1 -c{args.connections} -d{args.seconds}s, best of {args.rounds}"
            )
            for key in objects + inits:  # warm the edges' memory tiers (nginx warms the page cache the same way)
                plain.prefetch(key)
                signed.prefetch(key)
            print(f"{'workload':<22} {'server':<22} {'req/s':>10} {'MB/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
            for workload, keys in (("segments", objects), ("init segments (~1 kB)", inits)):
                servers = {
                    "nginx": (f"http://127.0.0.1:{nginx_port}", [f"/v/{k}" for k in keys]),
                    "marquee edge": (plain.origin_url, [f"/v/{k}" for k in keys]),
                    "marquee edge + token": (signed.origin_url, [f"/v/{k}?token={token}" for k in keys]),
                }
                best: dict[str, Result] = {}
                for _ in range(args.rounds):
                    for name, (url, paths) in servers.items():
                        r = wrk(url, paths, work, seconds=args.seconds, connections=args.connections)
                        if name not in best or r.requests_per_sec > best[name].requests_per_sec:
                            best[name] = r
                for name, r in best.items():
                    print(
                        f"{workload:<22} {name:<22} {r.requests_per_sec:>10.0f} {r.bytes_per_sec / 1e6:>9.1f} "
                        f"{r.p50_ms:>8.2f} {r.p99_ms:>8.2f}"
                    )
                ref = best["nginx"]
                for name in ("marquee edge", "marquee edge + token"):
                    r = best[name]
                    print(
                        f"{workload:<22} {name} / nginx: throughput {r.requests_per_sec / ref.requests_per_sec:.2f}x, "
                        f"p99 {ref.p99_ms / r.p99_ms:.2f}x (target >= 1.0x)"
                    )
        finally:
            plain.stop()
            signed.stop()
            nginx.terminate()
            nginx.wait(10)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
