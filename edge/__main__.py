"""One edge cache as its own process (a Kubernetes pod runs this):

    python -m edge --data-dir DATA --name edge-a --upstream http://shield:8090/v/ --steering steering:50055

It verifies signed URLs with the platform's ``url_signing`` keys (``--no-tokens`` for a shield), registers with
steering and heartbeats with a service token minted from the platform's auth key, and stops on SIGTERM/SIGINT.
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

from edge.config import DataPlaneConfig, DirUpstream, EdgeNodeConfig, HttpUpstream
from edge.node import EdgeNode
from edge.steering import SteeringReporter
from services.common.auth import AccessTokens, ServiceToken
from services.common.config import ConfigError, load_config
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
    p.add_argument("--zone", default="local")
    p.add_argument("--capacity-bps", type=int, default=10_000_000_000)
    p.add_argument("--memory-bytes", type=int, default=256 << 20)
    p.add_argument("--disk-bytes", type=int, default=0)
    p.add_argument("--disk-dir", type=Path, default=None)
    p.add_argument("--no-tokens", action="store_true", help="serve without signed URLs (a shield behind edges)")
    p.add_argument("--steering", default=None, help="SteeringService address to register with")
    p.add_argument("--heartbeat-interval", type=float, default=5.0)
    p.add_argument("--ready-file", type=Path, default=None, help="write {'port': N} here once serving")
    p.add_argument("--rate-limit", type=int, default=0, help="per-connection egress cap in bytes/s (0: none)")
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
    config = EdgeNodeConfig(
        role=args.role,
        zone=args.zone,
        capacity_bps=args.capacity_bps,
        data_plane=DataPlaneConfig(
            name=args.name,
            host=args.host,
            port=args.port,
            upstream=upstream,
            memory_bytes=args.memory_bytes,
            disk_bytes=args.disk_bytes,
            disk_dir=args.disk_dir,
            token_keys={} if args.no_tokens else dict(platform.url_signing.keys),
            rate_limit_bytes_per_sec=args.rate_limit,
        ),
    )
    node = await asyncio.to_thread(EdgeNode, config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    channel = grpc.aio.insecure_channel(args.steering) if args.steering else None
    reporter = None
    task = None
    if channel is not None:
        reporter = SteeringReporter(
            node,
            channel,
            interval=args.heartbeat_interval,
            credentials=ServiceToken(AccessTokens(platform.auth), f"svc-edge-{args.name}"),
        )
        task = asyncio.create_task(reporter.run())
    commands = asyncio.create_task(follow_commands(node, await stdin_reader())) if args.commands_on_stdin else None
    if args.ready_file:
        args.ready_file.write_text(json.dumps({"port": node.port, "base_url": node.base_url}))
    print(f"edge {node.name} serving {node.base_url}", flush=True)
    try:
        await stop.wait()
    finally:
        if commands is not None:
            commands.cancel()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if reporter is not None:
            with contextlib.suppress(grpc.aio.AioRpcError):
                await reporter.deregister()
        if channel is not None:
            await channel.close(None)
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
