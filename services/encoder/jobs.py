"""Encoding jobs in the store: submit (idempotent), claim in priority order, progress, finish, cancel, list.

A RUNNING job is leased: ``lease_owner`` (the scheduler instance running it) holds it until ``lease_expire``
(microseconds) and renews it while it works. Every write of a running job is a compare-and-set on its lease
(state RUNNING, that owner, that attempt), so an encoder that lost its lease can neither report progress nor
record an outcome; a lease left to expire (its encoder died) is reaped: the job goes back to the queue.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from services.common.errors import FailedPrecondition, NotFound
from services.common.ids import new_id, now_micros
from services.common.store.port import Page, PagingState, Store
from services.encoder import schema

SHARD = "default"
QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)


@dataclass
class Job:
    job_id: str
    title_id: str
    source_uri: str
    priority: int
    ladder: list[dict[str, Any]] = field(default_factory=list)
    state: str = QUEUED
    percent: float = 0.0
    rung: str = ""
    speed: float = 0.0
    error_reason: str = ""
    error_message: str = ""
    create_time: int = 0
    start_time: int = 0
    end_time: int = 0
    attempt: int = 0
    request_id: str = ""
    cancel_requested: bool = False
    lease_owner: str = ""
    lease_expire: int = 0

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        return cls(**{k: (v if v is not None else cls.__dataclass_fields__[k].default) for k, v in row.items()})  # type: ignore[arg-type]

    def row(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Jobs:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def submit(
        self, title_id: str, source_uri: str, priority: int, ladder: list[dict[str, Any]], request_id: str
    ) -> Job:
        """A new queued job, or the job already created for ``request_id``."""
        job_id = new_id()
        if request_id and not await self._store.insert(
            schema.JOB_REQUESTS, {"request_id": request_id, "job_id": job_id}, if_not_exists=True
        ):
            existing = await self._store.get(schema.JOB_REQUESTS, {"request_id": request_id})
            if existing is None:  # the first submission's mapping expired in between: treat as new
                return await self.submit(title_id, source_uri, priority, ladder, "")
            return await self.get(existing["job_id"])
        job = Job(job_id, title_id, source_uri, priority, ladder, create_time=now_micros(), request_id=request_id)
        await self._store.insert(schema.JOBS, job.row())
        await self._index(job, job.state)
        await self._enqueue(job)
        return job

    async def _index(self, job: Job, state: str) -> None:
        for bucket in ("all", state):
            await self._store.insert(schema.JOB_INDEX, {"bucket": bucket, "seq": job.create_time, "job_id": job.job_id})

    async def _enqueue(self, job: Job) -> None:
        await self._store.insert(
            schema.QUEUE, {"shard": SHARD, "priority": job.priority, "seq": job.create_time, "job_id": job.job_id}
        )

    async def _move(self, job: Job, old: str, new: str) -> None:
        await self._store.delete(schema.JOB_INDEX, {"bucket": old, "seq": job.create_time, "job_id": job.job_id})
        await self._store.insert(schema.JOB_INDEX, {"bucket": new, "seq": job.create_time, "job_id": job.job_id})

    async def find(self, job_id: str) -> Job | None:
        row = await self._store.get(schema.JOBS, {"job_id": job_id})
        return Job.from_row(row) if row else None

    async def get(self, job_id: str) -> Job:
        job = await self.find(job_id)
        if job is None:
            raise NotFound(f"encoding job encodingJobs/{job_id} does not exist", reason="JOB_NOT_FOUND")
        return job

    async def claim(self, owner: str, lease_seconds: float) -> Job | None:
        """The highest-priority queued job, now RUNNING and leased to ``owner`` for ``lease_seconds`` (one
        compare-and-set, so two workers never share one)."""
        while True:
            page = await self._store.query(schema.QUEUE, {"shard": SHARD}, limit=16)
            if not page.rows:
                return None
            for entry in page.rows:
                key = {"shard": SHARD, "priority": entry["priority"], "seq": entry["seq"], "job_id": entry["job_id"]}
                job = await self.find(entry["job_id"])
                if job is None or job.state != QUEUED:
                    await self._store.delete(schema.QUEUE, key)
                    continue
                now = now_micros()
                claimed = await self._store.update(
                    schema.JOBS,
                    {"job_id": job.job_id},
                    {
                        "state": RUNNING,
                        "start_time": now,
                        "attempt": job.attempt + 1,
                        "percent": 0.0,
                        "lease_owner": owner,
                        "lease_expire": now + _micros(lease_seconds),
                    },
                    if_={"state": QUEUED},
                )
                await self._store.delete(schema.QUEUE, key)
                if claimed:
                    await self._move(job, QUEUED, RUNNING)
                    return await self.get(job.job_id)
            # every entry seen was stale; look again

    async def renew(self, job: Job, lease_seconds: float) -> bool:
        """Extend the lease of ``job`` (as claimed); False: the lease is lost (the job was reaped, or ended)."""
        return await self._store.update(
            schema.JOBS, {"job_id": job.job_id}, {"lease_expire": now_micros() + _micros(lease_seconds)}, if_=_held(job)
        )

    async def progress(self, job: Job, percent: float, rung: str, speed: float) -> bool:
        """Record progress while ``job`` (as claimed) still holds its lease."""
        return await self._store.update(
            schema.JOBS, {"job_id": job.job_id}, {"percent": percent, "rung": rung, "speed": speed}, if_=_held(job)
        )

    async def finish(self, job: Job, state: str, *, reason: str = "", message: str = "") -> bool:
        """End ``job`` (as claimed) in ``state``; False (nothing written) when its lease was lost meanwhile."""
        values: dict[str, Any] = {
            "state": state,
            "end_time": now_micros(),
            "error_reason": reason,
            "error_message": message,
        }
        if state == SUCCEEDED:
            values["percent"] = 100.0
        if not await self._store.update(schema.JOBS, {"job_id": job.job_id}, values, if_=_held(job)):
            return False
        await self._move(job, RUNNING, state)
        return True

    async def reap_expired(self) -> int:
        """Jobs whose lease expired (their encoder died, or predates leases) go back to the queue; the count."""
        now = now_micros()
        return await self._requeue_where(lambda row: _expiry(row) < now)

    async def release(self, owner: str) -> int:
        """On a graceful stop: the jobs ``owner`` holds go back to the queue at once; the count."""
        return await self._requeue_where(lambda row: row.get("lease_owner") == owner)

    async def live_attempts(self) -> set[tuple[str, int]]:
        """(job id, attempt) of every RUNNING job under an unexpired lease."""
        now = now_micros()
        return {(row["job_id"], row["attempt"]) async for row in self._running_rows() if _expiry(row) >= now}

    async def _requeue_where(self, wanted: Callable[[dict[str, Any]], bool]) -> int:
        count = 0
        async for row in self._running_rows():
            if wanted(row) and await self._requeue(row):
                count += 1
        return count

    async def _requeue(self, row: dict[str, Any]) -> bool:
        """Back to the queue (redone from scratch), if the lease is still the one seen in ``row``: of two reapers
        (or a reaper and a renewal) only one write lands."""
        observed = {k: row.get(k) for k in ("state", "attempt", "lease_owner", "lease_expire")}
        if not await self._store.update(
            schema.JOBS,
            {"job_id": row["job_id"]},
            {"state": QUEUED, "percent": 0.0, "rung": "", "lease_owner": "", "lease_expire": 0},
            if_=observed,
        ):
            return False
        job = Job.from_row(row)
        await self._move(job, RUNNING, QUEUED)
        await self._enqueue(job)
        return True

    async def _running_rows(self) -> AsyncIterator[dict[str, Any]]:
        """The stored rows (as read: no defaults filled in) of the jobs in the RUNNING index still RUNNING."""
        after = None
        while True:
            page = await self._store.query(schema.JOB_INDEX, {"bucket": RUNNING}, limit=200, after=after)
            for entry in page.rows:
                row = await self._store.get(schema.JOBS, {"job_id": entry["job_id"]})
                if row is not None and row.get("state") == RUNNING:
                    yield dict(row)
            if page.next is None:
                return
            after = page.next

    async def cancel(self, job_id: str) -> Job:
        job = await self.get(job_id)
        if job.state in TERMINAL:
            raise FailedPrecondition(f"job encodingJobs/{job_id} already ended ({job.state})")
        if job.state == QUEUED and await self._store.update(
            schema.JOBS, {"job_id": job_id}, {"state": CANCELLED, "end_time": now_micros()}, if_={"state": QUEUED}
        ):
            await self._move(job, QUEUED, CANCELLED)
            return await self.get(job_id)
        # running: the scheduler sees the flag and stops the worker
        await self._store.update(schema.JOBS, {"job_id": job_id}, {"cancel_requested": True}, if_exists=True)
        return await self.get(job_id)

    async def list(self, state: str | None, limit: int, after: PagingState | None) -> tuple[list[Job], Page]:
        page = await self._store.query(schema.JOB_INDEX, {"bucket": state or "all"}, limit=limit, after=after)
        jobs = [j for j in [await self.find(e["job_id"]) for e in page.rows] if j is not None]
        return jobs, page


def _held(job: Job) -> dict[str, Any]:
    """The compare-and-set condition of a write by the holder of ``job``'s lease."""
    return {"state": RUNNING, "lease_owner": job.lease_owner, "attempt": job.attempt}


def _expiry(row: dict[str, Any]) -> int:
    """A row's lease expiry; a job RUNNING from before leases has none: expired."""
    return int(row.get("lease_expire") or 0)


def _micros(seconds: float) -> int:
    return int(seconds * 1_000_000)
