"""EncodingService over real gRPC: jobs, priority order, idempotency, cancel, failure, restart, admin only."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from pydantic import SecretStr

from marquee.v1 import encoding_pb2, encoding_pb2_grpc
from services.common.auth import AccessTokens
from services.common.bus.memory import InMemoryBus
from services.common.config import AuthConfig, ServerConfig
from services.common.deps import Dependencies
from services.common.errors import error_info
from services.common.paging import PageTokens
from services.common.ratelimit import InMemoryRateLimiter
from services.common.service import Service
from services.common.store.port import Store
from services.common.topics import ENCODING_DONE
from services.encoder import schema
from services.encoder.config import EncoderConfig
from services.encoder.server import create_server
from tests.cql import open_test_store
from tests.encoder.conftest import make_source

# The tokens below are minted once, at import: a day's lifetime outlives the slowest run (the CQL variants run last)
AUTH = AuthConfig(
    keys={"k1": SecretStr("encoder-test-key-0123456789abcdef0123")}, signing_kid="k1", access_token_ttl=86400
)
TOKENS = AccessTokens(AUTH)
ADMIN = (("authorization", f"Bearer {TOKENS.issue('ops', roles=['admin']).token}"),)
USER = (("authorization", f"Bearer {TOKENS.issue('viewer').token}"),)
S = encoding_pb2


class Harness:
    def __init__(self, tmp: Path, store: Store) -> None:
        self.tmp = tmp
        self.origin = tmp / "origin"
        self.store = store
        self.bus = InMemoryBus()
        self.service: Service | None = None
        self.channel: grpc.aio.Channel | None = None
        self.stub: Any = None

    def deps(self) -> Dependencies:
        return Dependencies(
            self.store, self.bus, InMemoryRateLimiter(), AUTH, TOKENS, PageTokens(b"k"), data_dir=self.tmp
        )

    async def start(self, workers: int = 1) -> None:
        config = EncoderConfig(
            server=ServerConfig(port=0, drain_delay=0, grace_period=1), workers=workers, preset="ultrafast"
        )
        self.service = await create_server(config, self.deps())
        await self.service.start()
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.service.grpc_port}")
        self.stub = encoding_pb2_grpc.EncodingServiceStub(self.channel)

    async def stop(self) -> None:
        if self.channel is not None:
            await self.channel.close(None)
        if self.service is not None:
            await self.service.stop(0, drain=0)

    async def submit(self, source: Path, title: str, priority: int = 0, request_id: str = "") -> S.EncodingJob:
        resp = await self.stub.CreateEncodingJob(
            S.CreateEncodingJobRequest(
                job=S.EncodingJob(title=f"titles/{title}", source_uri=str(source), priority=priority),
                request_id=request_id,
            ),
            metadata=ADMIN,
        )
        return resp.job  # type: ignore[no-any-return]

    async def wait(self, name: str, timeout: float = 120) -> S.EncodingJob:
        async def follow() -> S.EncodingJob:
            last: S.EncodingJob | None = None
            async for update in self.stub.WatchEncodingJob(S.WatchEncodingJobRequest(name=name), metadata=ADMIN):
                last = update.job
            assert last is not None
            return last

        return await asyncio.wait_for(follow(), timeout)


@pytest.fixture
async def harness(tmp_path: Path, store_kind: str, request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    h = Harness(tmp_path, await open_test_store(store_kind, tmp_path, request, "enc"))
    await h.start()
    yield h
    await h.stop()
    await h.bus.close()
    await h.store.close()


@pytest.fixture(scope="module")
def small_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_source(tmp_path_factory.mktemp("src") / "small.mp4", width=640, height=360, seconds=6)


async def test_job_runs_to_success_and_announces_it(harness: Harness, small_source: Path) -> None:
    events = await harness.bus.subscribe(ENCODING_DONE, "test", "c1")
    job = await harness.submit(small_source, "small", priority=5)
    assert job.state in (S.ENCODING_JOB_STATE_QUEUED, S.ENCODING_JOB_STATE_RUNNING)
    updates: list[S.EncodingJob] = []
    async for update in harness.stub.WatchEncodingJob(S.WatchEncodingJobRequest(name=job.name), metadata=ADMIN):
        updates.append(update.job)
    final = updates[-1]
    assert final.state == S.ENCODING_JOB_STATE_SUCCEEDED, final.error
    assert final.progress.percent == 100.0 and final.attempt == 1
    assert final.start_time.ToMicroseconds() >= final.create_time.ToMicroseconds()
    assert (harness.origin / "small" / "media.json").is_file()
    msg = await events.next(timeout=5)
    assert msg is not None
    event = S.EncodingDoneEvent.FromString(msg.payload)
    assert (event.title, event.job, list(event.heights)) == ("titles/small", job.name, [360])
    assert event.media_path == "small/media.json"


async def test_priority_order_and_idempotency(harness: Harness, small_source: Path, tmp_path: Path) -> None:
    first = await harness.submit(small_source, "first", priority=0)  # occupies the single worker
    low = await harness.submit(small_source, "low", priority=1)
    high = await harness.submit(small_source, "high", priority=100, request_id="req-high")
    again = await harness.submit(small_source, "high", priority=100, request_id="req-high")
    assert again.name == high.name
    done = {j.title: j for j in [await harness.wait(x.name) for x in (first, low, high)]}
    assert all(j.state == S.ENCODING_JOB_STATE_SUCCEEDED for j in done.values())
    assert done["titles/high"].start_time.ToMicroseconds() < done["titles/low"].start_time.ToMicroseconds()
    listed = await harness.stub.ListEncodingJobs(S.ListEncodingJobsRequest(page_size=2), metadata=ADMIN)
    assert [j.title for j in listed.jobs] == ["titles/high", "titles/low"]  # newest first
    rest = await harness.stub.ListEncodingJobs(
        S.ListEncodingJobsRequest(page_size=2, page_token=listed.next_page_token), metadata=ADMIN
    )
    assert [j.title for j in rest.jobs] == ["titles/first"] and rest.next_page_token == ""
    succeeded = await harness.stub.ListEncodingJobs(
        S.ListEncodingJobsRequest(state=S.ENCODING_JOB_STATE_SUCCEEDED), metadata=ADMIN
    )
    assert len(succeeded.jobs) == 3


async def test_cancel_queued_and_running(harness: Harness, tmp_path: Path) -> None:
    long_source = make_source(tmp_path / "long.mp4", width=1280, height=720, seconds=40, audio=False)
    running = await harness.submit(long_source, "long")
    queued = await harness.submit(long_source, "queued")
    cancelled = await harness.stub.CancelEncodingJob(S.CancelEncodingJobRequest(name=queued.name), metadata=ADMIN)
    assert cancelled.job.state == S.ENCODING_JOB_STATE_CANCELLED
    for _ in range(200):
        job = (await harness.stub.GetEncodingJob(S.GetEncodingJobRequest(name=running.name), metadata=ADMIN)).job
        if job.state == S.ENCODING_JOB_STATE_RUNNING and job.progress.percent > 0:
            break
        await asyncio.sleep(0.1)
    await harness.stub.CancelEncodingJob(S.CancelEncodingJobRequest(name=running.name), metadata=ADMIN)
    final = await harness.wait(running.name)
    assert final.state == S.ENCODING_JOB_STATE_CANCELLED
    assert not (harness.origin / "long").exists()
    assert not (harness.origin / ".staging").exists() or not any((harness.origin / ".staging").iterdir())
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await harness.stub.CancelEncodingJob(S.CancelEncodingJobRequest(name=running.name), metadata=ADMIN)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_bad_source_fails_with_a_reason(harness: Harness, tmp_path: Path) -> None:
    bad = tmp_path / "not-video.mp4"
    bad.write_text("hello")
    job = await harness.submit(bad, "bad")
    final = await harness.wait(job.name)
    assert final.state == S.ENCODING_JOB_STATE_FAILED
    assert final.error.reason == "SOURCE_INVALID" and "cannot be read" in final.error.message
    missing = await harness.wait((await harness.submit(tmp_path / "nope.mp4", "nope")).name)
    assert missing.state == S.ENCODING_JOB_STATE_FAILED and "does not exist" in missing.error.message
    assert not (harness.origin / "bad").exists()


async def test_restart_redoes_an_interrupted_job_once(
    tmp_path: Path, small_source: Path, store_kind: str, request: pytest.FixtureRequest
) -> None:
    """A job left RUNNING by an encoder of before job leases (no lease: expired) is redone once, and staging
    leftovers go: the dead attempt's and an old one of the former naming; a fresh one of that naming stays."""
    h = Harness(tmp_path, await open_test_store(store_kind, tmp_path, request, "enc"))
    await h.store.migrate(schema.SCHEMA)
    from services.encoder.jobs import Jobs

    jobs = Jobs(h.store)
    job = await jobs.submit("again", str(small_source), 0, [], "req-1")
    claimed = await jobs.claim("old-encoder", 60)  # a worker took it ... and its process died: the row says RUNNING
    assert claimed is not None and claimed.state == "RUNNING"
    await h.store.update(schema.JOBS, {"job_id": job.job_id}, {"lease_owner": None, "lease_expire": None})
    staging = h.origin / ".staging"
    (staging / f"{job.job_id}.1").mkdir(parents=True)  # half-written output of the dead worker
    (staging / "again-0123abcd").mkdir()  # the former naming: removed only once old
    os.utime(staging / "again-0123abcd", (0, 0))
    (staging / "other-4567cdef").mkdir()  # ... which this one is not (it may belong to a running older encoder)
    await h.start()
    try:
        final = await h.wait(f"encodingJobs/{job.job_id}")
        assert final.state == S.ENCODING_JOB_STATE_SUCCEEDED and final.attempt == 2
        listed = await h.stub.ListEncodingJobs(S.ListEncodingJobsRequest(), metadata=ADMIN)
        assert len(listed.jobs) == 1
        assert sorted(p.name for p in h.origin.iterdir()) == [".staging", "again"]
        assert [p.name for p in staging.iterdir()] == ["other-4567cdef"]
    finally:
        await h.stop()
        await h.bus.close()
        await h.store.close()


async def test_ctrl_c_in_the_terminal_does_not_fail_a_running_encode(harness: Harness, small_source: Path) -> None:
    """A terminal's Ctrl-C reaches the worker process too (same process group): it used to die of it with a
    KeyboardInterrupt and fail its job while `marquee up` was shutting down gracefully."""
    job = await harness.submit(small_source, "sigint")
    workers: list[multiprocessing.process.BaseProcess] = []
    while not workers:  # the scheduler starts the worker process right after claiming the job
        workers = [p for p in multiprocessing.active_children() if p.name.startswith("encode-") and p.pid]
        await asyncio.sleep(0.01)
    for process in workers:
        assert process.pid is not None
        os.kill(process.pid, signal.SIGINT)
    final = await harness.wait(job.name)
    assert final.state == S.ENCODING_JOB_STATE_SUCCEEDED, final.error


async def test_admin_only_and_bad_input(harness: Harness, small_source: Path) -> None:
    req = S.CreateEncodingJobRequest(job=S.EncodingJob(title="titles/x", source_uri=str(small_source)))
    for md, code in [((), grpc.StatusCode.UNAUTHENTICATED), (USER, grpc.StatusCode.PERMISSION_DENIED)]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await harness.stub.CreateEncodingJob(req, metadata=md)
        assert err.value.code() == code
    cases = [
        (S.EncodingJob(title="x", source_uri=str(small_source)), "job.title"),
        (S.EncodingJob(title="titles/x", source_uri="relative/path.mp4"), "absolute path"),
        (S.EncodingJob(title="titles/x", source_uri="http://example.com/a.mp4"), "absolute path"),
        (S.EncodingJob(title="titles/x", source_uri=""), "required"),
        (S.EncodingJob(title="titles/x", source_uri=str(small_source), priority=5000), "priority"),
        (
            S.EncodingJob(
                title="titles/x", source_uri=str(small_source), ladder=[S.Rung(name="x", height=9999, video_bitrate=1)]
            ),
            "ladder",
        ),
    ]
    for job, words in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await harness.stub.CreateEncodingJob(S.CreateEncodingJobRequest(job=job), metadata=ADMIN)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert words in (err.value.details() or ""), err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await harness.stub.GetEncodingJob(
            S.GetEncodingJobRequest(name="encodingJobs/ffffffffffffffffffffffff"), metadata=ADMIN
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    info = error_info(err.value)
    assert info is not None and info.reason == "JOB_NOT_FOUND"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await harness.stub.ListEncodingJobs(S.ListEncodingJobsRequest(page_token="nope"), metadata=ADMIN)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
