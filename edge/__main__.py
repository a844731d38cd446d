"""One edge cache as its own process (a Kubernetes pod runs this):

    python -m edge --data-dir DATA --name edge-a --upstream http://shield:8090/v/ --steering steering:50055

An edge verifies players' signed URLs with the platform's ``url_signing`` keys and signs its fills from an HTTP
upstream with the ``edge_fill`` keys; a shield (``--role shield``) takes those fills and serves players only with
``--serve-players``; ``--no-tokens`` serves anyone (a cache tested alone, never a deployment). It registers with
steering, heartbeats and follows steering's revocation feed with a service token minted from the platform's auth
key, and stops on SIGTERM/SIGINT. ``--public-url`` is the base URL it registers for players when that is not where it
listens (a pod listening on 0.0.0.0, reached as ``http://edge-0.edges.ns.svc:8081/v/`` or through a load balancer);
``--metrics-port`` serves its Prometheus metrics (``marquee_edge_*``) on ``/metrics``.
With ``--commands-on-stdin`` it takes commands on standard input, one a line, while it serves:

    rate-limit BYTES_PER_SEC    set the per-connection egress cap (0 removes it)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import grpc
from prometheus_client import REGISTRY

from edge.config import DataPlaneConfig, DirUpstream, EdgeGeoConfig, EdgeNodeConfig, HttpUpstream
from edge.metrics import EdgeCollector
from edge.node import EdgeNode
from edge.revocations import RevocationFollower
from edge.steering import SteeringReporter
from services.common.auth import AccessTokens, ServiceToken
from services.common.config import ConfigError, load_config
from services.common.metrics import start_metrics_endpoint
from services.common.targets import channel_target
from services.common.tasks import cancel_all
from services.platform.runtime import local_config


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m edge", description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--config", type=Path, default=None, help="platform TOML config (default: $MARQUEE_CONFIG)")
    p.add_argument("--data-dir", type=Path, default=None, help="platform data directory (keys)")
    p.add_argument("--name", required=True, help="edge name, also its pathway id")
    p.add_argument("--upstream", required=True, help="origin directory, or http://host:port/v/ of a shield")
    p.add_argument("--role", choices=("edge", "shield"), default="edge")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--public-url", default=None, help="base URL players use (default http://HOST:PORT/v/)")
    p.add_argument("--zone", default="local")
    p.add_argument("--capacity-bps", type=int, default=10_000_000_000)
    p.add_argument("--memory-bytes", type=int, default=256 << 20)
    p.add_argument("--disk-bytes", type=int, default=0)
    p.add_argument("--disk-dir", type=Path, default=None)
    p.add_argument("--serve-players", action="store_true", help="a shield: take players' signed URLs too")
    p.add_argument("--no-tokens", action="store_true", help="serve anyone, without any key (tests of the cache)")
    p.add_argument(
        "--trusted-proxy", action="append", default=[], help="network of a load balancer whose X-Forwarded-For counts"
    )
    p.add_argument("--steering", default=None, help="SteeringService address to register with")
    p.add_argument(
        "--key-uri-base",
        default="",
        help="playback's public manifest URL: protected titles' HLS media playlists name the session's raw keys there",
    )
    p.add_argument("--heartbeat-interval", type=float, default=5.0)
    p.add_argument("--ready-file", type=Path, default=None, help="write {'port': N} here once serving")
    p.add_argument("--rate-limit", type=int, default=0, help="per-connection egress cap in bytes/s (0: none)")
    p.add_argument("--metrics-host", default="127.0.0.1", help="address of the /metrics endpoint")
    p.add_argument("--metrics-port", type=int, default=None, help="serve /metrics on this port (0: a free one)")
    p.add_argument("--commands-on-stdin", action="store_true", help="take commands on standard input (see above)")
    return p


async def follow_commands(node: EdgeNode, stream: asyncio.StreamReader) -> None:
    """Applies the commands read from ``stream`` until it closes; answers each on standard output."""
    while raw := await stream.readline():
        line = raw.decode(errors="replace").strip()
        words = line.split()
        if not words:
            continue
        if len(words) == 2 and words[0] == "rate-limit" and words[1].isdigit():
            node.set_rate_limit(int(words[1]))
            print(f"ok rate-limit {int(words[1])}", flush=True)
        else:
            print(f"error unknown command {line[:80]!r}", flush=True)


async def stdin_reader() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def serve(args: argparse.Namespace) -> None:
    overrides = {"data_dir": args.data_dir} if args.data_dir else {}
    platform = local_config(load_config(args.config, **overrides))
    upstream = (
        HttpUpstream(base_url=args.upstream) if args.upstream.startswith("http") else DirUpstream(root=args.upstream)
    )
    players = not args.no_tokens and (args.role == "edge" or args.serve_players)
    fill = {} if args.no_tokens else dict(platform.edge_fill.keys)
    config = EdgeNodeConfig(
        role=args.role,
        zone=args.zone,
        public_base_url=args.public_url,
        capacity_bps=args.capacity_bps,
        data_plane=DataPlaneConfig(
            name=args.name,
            host=args.host,
            port=args.port,
            upstream=upstream,
            memory_bytes=args.memory_bytes,
            disk_bytes=args.disk_bytes,
            disk_dir=args.disk_dir,
            token_keys=dict(platform.url_signing.keys) if players else {},
            fill_keys=fill,
            fill_signing_kid=platform.edge_fill.signing_kid if fill else "",
            geo=EdgeGeoConfig.of(platform.geo, tuple(args.trusted_proxy)),
            rate_limit_bytes_per_sec=args.rate_limit,
            key_uri_base=args.key_uri_base if players else "",
        ),
    )
    node = await asyncio.to_thread(EdgeNode, config)
    metrics = None
    if args.metrics_port is not None:
        REGISTRY.register(EdgeCollector(lambda: [node]))
        metrics = start_metrics_endpoint(args.metrics_host, args.metrics_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    channel = None
    if args.steering:
        target, balanced = channel_target(args.steering)
        channel = grpc.aio.insecure_channel(target, options=balanced)
    reporter = None
    tasks: list[asyncio.Task[None]] = []
    if channel is not None:
        credentials = ServiceToken(AccessTokens(platform.auth), f"svc-edge-{args.name}")
        reporter = SteeringReporter(node, channel, interval=args.heartbeat_interval, credentials=credentials)
        follower = RevocationFollower(lambda: [node], channel, credentials=credentials)
        tasks = [asyncio.create_task(reporter.run()), asyncio.create_task(follower.run())]
    commands = asyncio.create_task(follow_commands(node, await stdin_reader())) if args.commands_on_stdin else None
    if args.ready_file:
        ready = {"port": node.port, "base_url": node.base_url}
        if metrics is not None:
            ready["metrics_port"] = metrics.port
        args.ready_file.write_text(json.dumps(ready))
    print(f"edge {node.name} serving {node.base_url}", flush=True)
    try:
        await stop.wait()
    finally:
        if commands is not None:
            commands.cancel()
        await cancel_all(tasks)
        if reporter is not None:
            with contextlib.suppress(grpc.aio.AioRpcError):
                await reporter.deregister()
        if channel is not None:
            await channel.close(None)
        if metrics is not None:
            metrics.stop()
        await asyncio.to_thread(node.stop)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        asyncio.run(serve(args))
    except (ConfigError, OSError, ValueError) as exc:
        print(f"edge: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
