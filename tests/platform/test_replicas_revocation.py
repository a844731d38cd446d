"""Revocation across replicas: two accounts and two playback replicas, each its own `marquee serve` process, on
one redis-server (``[state] kind = "redis"``: one deny list) and one data directory (one SQLite store, one set of
signing keys). A token revoked through one accounts replica is refused by every other replica at the very next
call: SignOut (one session), RevokeAllSessions and DeleteAccount (every token of the account so far)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from marquee.v1 import accounts_pb2, accounts_pb2_grpc, playback_pb2, playback_pb2_grpc
from services.common.errors import error_info
from services.common.ports import free_port
from services.platform.localredis import RedisServer
from tests.platform.test_up import wait_progressing

PASSWORD = "a long enough passphrase"


@dataclass
class Replica:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    ready: Path
    log: Path

    def up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited: {self.log.read_text()[-4000:]}")
        return self.ready.exists()

    def progress(self) -> tuple[int, float]:
        stat = self.log.stat()
        return stat.st_size, stat.st_mtime


def _serve(data: Path, service: str, index: int, env: dict[str, str]) -> Replica:
    """One replica: its gRPC port (and, for playback, its manifest port) of its own, logs to a file."""
    name = f"{service}-{index}"
    port = free_port()
    ready, log = data.parent / f"{name}.ready.json", data.parent / f"{name}.log"
    own = {f"MARQUEE_SERVICES__{service.upper()}__SERVER__PORT": str(port)}
    if service == "playback":
        own["MARQUEE_SERVICES__PLAYBACK__HTTP__PORT"] = str(free_port())
    argv = [sys.executable, "-m", "services.platform.cli", "--data-dir", str(data), "serve", service]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*argv, "--ready-file", str(ready)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env, **own},
        )
    return Replica(name, port, proc, ready, log)


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[dict[str, Replica]]:
    root = tmp_path_factory.mktemp("replicas")
    data = root / "data"
    nowhere = f"127.0.0.1:{free_port()}"  # playback calls catalog and steering only past authentication
    env = {
        "MARQUEE_METRICS__ENABLED": "false",
        "MARQUEE_BUS__KIND": "redis",
        "MARQUEE_LIMITS__KIND": "redis",
        "MARQUEE_STATE__KIND": "redis",
        "MARQUEE_REDIS__URL": redis_server.url,
        "MARQUEE_REDIS__KEY_PREFIX": f"r{uuid.uuid4().hex[:12]}:",
        "MARQUEE_SERVICES__ACCOUNTS__DEMO__ENABLED": "false",
        "MARQUEE_ADDRESSES__CATALOG": nowhere,
        "MARQUEE_ADDRESSES__STEERING": nowhere,
    }
    started = [_serve(data, service, i, env) for service in ("accounts", "playback") for i in (1, 2)]
    try:
        for replica in started:
            wait_progressing(replica.up, replica.progress, replica.name)
            assert list(json.loads(replica.ready.read_text())) == [replica.name.split("-")[0]]
        yield {replica.name: replica for replica in started}
    finally:
        for replica in started:
            if replica.proc.poll() is None:
                replica.proc.send_signal(signal.SIGTERM)
        for replica in started:
            replica.proc.wait(timeout=60)


@pytest.fixture
def channels(replicas: dict[str, Replica]) -> Iterator[dict[str, grpc.Channel]]:
    opened = {name: grpc.insecure_channel(f"127.0.0.1:{r.port}") for name, r in replicas.items()}
    try:
        yield opened
    finally:
        for channel in opened.values():
            channel.close()


def _accounts(channels: dict[str, grpc.Channel], index: int) -> accounts_pb2_grpc.AccountServiceStub:
    return accounts_pb2_grpc.AccountServiceStub(channels[f"accounts-{index}"])


def _code(call: Callable[..., object], request: object, md: tuple[tuple[str, str], ...]) -> tuple[grpc.StatusCode, str]:
    """What a call answered: OK, or its status code and ErrorInfo reason."""
    try:
        call(request, metadata=md, timeout=30)
    except grpc.RpcError as err:
        info = error_info(err)
        return err.code(), info.reason if info is not None else ""
    return grpc.StatusCode.OK, ""


def _answers(channels: dict[str, grpc.Channel], account: str, token: str, where: list[str]) -> dict[str, object]:
    """What each named replica answers the token: GetAccount on accounts replicas, GetPosition on playback ones
    (an account's token names no profile, so playback authenticates it, then refuses it PERMISSION_DENIED)."""
    md = (("authorization", f"Bearer {token}"),)
    answers: dict[str, object] = {}
    for name in where:
        if name.startswith("accounts"):
            stub = accounts_pb2_grpc.AccountServiceStub(channels[name])
            answers[name] = _code(stub.GetAccount, accounts_pb2.GetAccountRequest(name=account), md)
        else:
            playback = playback_pb2_grpc.PlaybackServiceStub(channels[name])
            position = playback_pb2.GetPositionRequest(profile=f"{account}/profiles/p1", title="titles/t1")
            answers[name] = _code(playback.GetPosition, position, md)
    return answers


ACCEPTED = {
    "accounts": (grpc.StatusCode.OK, ""),
    "playback": (grpc.StatusCode.PERMISSION_DENIED, ""),
}
REVOKED = (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REVOKED")


def _sign_in(channels: dict[str, grpc.Channel], index: int, email: str) -> accounts_pb2.SignInResponse:
    request = accounts_pb2.SignInRequest(email=email, password=PASSWORD)
    reply: accounts_pb2.SignInResponse = _accounts(channels, index).SignIn(request, timeout=30)
    return reply


def test_a_revocation_on_one_replica_holds_on_every_replica_at_the_next_call(
    channels: dict[str, grpc.Channel],
) -> None:
    email = "replicated@example.com"
    up = _accounts(channels, 1).SignUp(accounts_pb2.SignUpRequest(email=email, password=PASSWORD), timeout=30)
    account = up.account.name
    others = ["accounts-2", "playback-1", "playback-2"]

    # SignOut on replica 1: the session's access token, refused everywhere else at once
    signed_in = _sign_in(channels, 1, email)
    kept = _sign_in(channels, 2, email)  # another session of the account, not signed out
    before = _answers(channels, account, signed_in.tokens.access_token, others)
    assert before == {name: ACCEPTED[name.split("-")[0]] for name in others}
    _accounts(channels, 1).SignOut(accounts_pb2.SignOutRequest(refresh_token=signed_in.tokens.refresh_token))
    assert _answers(channels, account, signed_in.tokens.access_token, others) == dict.fromkeys(others, REVOKED)
    assert _answers(channels, account, kept.tokens.access_token, others) == before, "only that session ended"

    # RevokeAllSessions on replica 2: every token of the account so far, refused on replica 1 and playback
    everyone = ["accounts-1", "playback-1", "playback-2"]
    md = (("authorization", f"Bearer {kept.tokens.access_token}"),)
    _accounts(channels, 2).RevokeAllSessions(accounts_pb2.RevokeAllSessionsRequest(account=account), metadata=md)
    assert _answers(channels, account, kept.tokens.access_token, everyone) == dict.fromkeys(everyone, REVOKED)

    # DeleteAccount on replica 1: a token signed in after the revocation, refused on replica 2 and playback
    again = _sign_in(channels, 2, email)
    assert _answers(channels, account, again.tokens.access_token, ["accounts-1"]) == {
        "accounts-1": ACCEPTED["accounts"]
    }
    md = (("authorization", f"Bearer {again.tokens.access_token}"),)
    _accounts(channels, 1).DeleteAccount(accounts_pb2.DeleteAccountRequest(name=account), metadata=md)
    assert _answers(channels, account, again.tokens.access_token, others) == dict.fromkeys(others, REVOKED)
