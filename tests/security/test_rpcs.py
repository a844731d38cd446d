"""A hostile client against every RPC of every marquee.v1 service (enumerated from the descriptors), through the
real servers of `marquee up --ephemeral-ports` and through its gateway, with and without an access token:

- garbage: bytes no request message decodes (a string field declared longer than the message);
- bad UTF-8: field 1 holding invalid UTF-8 (refused where field 1 is a string; elsewhere it may decode, and the
  handler answers whatever it answers);
- oversized: one byte over the receive limit (64 KiB here, set for every server and the gateway).

Whatever comes back must be a status the error model allows: never UNKNOWN (an escaped exception) and never
INTERNAL (a bug). The table of every call is printed (run with -s to see it) and written to
build/security/rpcs.txt."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import DecodeError

from marquee.v1 import (
    accounts_pb2,
    catalog_pb2,
    content_keys_pb2,
    download_pb2,
    encoding_pb2,
    license_pb2,
    playback_pb2,
    recommendations_pb2,
    steering_pb2,
)
from services.gateway.routes import INTERNAL_SERVICES
from tests.gateway import grpcweb
from tests.platform.test_up import _start, _stop

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS: tuple[ModuleType, ...] = (
    accounts_pb2,
    catalog_pb2,
    content_keys_pb2,
    download_pb2,
    encoding_pb2,
    license_pb2,
    playback_pb2,
    recommendations_pb2,
    steering_pb2,
)
LIMIT = 64 * 1024
SERVICES = ("accounts", "catalog", "encoder", "steering", "playback", "recommendations")
PLATFORM_ENV = {
    # the services without their demo content and background work: only their RPC surface is under test
    "MARQUEE_SERVICES__ENCODER__DEMO__ENABLED": "false",
    "MARQUEE_SERVICES__CATALOG__DEMO__ENABLED": "false",
    "MARQUEE_SERVICES__RECOMMENDATIONS__TRAINING__AT_START": "false",
    "MARQUEE_SERVICES__ACCOUNTS__DEMO__ENABLED": "false",
    **{f"MARQUEE_SERVICES__{name.upper()}__SERVER__MAX_RECEIVE_MESSAGE_BYTES": str(LIMIT) for name in SERVICES},
    "MARQUEE_SERVICES__GATEWAY__LIMITS__MAX_MESSAGE_BYTES": str(LIMIT),
    # one client sends every call from one address
    "MARQUEE_SERVICES__GATEWAY__LIMITS__REQUESTS_PER_SECOND": "100000",
    "MARQUEE_SERVICES__GATEWAY__LIMITS__BURST": "100000",
}
GARBAGE = b"\x0a\x10abc"  # field 1, length-delimited, declared 16 bytes long, 3 present
BAD_UTF8 = b"\x0a\x02\xff\xfe"
PAYLOADS = {
    "garbage (5 bytes)": GARBAGE,
    "bad UTF-8 in field 1": BAD_UTF8,
    f"oversized ({LIMIT + 1} bytes)": b"\x0a" + b"\xff" * LIMIT,
}
FORBIDDEN = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}


@dataclass(frozen=True)
class Rpc:
    service: str  # full name, e.g. marquee.v1.AccountService
    method: MethodDescriptor

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.method.name}"

    @property
    def request_type(self) -> Any:
        return self.method.input_type._concrete_class  # type: ignore[attr-defined]


def every_rpc() -> list[Rpc]:
    return [
        Rpc(service.full_name, method)
        for module in CONTRACTS
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    ]


@dataclass
class Platform:
    addresses: dict[str, str]  # service full name -> host:port
    gateway: str  # base URL


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    tmp = tmp_path_factory.mktemp("hostile")
    proc, endpoints = _start(tmp, PLATFORM_ENV, only=[*SERVICES, "gateway"])
    try:
        addresses = {}
        for service in endpoints.values():
            for endpoint in service:
                if endpoint["kind"] == "grpc" and endpoint["label"].endswith("Service"):
                    addresses[f"marquee.v1.{endpoint['label']}"] = endpoint["address"]
        yield Platform(addresses, endpoints["gateway"][0]["address"].rstrip("/"))
    finally:
        code, _, err = _stop(proc, signal.SIGTERM)
    assert code == 0, err
    assert "Traceback" not in err, err


def test_the_payloads_are_what_they_say() -> None:
    rpcs = every_rpc()
    assert len(rpcs) >= 60 and len({r.service for r in rpcs}) == 9
    for rpc in rpcs:
        with pytest.raises(DecodeError):
            rpc.request_type.FromString(GARBAGE)
        first = rpc.method.input_type.fields_by_number.get(1)
        if first is not None and first.type == first.TYPE_STRING:
            with pytest.raises(DecodeError):
                rpc.request_type.FromString(BAD_UTF8)


async def _viewer_token(platform: Platform) -> str:
    """A signed-up account with its profile selected: what a hostile viewer holds."""
    async with grpc.aio.insecure_channel(platform.addresses["marquee.v1.AccountService"]) as channel:
        from marquee.v1 import accounts_pb2_grpc

        stub = accounts_pb2_grpc.AccountServiceStub(channel)
        up = await stub.SignUp(accounts_pb2.SignUpRequest(email="hostile@example.com", password="hostile passphrase"))
        selected = await stub.SelectProfile(
            accounts_pb2.SelectProfileRequest(profile=up.profile.name, refresh_token=up.tokens.refresh_token),
            metadata=(("authorization", f"Bearer {up.tokens.access_token}"),),
        )
        token: str = selected.tokens.access_token
        return token


async def _direct(channel: grpc.aio.Channel, rpc: Rpc, payload: bytes, md: Any) -> grpc.StatusCode:
    try:
        if rpc.method.server_streaming:
            stream = channel.unary_stream(rpc.path, request_serializer=None, response_deserializer=None)
            async for _ in stream(payload, metadata=md, timeout=10):
                pass
        else:
            unary = channel.unary_unary(rpc.path, request_serializer=None, response_deserializer=None)
            await unary(payload, metadata=md, timeout=10)
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


async def _gateway(session: aiohttp.ClientSession, url: str, rpc: Rpc, payload: bytes, md: Any) -> grpc.StatusCode:
    reply = await grpcweb.call(session, url, rpc.path, [payload], headers=dict(md))
    return reply.code


async def test_every_rpc_answers_hostile_bytes_with_a_status_of_the_error_model(platform: Platform) -> None:
    token = await _viewer_token(platform)
    tokens = {"none": (), "viewer": (("authorization", f"Bearer {token}"),)}
    rows: list[tuple[str, str, str, str, grpc.StatusCode]] = []
    channels = {service: grpc.aio.insecure_channel(address) for service, address in platform.addresses.items()}
    try:
        async with aiohttp.ClientSession() as session:
            for rpc in every_rpc():
                channel = channels[rpc.service]
                for sent, payload in PAYLOADS.items():
                    for who, md in tokens.items():
                        direct, through = await asyncio.gather(
                            _direct(channel, rpc, payload, md), _gateway(session, platform.gateway, rpc, payload, md)
                        )
                        rows.append((rpc.path, sent, who, "direct", direct))
                        rows.append((rpc.path, sent, who, "gateway", through))
    finally:
        for channel in channels.values():
            await channel.close(None)
    table = _table(rows)
    print("\n" + table)
    out = ROOT / "build" / "security" / "rpcs.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table + "\n")
    bad = [row for row in rows if row[4] in FORBIDDEN]
    assert not bad, "\n".join(f"{p} {s} token={w} via {v}: {c.name}" for p, s, w, v, c in bad)
    assert len(rows) == len(every_rpc()) * len(PAYLOADS) * len(tokens) * 2
    # internal services are not routed by the gateway at all, whatever is sent
    internal = {f"/{name}/" for name in INTERNAL_SERVICES}
    unrouted = [r for r in rows if r[3] == "gateway" and r[0].startswith(tuple(internal))]
    assert unrouted and {r[4] for r in unrouted} == {grpc.StatusCode.UNIMPLEMENTED}, unrouted
    rows = [r for r in rows if r not in unrouted]
    # the garbage is refused as such everywhere, before authentication; oversized by the receive limits
    garbage = {c for p, s, w, v, c in rows if s.startswith("garbage")}
    oversized = {c for p, s, w, v, c in rows if s.startswith("oversized")}
    assert garbage == {grpc.StatusCode.INVALID_ARGUMENT}, garbage
    assert oversized == {grpc.StatusCode.RESOURCE_EXHAUSTED}, oversized


def _table(rows: list[tuple[str, str, str, str, grpc.StatusCode]]) -> str:
    """One line per RPC and payload; a column per (token, path)."""
    columns = [("none", "direct"), ("viewer", "direct"), ("none", "gateway"), ("viewer", "gateway")]
    cells: dict[tuple[str, str], dict[tuple[str, str], str]] = {}
    for path, sent, who, via, code in rows:
        cells.setdefault((path, sent), {})[(who, via)] = code.name
    width_rpc = max(len(p) for p, _ in cells)
    width_sent = max(len(s) for _, s in cells)
    heads = [f"{via} ({'token' if who == 'viewer' else 'no token'})" for who, via in columns]
    widths = [max(len(h), 18) for h in heads]
    lines = [
        "  ".join(
            [
                f"{'RPC':<{width_rpc}}",
                f"{'sent':<{width_sent}}",
                *(f"{h:<{w}}" for h, w in zip(heads, widths, strict=True)),
            ]
        )
    ]
    for (path, sent), by in cells.items():
        values = [by.get(c, "-") for c in columns]
        lines.append(
            "  ".join(
                [
                    f"{path:<{width_rpc}}",
                    f"{sent:<{width_sent}}",
                    *(f"{v:<{w}}" for v, w in zip(values, widths, strict=True)),
                ]
            )
        )
    return "\n".join(lines)
