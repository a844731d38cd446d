"""`marquee up --distributed`: the topology the Helm chart deploys, on one machine.

A Redis server (AOF, fsync every second) and a Cassandra node under the data directory (or the ones named by
``--redis`` / ``--cql``), the schema migrated once, then every service as its own `marquee serve NAME` processes:
``--replicas`` of each gRPC service on loopback ports of their own (:data:`REPLICAS` keeps some at one), one gateway
that round-robins across them, and the edge tier as `marquee up` runs it. Every process reads one TOML file
(``{data_dir}/distributed/marquee.toml``: the store, the bus, limits and shared state on Redis, ``[addresses]``
listing every replica); a replica differs only in its ports (and only the first seeds the demo content).

A supervisor restarts a child that exits (with backoff, logged), stops everything in reverse start order on Ctrl-C
or SIGTERM, and prints the endpoints with the replica processes (pid, port). ``--ready-file`` receives the same as
JSON, rewritten whenever a replica is restarted."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from services.common.config import PlatformConfig
from services.common.logs import CONSOLE
from services.common.ports import free_port
from services.platform.localredis import RedisServer
from services.platform.plugins import ServicePlugin, discover
from services.platform.supervisor import StartupError, print_table
from services.platform.tomlout import dumps, merge

log = logging.getLogger("marquee.platform")
console = logging.getLogger(f"{CONSOLE}.platform")

# Replicas of each gRPC service; None takes --replicas. One line to change when a service's state is shared.
REPLICAS: dict[str, int | None] = {
    "accounts": None,
    "catalog": None,
    "playback": None,
    "recommendations": None,
    "steering": None,  # edges, problem reports and sessions are shared on Redis: any replica steers any session
    "encoder": 1,  # leased jobs let any number share the queue, but on one machine a second only splits its cores
}
# Processes that are not replicated gRPC backends: one each, as `marquee up` runs them.
SINGLE = ("edge", "gateway")
# Services with a ``[services.NAME.demo]`` section: only their first replica seeds the demo content.
DEMO_SEEDERS = ("accounts", "catalog", "encoder")
HOST = "127.0.0.1"
READY_TIMEOUT = 300.0  # seconds for one process to report ready (a busy machine starts Python slowly)
STOP_TIMEOUT = 30.0  # seconds a process gets to stop after SIGTERM before SIGKILL
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0  # seconds before restarting a crashed child; doubles while it keeps crashing
STABLE_AFTER = 60.0  # a child that ran this long before exiting restarts after BACKOFF_FIRST again
PR_SET_PDEATHSIG = 1


@dataclass
class Child:
    """One `marquee serve NAME` process: a replica of a service, or a single process (gateway, edge)."""

    service: str
    index: int
    argv: list[str]
    env: dict[str, str]
    ready: Path
    log: Path
    port: int | None = None  # the gRPC port of a replica
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    endpoints: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.service}-{self.index}"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid


def replica_counts(plugins: list[ServicePlugin], replicas: int) -> dict[str, int]:
    """How many processes each service gets."""
    return {p.name: 1 if p.name in SINGLE else (REPLICAS.get(p.name) or replicas) for p in plugins}


def _libc_prctl() -> Any:
    with contextlib.suppress(OSError, AttributeError):
        return ctypes.CDLL(None, use_errno=True).prctl
    return None


# Looked up here, in the parent: the child between fork and exec only calls it (a dlopen there could deadlock on
# a lock another thread of the parent held at the fork).
_PRCTL = _libc_prctl()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """A child gets SIGTERM if the supervisor dies without stopping it (Linux), so none outlives it."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)


def _user_document(path: Path | None) -> dict[str, Any]:
    chosen = path if path is not None else os.environ.get("MARQUEE_CONFIG")
    if not chosen:
        return {}
    return tomllib.loads(Path(chosen).read_text())


def write_config(config: PlatformConfig, config_file: Path | None, addresses: dict[str, str], redis_url: str) -> Path:
    """The one TOML file every process reads: the user's file (if any) with the distributed settings over it."""
    store: dict[str, Any] = {"kind": config.store.kind}
    if config.store.kind == "cql":
        store["cql"] = {"contact_points": list(config.store.cql.contact_points)}
    else:
        store["path"] = str(config.sqlite_path.resolve())
    distributed = {
        "data_dir": str(config.data_dir.resolve()),
        "store": store,
        "bus": {"kind": "redis"},
        "limits": {"kind": "redis"},
        "state": {"kind": "redis"},
        "redis": {"url": redis_url},
        "addresses": addresses,
        "services": {"playback": {"positions": "redis"}},  # the resume hot path on Redis, written behind to the store
    }
    path = config.data_dir / "distributed" / "marquee.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# Written by `marquee up --distributed` at every start: what each of its processes reads.\n"
        + dumps(merge(_user_document(config_file), distributed))
    )
    return path


def plan_children(
    plugins: list[ServicePlugin], counts: dict[str, int], config_path: Path, data_dir: Path, ephemeral: bool
) -> tuple[list[list[Child]], dict[str, str]]:
    """The processes in start waves (one per service, in plugin order) and ``[addresses]`` of the replicas."""
    run_dir = data_dir / "distributed"
    logs = data_dir / "logs"
    base = [sys.executable, "-m", "services.platform.cli", "--config", str(config_path), "--data-dir", str(data_dir)]
    waves: list[list[Child]] = []
    addresses: dict[str, str] = {}
    sites: dict[str, str] = {}  # the first replica's HTTP site per service (playback's: where edges name keys)
    for plugin in plugins:
        wave: list[Child] = []
        prefix = f"MARQUEE_SERVICES__{plugin.name.upper()}__"
        for index in range(1, counts[plugin.name] + 1):
            env = {"MARQUEE_METRICS__PORT": str(free_port(HOST))}
            port = None
            if plugin.name == "gateway":
                if ephemeral:
                    env[f"{prefix}HTTP__PORT"] = str(free_port(HOST))
            elif plugin.name == "edge":
                if ephemeral:
                    env.update({f"{prefix}SHIELD_PORT": "0", f"{prefix}FIRST_EDGE_PORT": "0"})
                if "playback" in sites:  # protected titles' keys: any playback replica serves any session's
                    env[f"{prefix}KEY_URI_BASE"] = sites["playback"]
            else:
                port = free_port(HOST)
                env[f"{prefix}SERVER__PORT"] = str(port)
                if plugin.name in ("playback", "steering"):  # their HTTP sites (manifests), one per replica
                    http_port = free_port(HOST)
                    env[f"{prefix}HTTP__PORT"] = str(http_port)
                    sites.setdefault(plugin.name, f"http://{HOST}:{http_port}")
                if index > 1 and plugin.name in DEMO_SEEDERS:  # the first replica seeds the demo content
                    env[f"{prefix}DEMO__ENABLED"] = "false"
            name = f"{plugin.name}-{index}"
            argv = [*base, "serve", plugin.name, "--ready-file", str(run_dir / f"{name}.ready.json")]
            child = Child(plugin.name, index, argv, env, run_dir / f"{name}.ready.json", logs / f"{name}.log", port)
            wave.append(child)
        bound = [c.port for c in wave if c.port is not None]
        if bound:
            addresses[plugin.name] = ",".join(f"{HOST}:{p}" for p in bound)
        waves.append(wave)
    return waves, addresses


class Supervisor:
    """Starts the children wave by wave, restarts any that exits, and stops them all in reverse order."""

    def __init__(self, waves: list[list[Child]], on_change: Callable[[], None]) -> None:
        self.waves = waves
        self.on_change = on_change
        self.stopping = asyncio.Event()
        self._watchers: list[asyncio.Task[None]] = []

    @property
    def children(self) -> Iterator[Child]:
        for wave in self.waves:
            yield from wave

    async def _spawn(self, child: Child) -> None:
        child.ready.unlink(missing_ok=True)
        child.ready.parent.mkdir(parents=True, exist_ok=True)
        child.log.parent.mkdir(parents=True, exist_ok=True)
        with child.log.open("ab") as out:
            child.proc = await asyncio.create_subprocess_exec(
                *child.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **child.env},
                start_new_session=True,  # Ctrl-C reaches the supervisor only: it stops the children in order
                preexec_fn=_die_with_parent,
            )

    async def _wait_ready(self, child: Child) -> None:
        proc = child.proc
        assert proc is not None
        deadline = asyncio.get_running_loop().time() + READY_TIMEOUT
        while not child.ready.exists():
            if proc.returncode is not None:
                tail = child.log.read_text(errors="replace")[-3000:] if child.log.exists() else ""
                code = proc.returncode
                raise StartupError(f"{child.name} exited with {code} while starting (log {child.log}):\n{tail}")
            if asyncio.get_running_loop().time() > deadline:
                raise StartupError(f"{child.name} did not report ready in {READY_TIMEOUT:.0f} s (log {child.log})")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 0.1)
        child.endpoints = json.loads(child.ready.read_text())

    async def start(self) -> None:
        try:
            for wave in self.waves:
                for child in wave:
                    await self._spawn(child)
                await asyncio.gather(*(self._wait_ready(child) for child in wave))
                for child in wave:
                    log.info("%s ready (pid %s)", child.name, child.pid)
        except BaseException:
            await self.stop()
            raise
        self._watchers = [asyncio.create_task(self._watch(c), name=f"watch-{c.name}") for c in self.children]

    async def _watch(self, child: Child) -> None:
        """Restart ``child`` whenever it exits, until the supervisor stops."""
        backoff = BACKOFF_FIRST
        loop = asyncio.get_running_loop()
        while True:
            assert child.proc is not None
            started = loop.time()
            code = await child.proc.wait()
            if self.stopping.is_set():
                return
            if loop.time() - started > STABLE_AFTER:
                backoff = BACKOFF_FIRST
            console.warning("%s (pid %s) exited with %s; restarting it in %.1f s", child.name, child.pid, code, backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), backoff)
                return  # stopping meanwhile
            backoff = min(backoff * 2, BACKOFF_MAX)
            old = child.pid
            await self._spawn(child)
            try:
                await self._wait_ready(child)
            except StartupError as exc:
                log.error("%s", exc)
                if child.proc is not None and child.proc.returncode is None:
                    child.proc.kill()
                continue  # it exited (or hangs): the loop sees it and backs off further
            child.restarts += 1
            console.warning("restarted %s: pid %s -> %s (restart %d)", child.name, old, child.pid, child.restarts)
            self.on_change()

    async def stop(self) -> None:
        """SIGTERM to each wave in reverse start order, waiting for it (SIGKILL past STOP_TIMEOUT)."""
        self.stopping.set()
        for task in self._watchers:
            task.cancel()
        for task in self._watchers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for wave in reversed(self.waves):
            running = [c.proc for c in wave if c.proc is not None and c.proc.returncode is None]
            for proc in running:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
            for proc in running:
                try:
                    await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
                except TimeoutError:
                    log.warning("pid %s did not stop in %.0f s: killing it", proc.pid, STOP_TIMEOUT)
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()

    def describe(self) -> dict[str, list[dict[str, str]]]:
        """The endpoint table (a replicated gRPC service at every replica's address) and ``replicas``: each
        process with its pid, gRPC port and restarts."""
        described: dict[str, list[dict[str, str]]] = {}
        for wave in self.waves:
            first = wave[0]
            addresses = ",".join(f"{HOST}:{c.port}" for c in wave if c.port is not None)
            for endpoint in first.endpoints.get(first.service, []):
                entry = dict(endpoint)
                if entry.get("kind") == "grpc" and len(wave) > 1:
                    entry["address"] = addresses
                described.setdefault(first.service, []).append(entry)
        described["replicas"] = [
            {
                "label": c.name,
                "address": f"{HOST}:{c.port}" if c.port is not None else "",
                "kind": "process",
                "pid": str(c.pid),
                "restarts": str(c.restarts),
            }
            for c in self.children
        ]
        return described


def print_replicas(supervisor: Supervisor, out: TextIO = sys.stdout) -> None:
    out.write("\nProcesses (marquee serve NAME; restarted if they exit):\n")
    for child in supervisor.children:
        port = f"port {child.port}" if child.port is not None else ""
        out.write(f"  {child.name:<18} pid {child.pid!s:<8} {port}\n")
    out.write("Press Ctrl-C to stop.\n\n")
    out.flush()


def _write_ready(ready_file: Path | None, described: dict[str, list[dict[str, str]]]) -> None:
    if ready_file is None:
        return
    tmp = ready_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(described))
    tmp.replace(ready_file)


async def migrate(config: PlatformConfig) -> None:
    """Every service's schema, once, before any replica starts (`marquee migrate`)."""
    from services.platform.runtime import platform_store
    from services.platform.storage import service_schemas

    store = platform_store(config)
    try:
        for schema in service_schemas():
            version = await store.migrate(schema)
            log.info("schema %s at version %d", schema.keyspace, version)
    finally:
        await store.close()


async def run(
    config: PlatformConfig,
    *,
    config_file: Path | None,
    redis_url: str | None,
    replicas: int,
    ephemeral_ports: bool = False,
    ready_file: Path | None = None,
    only: set[str] | None = None,
    log_file: Path | None = None,
) -> None:
    """Run the distributed topology until SIGINT/SIGTERM (the store is already chosen: CQL or SQLite)."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    plugins = [p for p in discover() if only is None or p.name in only]
    counts = replica_counts(plugins, replicas)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    redis: RedisServer | None = None
    supervisor: Supervisor | None = None
    try:
        if redis_url is None:
            redis = RedisServer(config.data_dir / "redis", appendonly=True, appendfsync="everysec")
            await asyncio.to_thread(redis.start)
            redis_url = redis.url
            console.info("Redis (AOF, fsync every second) at %s, data in %s", redis_url, redis.directory)
        console.info("Migrating the %s store ...", config.store.kind)
        await migrate(config)
        # the ports are chosen first: [addresses] must list every replica before any process starts
        config_path = config.data_dir / "distributed" / "marquee.toml"
        waves, addresses = plan_children(plugins, counts, config_path, config.data_dir.resolve(), ephemeral_ports)
        write_config(config, config_file, addresses, redis_url)
        console.info(
            "Starting Marquee (distributed): %s ...", ", ".join(f"{n} x{c}" if c > 1 else n for n, c in counts.items())
        )

        def changed() -> None:
            assert supervisor is not None
            _write_ready(ready_file, supervisor.describe())

        supervisor = Supervisor(waves, changed)
        starting = asyncio.create_task(supervisor.start())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():  # Ctrl-C while starting
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
            return
        starting.result()
        described = supervisor.describe()
        print_table({k: v for k, v in described.items() if k != "replicas"}, config.data_dir, log_file)
        print_replicas(supervisor)
        _write_ready(ready_file, described)
        await stopped
        log.info("stopping")
    finally:
        if supervisor is not None:
            await supervisor.stop()
        if redis is not None:
            await asyncio.to_thread(redis.stop)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    sys.stdout.write("Marquee stopped.\n")
