"""A local Apache Cassandra node (or a small cluster on 127.0.0.x) for tests and for development.

The jars come from Maven Central through ``scripts/cassandra.sh`` (once, into the tools cache outside the clone).
:class:`CassandraNode` writes a minimal ``cassandra.yaml`` into its directory, starts
``org.apache.cassandra.service.CassandraDaemon`` with Java 17's module flags on free ports of its loopback
address, and is ready when the node says its native transport is listening and a CQL query answers there (no
fixed sleeps). ``stop()`` ends it (SIGTERM, then SIGKILL); ``kill()`` is the crash a test wants.

This is the recipe for a developer machine and the test suite, not for production: one token per node,
AllowAll authentication, the commit log synced in batch mode by default (an acknowledged write is on disk).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from services.common.config import PlatformConfig
from services.common.ports import free_port

ROOT = Path(__file__).resolve().parents[3]
FETCH_SCRIPT = ROOT / "scripts" / "cassandra.sh"
READY_LINE = re.compile(r"Starting listening for CQL clients on /?([0-9.]+):(\d+)")
START_TIMEOUT = 240.0  # seconds: a busy two-core machine has taken 40 s; the JIT and the schema take the rest

# Cassandra's own conf/jvm17-server.options: what the JDK 17 module system must open to it.
_EXPORTS = (
    "java.base/jdk.internal.misc",
    "java.management.rmi/com.sun.jmx.remote.internal.rmi",
    "java.rmi/sun.rmi.registry",
    "java.rmi/sun.rmi.server",
    "java.sql/java.sql",
    "java.base/java.lang.ref",
    "jdk.unsupported/sun.misc",
    "jdk.compiler/com.sun.tools.javac.file",
    "jdk.attach/sun.tools.attach",
)
_OPENS = (
    "java.base/java.lang.module",
    "java.base/jdk.internal.loader",
    "java.base/jdk.internal.ref",
    "java.base/jdk.internal.reflect",
    "java.base/jdk.internal.math",
    "java.base/jdk.internal.module",
    "java.base/jdk.internal.util.jar",
    "jdk.management/com.sun.management.internal",
    "java.base/sun.nio.ch",
    "java.base/java.io",
    "java.base/java.lang.reflect",
    "jdk.compiler/com.sun.tools.javac",
    "java.base/java.lang",
    "java.base/java.util",
)


class CassandraError(RuntimeError):
    """The node could not be fetched or started; the message says why (with the log's last lines)."""


def cassandra_home() -> Path:
    """The directory holding ``lib/`` (fetched once by scripts/cassandra.sh; quick when cached)."""
    try:
        out = subprocess.run(
            ["bash", str(FETCH_SCRIPT)], check=True, capture_output=True, text=True, timeout=1800
        ).stdout
    except subprocess.CalledProcessError as exc:
        raise CassandraError(f"scripts/cassandra.sh failed: {exc.stderr.strip()[-2000:]}") from exc
    return Path(out.strip().splitlines()[-1])


def _yaml(node: CassandraNode) -> str:
    d = node.directory
    seeds = ",".join(f"{s}:{node.storage_port}" for s in node.seeds)
    return f"""cluster_name: {node.cluster_name}
num_tokens: {node.num_tokens}
initial_token: {node.initial_token if node.initial_token is not None else ""}
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "{seeds}"
listen_address: {node.host}
rpc_address: {node.host}
storage_port: {node.storage_port}
ssl_storage_port: {node.ssl_storage_port}
native_transport_port: {node.native_port}
start_native_transport: true
auto_bootstrap: false
endpoint_snitch: SimpleSnitch
data_file_directories:
  - {d}/data
commitlog_directory: {d}/commitlog
saved_caches_directory: {d}/saved_caches
hints_directory: {d}/hints
cdc_raw_directory: {d}/cdc_raw
commitlog_sync: {node.commitlog_sync}
{"commitlog_sync_period: 10000ms" if node.commitlog_sync == "periodic" else ""}
commitlog_segment_size: 8MiB
auto_snapshot: false
snapshot_before_compaction: false
authenticator: AllowAllAuthenticator
authorizer: AllowAllAuthorizer
role_manager: CassandraRoleManager
concurrent_reads: 8
concurrent_writes: 8
concurrent_counter_writes: 8
memtable_heap_space: 64MiB
memtable_offheap_space: 64MiB
key_cache_size: 8MiB
counter_cache_size: 4MiB
prepared_statements_cache_size: 8MiB
read_request_timeout: 5000ms
write_request_timeout: 5000ms
cas_contention_timeout: 2000ms
truncate_request_timeout: 60000ms
request_timeout: 10000ms
hinted_handoff_enabled: true
max_hint_window: 3h
dynamic_snitch: false
"""


_LOGBACK = """<configuration>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%d{HH:mm:ss.SSS} %-5level [%thread] %logger{0} - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="STDOUT"/></root>
</configuration>
"""


@dataclass
class CassandraNode:
    """One node. ``host`` is its own loopback address (127.0.0.1, 127.0.0.2, ...); ``seeds`` the cluster's seeds."""

    directory: Path
    host: str = "127.0.0.1"
    seeds: Sequence[str] = ("127.0.0.1",)
    storage_port: int = 0  # every node of a cluster shares it (each on its own address); 0 picks a free one
    native_port: int = 0
    heap_mb: int = 512
    cluster_name: str = "marquee"
    num_tokens: int = 1
    initial_token: int | None = None
    home: Path | None = None
    commitlog_sync: str = "batch"  # an acknowledged write is on disk; "periodic" (10 s) is faster, for tests
    unsafe_system: bool = False  # True: the system keyspaces (the schema too) skip fsync; a crash may lose them
    ssl_storage_port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _log_offset: int = field(default=0, init=False, repr=False)  # where this start's lines begin in the log

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)
        self.storage_port = self.storage_port or free_port(self.host)
        self.native_port = self.native_port or free_port(self.host)
        self.ssl_storage_port = self.ssl_storage_port or free_port(self.host)

    @property
    def contact_point(self) -> str:
        return f"{self.host}:{self.native_port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "logs" / "stdout.log"

    def command(self) -> list[str]:
        home = self.home or cassandra_home()
        return [
            "java",
            f"-Xms{self.heap_mb}M",
            f"-Xmx{self.heap_mb}M",
            "-Xss256k",
            "-XX:+UseG1GC",
            "-XX:ActiveProcessorCount=2",
            "-ea",
            "-Djava.net.preferIPv4Stack=true",
            "-Djdk.attach.allowAttachSelf=true",
            *(f"--add-exports={m}=ALL-UNNAMED" for m in _EXPORTS),
            *(f"--add-opens={m}=ALL-UNNAMED" for m in _OPENS),
            "-Dio.netty.tryReflectionSetAccessible=true",
            f"-Dcassandra.config=file://{self.directory}/cassandra.yaml",
            f"-Dlogback.configurationFile={self.directory}/logback.xml",
            f"-Dcassandra.storagedir={self.directory}",
            f"-Dcassandra.logdir={self.directory}/logs",
            "-Dcassandra-foreground=yes",
            "-Dcassandra.skip_wait_for_gossip_to_settle=0",
            "-Dcassandra.ring_delay_ms=0" if self.seeds[0] == self.host else "-Dcassandra.ring_delay_ms=1000",
            *(["-Dcassandra.unsafesystem=true"] if self.unsafe_system else []),
            "-Dcassandra.superuser_setup_delay_ms=0",
            "-Dcassandra.jmx.local.port=0",
            "-cp",
            f"{home}/lib/*",
            "org.apache.cassandra.service.CassandraDaemon",
        ]

    def start(self, *, wait: bool = True) -> None:
        """Start the process (keeping its data when restarted); with ``wait``, return once it answers CQL."""
        for sub in ("data", "commitlog", "saved_caches", "hints", "cdc_raw", "logs"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        (self.directory / "cassandra.yaml").write_text(_yaml(self))
        (self.directory / "logback.xml").write_text(_LOGBACK)
        command = self.command()
        log = self.log_path.open("ab")
        self._log_offset = log.tell()
        self.process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        log.close()
        if wait:
            self.wait_ready()

    def _log_since_start(self) -> str:
        with self.log_path.open("rb") as f:
            f.seek(self._log_offset)
            return f.read().decode(errors="replace")

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Block until the node reports its native transport listening and answers a CQL query."""
        deadline = time.monotonic() + timeout
        listening = False
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise CassandraError(f"cassandra on {self.host} exited:\n{self._log_since_start()[-3000:]}")
            if not listening:
                listening = READY_LINE.search(self._log_since_start()) is not None
            if listening and _answers(self.host, self.native_port):
                return
            time.sleep(0.2)
        raise CassandraError(f"cassandra on {self.host} did not answer CQL in {timeout:.0f} s")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the crash (what is not in the commit log is lost; batch sync loses nothing acknowledged)."""
        if self.running and self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None


def _answers(host: str, port: int) -> bool:
    """True when a CQL query answers on host:port (the node is serving clients, not only listening)."""
    from cassandra import DriverException
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable
    from cassandra.policies import WhiteListRoundRobinPolicy

    profile = ExecutionProfile(load_balancing_policy=WhiteListRoundRobinPolicy([host]), request_timeout=10)
    cluster = Cluster(
        [host],
        port=port,
        protocol_version=5,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=5,
        control_connection_timeout=5,
    )
    try:
        session = cluster.connect()
        session.execute("SELECT release_version FROM system.local")
        return True
    except (DriverException, NoHostAvailable, OSError):  # not serving yet
        return False
    finally:
        cluster.shutdown()


@dataclass
class LocalCluster:
    """``size`` nodes on 127.0.0.1..127.0.0.N sharing one storage port and one native port (each on its own
    address), with evenly spread tokens; a fresh cluster, so nodes join without streaming (auto_bootstrap off)."""

    directory: Path
    size: int = 3
    heap_mb: int = 384
    nodes: list[CassandraNode] = field(default_factory=list, init=False)

    def start(self) -> None:
        home = cassandra_home()
        hosts = [f"127.0.0.{i + 1}" for i in range(self.size)]
        storage, native = _common_free_port(hosts), _common_free_port(hosts)
        # evenly spaced tokens: each node owns a third of the ring whatever order they join in
        step = 2**64 // self.size
        for i, host in enumerate(hosts):
            node = CassandraNode(
                Path(self.directory) / f"node{i + 1}",
                host=host,
                seeds=(hosts[0],),
                storage_port=storage,
                native_port=native,
                heap_mb=self.heap_mb,
                home=home,
                initial_token=-(2**63) + i * step,
            )
            self.nodes.append(node)
        try:
            for node in self.nodes:  # one at a time: a node bootstraps only once the previous one has joined
                node.start()
        except BaseException:
            self.stop()
            raise

    @property
    def contact_points(self) -> list[str]:
        return [n.contact_point for n in self.nodes]

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()


def _common_free_port(hosts: Sequence[str]) -> int:
    for _ in range(50):
        port = free_port(hosts[0])
        try:
            for host in hosts[1:]:
                with socket.socket() as s:
                    s.bind((host, port))
            return port
        except OSError:
            continue
    raise CassandraError("no storage port is free on every node's address")


def local_node(config: PlatformConfig) -> tuple[CassandraNode, PlatformConfig]:
    """``marquee up --cql local``: a node under ``{data_dir}/cassandra`` (kept across runs) on 127.0.0.1, port 9042
    when free; returns it started and the config pointing at it."""
    directory = (config.data_dir / "cassandra").resolve()
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", 9042))
            port = 9042
        except OSError:
            port = 0
    node = CassandraNode(directory, native_port=port)
    node.start()
    cql = config.store.cql.model_copy(update={"contact_points": [node.contact_point]})
    return node, config.model_copy(update={"store": config.store.model_copy(update={"kind": "cql", "cql": cql})})
