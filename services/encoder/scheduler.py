"""Runs queued jobs on up to ``workers`` child processes, highest priority first, and records their outcome.

Any number of schedulers (encoder replicas) share the store and the origin. Each is one instance (``owner``)
that leases the jobs it claims and renews those leases every ``lease_seconds / 3`` while their encodes run; an
encode whose renewal fails (its job was taken back) is stopped and records nothing. Every scheduler reaps every
``lease_seconds / 2``: jobs whose lease expired (their scheduler died) go back to the queue, and staging
directories no live attempt owns are removed. A graceful stop requeues the stopping scheduler's own jobs at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import timestamp_pb2

from marquee.v1 import encoding_pb2
from services.common.bus.port import EventBus
from services.common.tasks import cancel_all
from services.common.topics import ENCODING_DONE
from services.encoder import worker
from services.encoder.jobs import CANCELLED, FAILED, RUNNING, SUCCEEDED, Job, Jobs
from services.encoder.keys import ContentKeys, KeyUnavailable, as_encryptor_keys
from services.encoder.media.ladder import Rung
from services.encoder.media.protect import Protection
from services.encoder.staging import staging_name, sweep_staging

log = logging.getLogger("marquee.encoder")

POLL_SECONDS = 0.5
PROGRESS_EVERY = 1.0
WORKER_EXIT_SECONDS = 10.0


@dataclass
class _Active:
    """A job this scheduler claimed: its lease, its task, and its worker's cancel event once started."""

    job: Job
    task: asyncio.Task[None] | None = None
    cancel: Any = None
    lost: bool = False


def source_path(uri: str) -> str:
    return uri.removeprefix("file://")


def new_owner() -> str:
    """A scheduler instance id: the host (a pod's name) and a random part (a restart is a new owner)."""
    return f"{socket.gethostname()}-{secrets.token_hex(4)}"


class Scheduler:
    def __init__(
        self,
        jobs: Jobs,
        bus: EventBus,
        origin: Path,
        *,
        workers: int,
        preset: str,
        threads: int,
        lease_seconds: float,
        protection: tuple[str, ContentKeys] | None = None,
        hls_aes128: bool = True,
        owner: str | None = None,
    ) -> None:
        """``protection``: (scheme, the content key table) to encrypt every title packaged (None: clear), with the
        HLS AES-128 variant too unless ``hls_aes128`` is off. ``owner``: this instance's id (default
        :func:`new_owner`)."""
        self._jobs = jobs
        self._protection = protection
        self._hls_aes128 = hls_aes128
        self._bus = bus
        self._origin = origin
        self._workers = workers
        self._preset = preset
        self._threads = threads
        self._lease_seconds = lease_seconds
        self.owner = owner or new_owner()
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._running: dict[str, _Active] = {}
        self._stopping = False

    async def start(self) -> None:
        """Requeue the jobs of dead encoders and remove their staging, then dispatch, renew and reap."""
        log.info("encoder scheduler %s starting (job leases of %gs)", self.owner, self._lease_seconds)
        self._origin.mkdir(parents=True, exist_ok=True)
        await self._reap()
        self._dispatcher = asyncio.create_task(self._dispatch())
        self._renewer = asyncio.create_task(self._every(self._lease_seconds / 3, self._renew_leases, "lease renewal"))
        self._reaper = asyncio.create_task(self._every(self._lease_seconds / 2, self._reap, "reaping"))

    def wake(self) -> None:
        self._wake.set()

    async def _dispatch(self) -> None:
        while not self._stopping:
            while len(self._running) < self._workers and not self._stopping:
                job = await self._jobs.claim(self.owner, self._lease_seconds)
                if job is None:
                    break
                active = self._running[job.job_id] = _Active(job)
                active.task = asyncio.create_task(self._run(active))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)

    @staticmethod
    async def _every(seconds: float, action: Callable[[], Awaitable[None]], what: str) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await action()
            except Exception:  # the store may be briefly unreachable: try again next period
                log.exception("encoder %s failed", what)

    async def _renew_leases(self) -> None:
        for active in list(self._running.values()):
            if not active.lost and not await self._jobs.renew(active.job, self._lease_seconds):
                self._lose(active)

    def _lose(self, active: _Active) -> None:
        """The job was taken back (reaped after a missed renewal): stop its encode, record nothing."""
        if self._running.get(active.job.job_id) is not active:
            return  # its outcome is being recorded: the lease ended with it
        active.lost = True
        if active.cancel is not None:
            active.cancel.set()
        log.warning(
            "job %s (attempt %d): lease lost by %s; stopping its encode, recording nothing",
            active.job.job_id,
            active.job.attempt,
            self.owner,
        )

    async def _reap(self) -> None:
        requeued = await self._jobs.reap_expired()
        if requeued:
            log.info("requeued %d job(s) whose encoder stopped renewing its lease", requeued)
            self.wake()
        await sweep_staging(self._origin, self._jobs.live_attempts)

    async def _protection_for(self, title_id: str) -> Protection | None:
        if self._protection is None:
            return None
        scheme, keys = self._protection
        return Protection(scheme, as_encryptor_keys(await keys.get_or_create(title_id)), self._hls_aes128)

    async def _run(self, active: _Active) -> None:
        job = active.job
        try:
            protection = await self._protection_for(job.title_id)
        except KeyUnavailable as exc:
            self._release_slot(job)
            if await self._jobs.finish(job, FAILED, reason="CONTENT_KEY_UNAVAILABLE", message=str(exc)):
                log.error("job %s failed: the content keys of title %s: %s", job.job_id, job.title_id, exc)
            return
        except BaseException:
            self._release_slot(job)
            raise
        if active.lost:  # taken back while its keys were read
            self._release_slot(job)
            return
        ctx = worker.context()
        messages = ctx.Queue()
        active.cancel = ctx.Event()
        process = ctx.Process(
            target=worker.run,
            args=(self._order(job, protection), messages, active.cancel),
            name=f"encode-{job.job_id}",
            daemon=True,
        )
        with worker.sigint_blocked():
            process.start()
        log.info("job %s started (title %s, attempt %d, owner %s)", job.job_id, job.title_id, job.attempt, self.owner)
        try:  # the lease is renewed until the worker has exited
            outcome = await self._follow(active, process, messages)
            await self._join_worker(process)
        except asyncio.CancelledError:
            active.cancel.set()
            await self._join_worker(process)
            raise
        finally:
            self._release_slot(job)
        if active.lost or outcome is None:
            return
        await self._record(job, outcome)

    def _order(self, job: Job, protection: Protection | None) -> worker.WorkOrder:
        ladder = tuple(Rung(r["name"], r["height"], r["video_bitrate"]) for r in job.ladder) or None
        return worker.WorkOrder(
            job.job_id,
            job.title_id,
            source_path(job.source_uri),
            str(self._origin),
            ladder,
            self._preset,
            self._threads,
            protection,
            staging_name=staging_name(job.job_id, job.attempt),
        )

    async def _follow(self, active: _Active, process: Any, messages: Any) -> tuple[Any, ...] | None:
        """The worker's outcome, writing its progress and passing on a cancel request; None if the lease is lost
        first (the cancel event is set then: the worker stops)."""
        job = active.job
        last_progress = 0.0
        loop = asyncio.get_running_loop()
        while not active.lost:
            msg: tuple[Any, ...] | None
            try:
                msg = await asyncio.to_thread(messages.get, True, POLL_SECONDS)
            except queue.Empty:
                msg = None
            if msg is not None and msg[0] == "progress":
                now = loop.time()
                if now - last_progress >= PROGRESS_EVERY:
                    last_progress = now
                    await self._jobs.progress(job, round(msg[1], 2), msg[2], round(msg[3], 3))
            elif msg is not None:
                return msg
            elif not process.is_alive():
                return ("failed", "SOURCE_INVALID", f"the encoder process exited with code {process.exitcode}")
            current = await self._jobs.find(job.job_id)
            if current is not None and current.cancel_requested and not active.cancel.is_set():
                active.cancel.set()
        return None

    @staticmethod
    async def _join_worker(process: Any) -> None:
        """Wait for the worker to exit (it stops between frames once cancelled), killing it if it does not."""
        await asyncio.to_thread(process.join, WORKER_EXIT_SECONDS)
        if process.is_alive():
            process.kill()
            await asyncio.to_thread(process.join, WORKER_EXIT_SECONDS)

    def _release_slot(self, job: Job) -> None:
        self._running.pop(job.job_id, None)
        self.wake()

    async def _record(self, job: Job, outcome: tuple[Any, ...]) -> None:
        kind = outcome[0]
        state = {"done": SUCCEEDED, "cancelled": CANCELLED}.get(kind, FAILED)
        reason, message = (outcome[1], outcome[2]) if state == FAILED else ("", "")
        if not await self._jobs.finish(job, state, reason=reason, message=message):
            log.warning(
                "job %s (attempt %d): lease lost before its outcome (%s) was recorded", job.job_id, job.attempt, kind
            )
            return
        if state == SUCCEEDED:
            await self._announce(job, outcome[1])
            log.info("job %s succeeded: title %s is playable", job.job_id, job.title_id)
        elif state == FAILED:
            log.warning("job %s failed: %s", job.job_id, message)

    async def _announce(self, job: Job, summary: dict[str, Any]) -> None:
        done_time = timestamp_pb2.Timestamp()
        done_time.GetCurrentTime()
        event = encoding_pb2.EncodingDoneEvent(
            job=f"encodingJobs/{job.job_id}",
            title=f"titles/{job.title_id}",
            media_path=summary["media_path"],
            heights=summary["heights"],
            duration_seconds=summary["duration"],
            done_time=done_time,
        )
        await self._bus.publish(ENCODING_DONE, event.SerializeToString(), key=job.title_id)

    async def stop(self) -> None:
        """Stop dispatching and reaping; running encodes are stopped and this scheduler's jobs go back to the
        queue at once (another replica need not wait for their leases to expire)."""
        self._stopping = True
        self.wake()
        await cancel_all([t for t in (self._dispatcher, self._reaper) if t is not None])
        tasks = [a.task for a in self._running.values() if a.task is not None]
        for t in tasks:  # each stops its worker on cancel (that clean-up may take seconds): leases still renewed
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if self._renewer is not None:
            await cancel_all([self._renewer])
        released = await self._jobs.release(self.owner)
        if released:
            log.info("requeued %d job(s) of stopping encoder %s", released, self.owner)


__all__ = ["RUNNING", "Scheduler"]
