"""`marquee copy`, `marquee migrate` and `marquee up --cql` as an operator runs them, against the session's
Cassandra node: the all-in-one's data moves from SQLite to CQL and the demo account signs in and resumes there."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import grpc

from marquee.v1 import accounts_pb2, accounts_pb2_grpc, playback_pb2, playback_pb2_grpc
from services.common.config import load_config
from services.common.ids import now_micros
from services.common.ports import free_port
from services.common.store.cassandra_node import CassandraNode
from services.platform.runtime import platform_store
from services.playback.schema import POSITIONS, SCHEMA, WATCH_HISTORY
from services.playback.schema import SCHEMA as PLAYBACK_SCHEMA
from tests.cql import unique_prefix
from tests.platform.test_up import _start, _stop

DEMO_EMAIL, DEMO_PASSWORD = "demo@marquee.example", "marquee-demo"


def _marquee(data: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.platform.cli", "--data-dir", str(data), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "MARQUEE_LOGGING__LEVEL": "ERROR", **(env or {})},
        timeout=300,
    )


def test_an_unreachable_cluster_is_one_clear_line(tmp_path: Path) -> None:
    port = free_port("127.0.0.1")
    out = _marquee(tmp_path, "up", "--only", "accounts", "--cql", f"127.0.0.1:{port}")
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if line.startswith("marquee up:")]
    assert len(errors) == 1 and errors[0].startswith(f"marquee up: cannot reach the CQL cluster at 127.0.0.1:{port}")
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout, out.stderr
    out = _marquee(
        tmp_path,
        "migrate",
        env={"MARQUEE_STORE__KIND": "cql", "MARQUEE_STORE__CQL__CONTACT_POINTS": f'["127.0.0.1:{port}"]'},
    )
    assert out.returncode == 1 and "cannot reach the CQL cluster" in out.stderr and "Traceback" not in out.stderr


async def _seed_positions(data: Path, account: str, profile: str) -> int:
    """What playback leaves in the all-in-one's store after the demo profile watched a title for a while."""
    store = platform_store(load_config(data_dir=data))
    await store.migrate(SCHEMA)
    event = now_micros() - 60_000_000
    key = {"account_id": account, "profile_id": profile, "title_id": "toy-story-1995"}
    values = {"position_ms": 754_000, "runtime_ms": 4_860_000, "event_time": event, "finished": False}
    await store.insert(POSITIONS, {**key, **values, "watch_time": event}, timestamp=event)
    await store.insert(
        WATCH_HISTORY,
        {**key, "watched_at": event - 1_000_000, "session_id": "s1", **values},
        timestamp=event,
    )
    await store.close()
    return event


async def _demo_session(address: str) -> tuple[str, str, str]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = accounts_pb2_grpc.AccountServiceStub(channel)
        signed = await stub.SignIn(accounts_pb2.SignInRequest(email=DEMO_EMAIL, password=DEMO_PASSWORD))
        md = (("authorization", f"Bearer {signed.tokens.access_token}"),)
        profiles = await stub.ListProfiles(accounts_pb2.ListProfilesRequest(parent=signed.account.name), metadata=md)
        profile = profiles.profiles[0].name
        chosen = await stub.SelectProfile(
            accounts_pb2.SelectProfileRequest(profile=profile, refresh_token=signed.tokens.refresh_token), metadata=md
        )
        return profile, chosen.tokens.access_token, signed.account.name


def test_copy_moves_the_all_in_one_to_cql_where_the_demo_signs_in_and_resumes(
    tmp_path: Path, cassandra: CassandraNode
) -> None:
    data = tmp_path / "data"
    proc, _ = _start(tmp_path, only=["accounts"])  # the all-in-one on SQLite creates the demo account
    assert _stop(proc, 2)[0] == 0
    platform = load_config(data_dir=data)
    sqlite = platform_store(platform)

    async def demo_ids() -> tuple[str, str]:
        from services.accounts import schema

        await sqlite.migrate(schema.SCHEMA)
        email = await sqlite.get(schema.ACCOUNT_EMAILS, {"email": DEMO_EMAIL})
        assert email is not None
        profiles = await sqlite.query(schema.PROFILES, {"account_id": email["account_id"]}, limit=10)
        await sqlite.close()
        return email["account_id"], profiles.rows[0]["profile_id"]

    account, profile = asyncio.run(demo_ids())
    asyncio.run(_seed_positions(data, account, profile))

    cql_env = {"MARQUEE_STORE__CQL__KEYSPACE_PREFIX": unique_prefix()}
    copied = _marquee(data, "copy", "--to", f"cql:{cassandra.contact_point}", env=cql_env)
    assert copied.returncode == 0, copied.stderr
    assert "every table verified" in copied.stdout and "DIFFERS" not in copied.stdout
    again = _marquee(data, "copy", "--to", f"cql:{cassandra.contact_point}", env=cql_env)
    assert again.returncode == 0 and "copied 0 rows" in again.stdout, "a finished copy resumes with nothing to do"

    migrated = _marquee(
        data,
        "migrate",
        env={
            **cql_env,
            "MARQUEE_STORE__KIND": "cql",
            "MARQUEE_STORE__CQL__CONTACT_POINTS": f'["{cassandra.contact_point}"]',
        },
    )
    newest = PLAYBACK_SCHEMA.migrations[-1].version
    assert migrated.returncode == 0 and f"playback: schema version {newest}" in migrated.stdout, migrated.stderr

    (data / "marquee.db").rename(data / "moved-away.db")  # what runs now can only be the CQL copy
    proc, endpoints = _start(
        tmp_path,
        env=cql_env,
        only=["accounts", "catalog", "steering", "playback"],
        extra=["--cql", cassandra.contact_point],
    )
    try:
        accounts = next(e["address"] for e in endpoints["accounts"] if e["kind"] == "grpc")
        playback = next(e["address"] for e in endpoints["playback"] if e["kind"] == "grpc")
        profile_name, token, _ = asyncio.run(_demo_session(accounts))

        async def resume() -> tuple[int, list[str]]:
            async with grpc.aio.insecure_channel(playback) as channel:
                stub = playback_pb2_grpc.PlaybackServiceStub(channel)
                md = (("authorization", f"Bearer {token}"),)
                got = await stub.GetPosition(
                    playback_pb2.GetPositionRequest(profile=profile_name, title="titles/toy-story-1995"), metadata=md
                )
                history = await stub.ListWatchHistory(
                    playback_pb2.ListWatchHistoryRequest(parent=profile_name), metadata=md
                )
                return got.position.position.ToMilliseconds(), [e.title for e in history.entries]

        position, history = asyncio.run(resume())
        assert position == 754_000
        assert history == ["titles/toy-story-1995"]
        assert not (data / "marquee.db").exists()
    finally:
        assert _stop(proc, 2)[0] == 0
