"""The distributed topology from a test: `marquee up --distributed` started on a Redis and a store the test
names, calls through its gateway as a browser makes them (gRPC-web, retried on UNAVAILABLE as a client does),
and what its supervisor reports. Used by test_distributed.py and test_chaos.py."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
import m3u8
from google.protobuf.message import Message

from marquee.v1 import accounts_pb2, catalog_pb2, catalog_pb2_grpc
from tests.gateway import grpcweb
from tests.platform.test_up import FAST_ENV

M = TypeVar("M", bound=Message)


def start(tmp_path: Path, redis_url: str, store: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], Path]:
    ready = tmp_path / "ready.json"
    env = {
        **os.environ,
        **FAST_ENV,
        "MARQUEE_SERVICES__ENCODER__DEMO__SYNTHETIC_SECONDS": "4",
        "MARQUEE_REDIS__KEY_PREFIX": f"d{uuid.uuid4().hex[:12]}:",
        **env,
    }
    argv = [sys.executable, "-m", "services.platform.cli", "--data-dir", str(tmp_path / "data"), "up"]
    argv += ["--distributed", *store, "--redis", redis_url, "--ephemeral-ports"]
    proc = subprocess.Popen(
        [*argv, "--ready-file", str(ready)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    return proc, ready


def logs_size(data: Path) -> int:
    return sum(p.stat().st_size for p in (data / "logs").glob("*.log")) if (data / "logs").exists() else 0


def grpc_web(
    gateway: str,
    method: str,
    request: Message,
    reply: type[M],
    token: str | None = None,
    retried: list[str] | None = None,
    attempts: int | None = 40,
) -> M:
    """One unary call through the gateway, retried on UNAVAILABLE as a client does (a replica that just died), at
    most ``attempts`` times (None: until it succeeds; the test's timeout bounds it); each retry's cause is appended
    to ``retried``."""
    headers = {"content-type": grpcweb.BINARY, "x-grpc-web": "1"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    for attempt in itertools.count(1) if attempts is None else range(1, attempts):
        http = urllib.request.Request(
            f"{gateway}/{method}", data=grpcweb.frame(request.SerializeToString()), headers=headers
        )
        with urllib.request.urlopen(http, timeout=30) as answer:
            parsed = grpcweb.parse(answer.status, _headers(answer), answer.read(), text=False)
        if parsed.code == grpc.StatusCode.OK:
            return reply.FromString(parsed.messages[0])
        assert parsed.code == grpc.StatusCode.UNAVAILABLE, (method, parsed.code, parsed.message)
        if retried is not None:
            retried.append(f"{method}: {parsed.message}")
        time.sleep(min(0.05 * attempt, 1.0))  # a client's backoff between retries
    raise AssertionError(f"{method} stayed UNAVAILABLE")


def gateway_sign_in(
    gateway: str, email: str, password: str, profile: str | None = None
) -> tuple[accounts_pb2.SignInResponse, accounts_pb2.SelectProfileResponse]:
    """Sign in through the gateway and select the profile named ``profile`` (display name; the first without)."""
    signed = grpc_web(
        gateway,
        "marquee.v1.AccountService/SignIn",
        accounts_pb2.SignInRequest(email=email, password=password),
        accounts_pb2.SignInResponse,
    )
    profiles = grpc_web(
        gateway,
        "marquee.v1.AccountService/ListProfiles",
        accounts_pb2.ListProfilesRequest(parent=signed.account.name),
        accounts_pb2.ListProfilesResponse,
        signed.tokens.access_token,
    ).profiles
    chosen = next(p.name for p in profiles if profile is None or p.display_name == profile)
    selected = grpc_web(
        gateway,
        "marquee.v1.AccountService/SelectProfile",
        accounts_pb2.SelectProfileRequest(profile=chosen, refresh_token=signed.tokens.refresh_token),
        accounts_pb2.SelectProfileResponse,
        signed.tokens.access_token,
    )
    return signed, selected


def _headers(answer: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in answer.headers.items():
        out.setdefault(name.lower(), []).append(value)
    return out


def read_replicas(ready: Path) -> dict[str, dict[str, str]]:
    return {r["label"]: r for r in json.loads(ready.read_text())["replicas"]}


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return "\nState:\tZ" not in status


def playable_title(
    catalogs: list[str], md: tuple[tuple[str, str], ...], media: str | None = None
) -> Callable[[], str | None]:
    """A title every catalog replica calls playable (each follows encoding.done on its own, so one may lag),
    playing ``media`` if given."""

    def playable(address: str) -> list[str]:
        with grpc.insecure_channel(address) as channel:
            stub = catalog_pb2_grpc.CatalogServiceStub(channel)
            request = catalog_pb2.ListTitlesRequest(
                filter=catalog_pb2.TitleFilter(playable_only=True, region="US"), page_size=100
            )
            titles = stub.ListTitles(request, metadata=md, timeout=30).titles
            return [t.name for t in titles if media is None or t.media == media]

    def find() -> str | None:
        seen = [playable(address) for address in catalogs]
        common = [name for name in seen[0] if all(name in other for other in seen[1:])]
        return common[0] if common else None

    return find


def running_in(data: Path) -> list[str]:
    """Every live process whose command line names ``data`` (the replicas, the encoder's tools, a Redis server)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or not alive(int(entry.name)):
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if str(data) in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


def status(url: str) -> int:
    """The HTTP status of a GET (a refusal is an answer here, not an error)."""
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            answer.read()
            return int(answer.status)
    except urllib.error.HTTPError as refused:
        return int(refused.code)


def first_segments(hls_uri: str) -> list[str]:
    """The first media segment of every variant (every pathway's) of a session's HLS master playlist."""
    with urllib.request.urlopen(hls_uri, timeout=30) as answer:
        master = m3u8.loads(answer.read().decode(), uri=hls_uri)
    segments = []
    for playlist in master.playlists:
        with urllib.request.urlopen(playlist.absolute_uri, timeout=30) as answer:
            variant = m3u8.loads(answer.read().decode(), uri=playlist.absolute_uri)
        segments.append(variant.segments[0].absolute_uri)
    return sorted(set(segments))
