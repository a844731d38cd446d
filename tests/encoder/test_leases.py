"""Job leases: several encoders (schedulers with their own owner ids) on one store and one origin, real worker
processes. Each job runs once; a stopping encoder hands back only its own jobs; a dead one's jobs are redone once
its lease expires, and its late writes are refused; an encoder that loses a lease stops that encode and records
nothing."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from services.common.bus.memory import InMemoryBus
from services.common.ids import now_micros
from services.common.store.port import Store
from services.common.topics import ENCODING_DONE
from services.encoder import schema
from services.encoder.jobs import FAILED, QUEUED, RUNNING, SUCCEEDED, TERMINAL, Job, Jobs
from services.encoder.media.pipeline import STAGING
from services.encoder.scheduler import Scheduler
from services.encoder.staging import staging_name
from tests.cql import open_test_store
from tests.encoder.conftest import make_source

LEASE = 2.0
WAIT = 240.0  # the overall bound of a wait on what the encoders report (encodes share two busy cores)


class Encoders:
    """Schedulers sharing one store, bus and origin, as replicas of the encoder do."""

    def __init__(self, store: Store, origin: Path) -> None:
        self.store = store
        self.jobs = Jobs(store)
        self.bus = InMemoryBus()
        self.origin = origin
        self.started: list[Scheduler] = []

    async def start(self, owner: str) -> Scheduler:
        scheduler = Scheduler(
            self.jobs, self.bus, self.origin, workers=1, preset="ultrafast", threads=0, lease_seconds=LEASE, owner=owner
        )
        await scheduler.start()
        self.started.append(scheduler)
        return scheduler

    async def stop(self, scheduler: Scheduler) -> None:
        self.started.remove(scheduler)
        await scheduler.stop()

    async def submit(self, title: str, source: Path) -> Job:
        job = await self.jobs.submit(title, str(source), 0, [], "")
        for scheduler in self.started:
            scheduler.wake()
        return job

    async def until(self, job: Job, check: Callable[[Job], bool]) -> Job:
        """The job once ``check`` holds of it (polled; a generous overall bound)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while True:
            current = await self.jobs.get(job.job_id)
            if check(current):
                return current
            assert loop.time() < deadline, f"job {job.title_id} still {current}"
            await asyncio.sleep(0.1)

    async def ended(self, job: Job) -> Job:
        return await self.until(job, lambda j: j.state in TERMINAL)


def running_by(owner: str) -> Callable[[Job], bool]:
    return lambda j: j.state == RUNNING and j.lease_owner == owner


async def no_worker_of(job: Job) -> None:
    """Until the job's worker process has exited (polled, bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while any(p.name == f"encode-{job.job_id}" for p in multiprocessing.active_children()):
        assert loop.time() < deadline, f"the worker of {job.title_id} still runs"
        await asyncio.sleep(0.1)


@pytest.fixture
async def encoders(tmp_path: Path, store_kind: str, request: pytest.FixtureRequest) -> AsyncIterator[Encoders]:
    store = await open_test_store(store_kind, tmp_path, request, "enc")
    await store.migrate(schema.SCHEMA)
    env = Encoders(store, tmp_path / "origin")
    yield env
    for scheduler in list(env.started):
        await env.stop(scheduler)
    await env.bus.close()
    await store.close()


@pytest.fixture(scope="module")
def small_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_source(tmp_path_factory.mktemp("src") / "small.mp4", width=640, height=360, seconds=6)


@pytest.fixture(scope="module")
def long_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_source(tmp_path_factory.mktemp("src") / "long.mp4", width=1280, height=720, seconds=30, audio=False)


async def test_two_encoders_run_every_job_once(encoders: Encoders, small_source: Path, long_source: Path) -> None:
    a = await encoders.start("encoder-a")
    first = await encoders.submit("first", long_source)
    await encoders.until(first, lambda j: running_by("encoder-a")(j) and j.percent > 0)
    # a second encoder starting neither requeues the job the first runs nor wipes its staging
    await encoders.start("encoder-b")
    assert (encoders.origin / STAGING / staging_name(first.job_id, 1)).is_dir()
    assert running_by("encoder-a")(await encoders.jobs.get(first.job_id))
    rest = [await encoders.submit(f"next-{i}", small_source) for i in range(3)]
    finals = [await encoders.ended(job) for job in (first, *rest)]
    assert [(j.state, j.attempt) for j in finals] == [(SUCCEEDED, 1)] * 4, [j.error_message for j in finals]
    assert {j.lease_owner for j in finals} == {"encoder-a", "encoder-b"}
    assert sorted(p.name for p in encoders.origin.iterdir()) == ["first", "next-0", "next-1", "next-2"]
    assert a.owner == "encoder-a"


async def test_a_stopping_encoder_requeues_only_its_own_jobs(
    encoders: Encoders, small_source: Path, long_source: Path
) -> None:
    a = await encoders.start("encoder-a")
    long = await encoders.submit("long", long_source)
    await encoders.until(long, running_by("encoder-a"))
    await encoders.start("encoder-b")
    short = await encoders.submit("short", small_source)
    await encoders.until(short, running_by("encoder-b"))
    await encoders.stop(a)  # a rolling restart: a's job goes back to the queue at once, b's stays b's
    handed_back = await encoders.jobs.get(long.job_id)
    assert handed_back.state == QUEUED or (running_by("encoder-b")(handed_back) and handed_back.attempt == 2)
    assert not (encoders.origin / STAGING / staging_name(long.job_id, 1)).exists()
    done_short, done_long = await encoders.ended(short), await encoders.ended(long)
    assert (done_short.state, done_short.attempt, done_short.lease_owner) == (SUCCEEDED, 1, "encoder-b")
    assert (done_long.state, done_long.attempt, done_long.lease_owner) == (SUCCEEDED, 2, "encoder-b")


async def test_a_dead_encoders_job_is_redone_once_its_lease_expires(encoders: Encoders, small_source: Path) -> None:
    job = await encoders.submit("orphan", small_source)
    dead = await encoders.jobs.claim("encoder-dead", LEASE)  # ... and its encoder was SIGKILLed: no renewal
    assert dead is not None and dead.attempt == 1
    left = encoders.origin / STAGING / staging_name(job.job_id, 1)
    left.mkdir(parents=True)  # its half-written staging
    await encoders.start("encoder-b")
    final = await encoders.ended(job)
    assert (final.state, final.attempt, final.lease_owner) == (SUCCEEDED, 2, "encoder-b"), final.error_message
    assert final.start_time >= dead.lease_expire  # taken back only once the lease had run out
    assert not left.exists()
    # the dead encoder's late writes are refused and change nothing
    assert not await encoders.jobs.progress(dead, 50.0, "360p", 1.0)
    assert not await encoders.jobs.renew(dead, LEASE)
    assert not await encoders.jobs.finish(dead, FAILED, reason="SOURCE_INVALID", message="too late")
    assert await encoders.jobs.get(job.job_id) == final


async def test_a_lost_lease_stops_the_encode_and_records_nothing(encoders: Encoders, long_source: Path) -> None:
    events = await encoders.bus.subscribe(ENCODING_DONE, "test", "c1")
    a = await encoders.start("encoder-a")
    job = await encoders.submit("taken", long_source)
    await encoders.until(job, lambda j: running_by("encoder-a")(j) and j.percent > 0)
    taken = {"lease_owner": "encoder-other", "lease_expire": now_micros() + 3_600_000_000}
    assert await encoders.store.update(schema.JOBS, {"job_id": job.job_id}, taken, if_={"state": RUNNING})
    seen = await encoders.jobs.get(job.job_id)
    await no_worker_of(job)  # a's next renewal fails: it cancels the encode
    assert not (encoders.origin / STAGING / staging_name(job.job_id, 1)).exists()
    await encoders.stop(a)  # every task of a has ended: whatever it would record is recorded
    after = await encoders.jobs.get(job.job_id)
    assert after == seen and (after.state, after.lease_owner, after.end_time) == (RUNNING, "encoder-other", 0)
    assert not (encoders.origin / "taken").exists()
    assert await events.next(timeout=0.1) is None


async def test_of_two_reapers_one_requeues(encoders: Encoders, small_source: Path) -> None:
    job = await encoders.submit("contested", small_source)
    dead = await encoders.jobs.claim("encoder-dead", 0.001)
    assert dead is not None
    await asyncio.sleep((dead.lease_expire - now_micros()) / 1e6 + 0.01)  # until the lease has run out
    other = Jobs(encoders.store)  # another replica's view of the same store
    assert sorted(await asyncio.gather(encoders.jobs.reap_expired(), other.reap_expired())) == [0, 1]
    requeued = await encoders.jobs.get(job.job_id)
    assert (requeued.state, requeued.lease_owner, requeued.attempt) == (QUEUED, "", 1)
    queue = await encoders.store.query(schema.QUEUE, {"shard": "default"}, limit=10)
    assert [row["job_id"] for row in queue.rows] == [job.job_id]
    again = await encoders.jobs.claim("encoder-b", LEASE)
    assert again is not None and (again.job_id, again.attempt, again.lease_owner) == (job.job_id, 2, "encoder-b")
