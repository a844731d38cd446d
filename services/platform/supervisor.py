"""`marquee up`: start every discovered service in one process, health-check it, print the endpoints, and
stop everything cleanly (reverse order, graceful) on Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TextIO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.config import PlatformConfig
from services.common.logs import CONSOLE
from services.common.metrics import start_metrics_endpoint
from services.platform.plugins import Endpoint, RunningService, ServicePlugin, discover
from services.platform.runtime import Runtime, open_runtime

log = logging.getLogger("marquee.platform")
console = logging.getLogger(f"{CONSOLE}.platform")

HEALTH_TIMEOUT = 30.0
METRICS_DEFAULT_PORT = 9464


def _async(fn: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        await asyncio.to_thread(fn)

    return run


class StartupError(Exception):
    """A service failed to start or never became healthy."""


async def wait_healthy(address: str, services: tuple[str, ...] = ("",), timeout: float = HEALTH_TIMEOUT) -> None:
    """Poll grpc.health.v1 on ``address`` until every named service is SERVING."""
    deadline = asyncio.get_running_loop().time() + timeout
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for name in services:
            while True:
                try:
                    resp = await stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=2)
                    if resp.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.aio.AioRpcError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise StartupError(f"{address} did not report {name or 'overall'} health SERVING in {timeout}s")
                await asyncio.sleep(0.1)


class Platform:
    """The running all-in-one platform."""

    def __init__(self, runtime: Runtime, plugins: list[ServicePlugin]) -> None:
        self.runtime = runtime
        self.plugins = plugins
        self.running: list[RunningService] = []

    async def start(self) -> None:
        try:
            self.runtime.follow_revocations()
            metrics_cfg = self.runtime.config.metrics
            if metrics_cfg.enabled:
                port = 0 if self.runtime.ephemeral_ports else metrics_cfg.port or METRICS_DEFAULT_PORT
                endpoint = start_metrics_endpoint(metrics_cfg.host, port)
                self.running.append(
                    RunningService(
                        name="platform",
                        endpoints=[Endpoint("metrics", f"http://{metrics_cfg.host}:{endpoint.port}/metrics", "http")],
                        stop=_async(endpoint.stop),
                    )
                )
            for plugin in self.plugins:
                missing = [r for r in plugin.requires if r not in self.runtime.addresses]
                if missing:
                    wanted = ", ".join(f"addresses.{m}" for m in missing)
                    raise StartupError(
                        f"{plugin.name} calls {', '.join(missing)}, which is not running here: set {wanted}"
                    )
                log.info("starting %s", plugin.name)
                svc = await plugin.start(self.runtime)
                self.running.append(svc)
                site = next((e.address for e in svc.endpoints if e.kind == "http"), None)
                if site is not None:
                    self.runtime.http_urls[svc.name] = site
                if svc.grpc_address:
                    await wait_healthy(svc.grpc_address, ("", *svc.health_services))
                    self.runtime.addresses[svc.name] = svc.grpc_address
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Every service says NOT_SERVING at once, so that their drain delays run together, then each stops (the
        newest first) once its delay has passed."""
        for svc in self.running:
            if svc.drain is not None:
                try:
                    await svc.drain()
                except Exception:
                    log.exception("error draining %s", svc.name)
        while self.running:
            svc = self.running.pop()
            try:
                await svc.stop()
            except Exception:
                log.exception("error stopping %s", svc.name)
        await self.runtime.close()

    def describe(self) -> dict[str, list[dict[str, str]]]:
        return {
            svc.name: [{"label": e.label, "address": e.address, "kind": e.kind} for e in svc.endpoints]
            for svc in self.running
        }


def print_table(
    described: dict[str, list[dict[str, str]]], data_dir: Path, log_file: Path | None, out: TextIO = sys.stdout
) -> None:
    """The endpoint table: each service's endpoints, the data directory and where the logs are."""
    out.write("\nMarquee is up. Endpoints:\n")
    rows = [(name, e["label"], e["address"]) for name, endpoints in described.items() for e in endpoints]
    names = max((len(r[0]) for r in rows), default=0)
    labels = max((len(r[1]) for r in rows), default=0)
    for name, label, address in rows:
        out.write(f"  {name:<{names}}  {label:<{labels}}  {address}\n")
    out.write(f"\nData directory: {data_dir.resolve()}\n")
    if log_file is not None:
        out.write(f"Logs: {log_file.resolve()} (JSON lines, rotated; --verbose shows them here)\n")
    out.flush()


def print_endpoints(platform: Platform, out: TextIO = sys.stdout, log_file: Path | None = None) -> None:
    print_table(platform.describe(), platform.runtime.config.data_dir, log_file, out)
    out.write("Press Ctrl-C to stop.\n\n")
    out.flush()


async def run(
    config: PlatformConfig,
    *,
    ephemeral_ports: bool = False,
    ready_file: Path | None = None,
    only: set[str] | None = None,
    log_file: Path | None = None,
) -> None:
    """Run the platform until SIGINT/SIGTERM. ``ready_file`` receives the endpoints as JSON once healthy;
    ``log_file`` is where the full logs go (said after the endpoints)."""
    plugins = [p for p in discover() if only is None or p.name in only]
    runtime = open_runtime(config, ephemeral_ports=ephemeral_ports)
    console.info("Starting Marquee: %s ...", ", ".join(p.name for p in plugins))
    platform = Platform(runtime, plugins)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await platform.start()
    try:
        print_endpoints(platform, log_file=log_file)
        if ready_file is not None:
            tmp = ready_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(platform.describe()))
            tmp.replace(ready_file)
        await stop.wait()
        log.info("stopping")
    finally:
        await platform.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    sys.stdout.write("Marquee stopped.\n")
