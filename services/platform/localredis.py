"""A local ``redis-server`` (Debian's package) as a child process: what the test suite and ``marquee up
--distributed`` run when no Redis is given. Loopback only, a free port unless one is named, data in a directory of
its own; the AOF is on by default (``appendonly``), written with the given fsync policy (``everysec`` unless told:
at most about a second of acknowledged writes lost on a crash; ``always``: none), so a restart replays it."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Literal

from services.common.ports import free_port

READY_TIMEOUT = 30.0  # seconds for the server to answer PING (it takes about 0.1 s)


class RedisServerError(RuntimeError):
    """redis-server is missing, or exited or never answered while starting."""


class RedisServer:
    def __init__(
        self,
        directory: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        appendonly: bool = True,
        appendfsync: Literal["always", "everysec", "no"] = "everysec",
    ) -> None:
        self.directory = directory
        self.host = host
        self.port = port or free_port(host)
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisServerError("redis-server is not installed (Debian package redis-server; ./dev installs it)")
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            binary,
            "--bind", self.host,
            "--port", str(self.port),
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync,
            "--protected-mode", "yes",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + READY_TIMEOUT
        while not self.ping():
            if self._proc.poll() is not None:
                log = self.directory / "redis.log"
                tail = log.read_text()[-2000:] if log.exists() else ""
                raise RedisServerError(f"redis-server exited with {self._proc.returncode} while starting: {tail}")
            if time.monotonic() > deadline:
                self.kill()
                raise RedisServerError(f"redis-server did not answer on {self.host}:{self.port}")
            time.sleep(0.02)

    def ping(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM: the server writes its AOF out and exits."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def kill(self) -> None:
        """SIGKILL, as a crash: only what the AOF's fsync policy wrote survives."""
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            self._proc.wait()
        self._proc = None
