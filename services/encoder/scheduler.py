"""Runs queued jobs on up to ``workers`` child processes, highest priority first, and records their outcome."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import shutil
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
from services.encoder.media.pipeline import STAGING
from services.encoder.media.protect import Protection

log = logging.getLogger("marquee.encoder")

POLL_SECONDS = 0.5
PROGRESS_EVERY = 1.0


@dataclass
class _Running:
    job: Job
    process: Any
    messages: Any
    cancel: Any


def source_path(uri: str) -> str:
    return uri.removeprefix("file://")


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
        protection: tuple[str, ContentKeys] | None = None,
        hls_aes128: bool = True,
    ) -> None:
        """``protection``: (scheme, the content key table) to encrypt every title packaged (None: clear), with the
        HLS AES-128 variant too unless ``hls_aes128`` is off."""
        self._jobs = jobs
        self._protection = protection
        self._hls_aes128 = hls_aes128
        self._bus = bus
        self._origin = origin
        self._workers = workers
        self._preset = preset
        self._threads = threads
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running: dict[str, asyncio.Task[None]] = {}
        self._stopping = False

    async def start(self) -> None:
        """Clean staging leftovers of dead workers, requeue their jobs, and start dispatching."""
        shutil.rmtree(self._origin / STAGING, ignore_errors=True)
        self._origin.mkdir(parents=True, exist_ok=True)
        requeued = await self._jobs.requeue_running()
        if requeued:
            log.info("requeued %d job(s) left running by a previous process", requeued)
        self._task = asyncio.create_task(self._dispatch())

    def wake(self) -> None:
        self._wake.set()

    async def _dispatch(self) -> None:
        while not self._stopping:
            while len(self._running) < self._workers and not self._stopping:
                job = await self._jobs.claim()
                if job is None:
                    break
                self._running[job.job_id] = asyncio.create_task(self._run(job))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)

    async def _protection_for(self, title_id: str) -> Protection | None:
        if self._protection is None:
            return None
        scheme, keys = self._protection
        return Protection(scheme, as_encryptor_keys(await keys.get_or_create(title_id)), self._hls_aes128)

    async def _run(self, job: Job) -> None:
        try:
            protection = await self._protection_for(job.title_id)
        except KeyUnavailable as exc:
            self._running.pop(job.job_id, None)
            self.wake()
            await self._jobs.finish(job, FAILED, reason="CONTENT_KEY_UNAVAILABLE", message=str(exc))
            log.error("job %s failed: the content keys of title %s: %s", job.job_id, job.title_id, exc)
            return
        except BaseException:
            self._running.pop(job.job_id, None)
            self.wake()
            raise
        ctx = worker.context()
        messages = ctx.Queue()
        cancel = ctx.Event()
        ladder = tuple(Rung(r["name"], r["height"], r["video_bitrate"]) for r in job.ladder) or None
        order = worker.WorkOrder(
            job.job_id,
            job.title_id,
            source_path(job.source_uri),
            str(self._origin),
            ladder,
            self._preset,
            self._threads,
            protection,
        )
        process = ctx.Process(
            target=worker.run, args=(order, messages, cancel), name=f"encode-{job.job_id}", daemon=True
        )
        with worker.sigint_blocked():
            process.start()
        log.info("job %s started (title %s, attempt %d)", job.job_id, job.title_id, job.attempt)
        outcome: tuple[Any, ...] | None = None
        last_progress = 0.0
        loop = asyncio.get_running_loop()
        try:
            while outcome is None:
                try:
                    msg = await asyncio.to_thread(messages.get, True, POLL_SECONDS)
                except queue.Empty:
                    msg = None
                if msg is not None and msg[0] == "progress":
                    now = loop.time()
                    if now - last_progress >= PROGRESS_EVERY:
                        last_progress = now
                        await self._jobs.progress(job.job_id, round(msg[1], 2), msg[2], round(msg[3], 3))
                elif msg is not None:
                    outcome = msg
                elif not process.is_alive():
                    outcome = ("failed", "SOURCE_INVALID", f"the encoder process exited with code {process.exitcode}")
                current = await self._jobs.find(job.job_id)
                if current is not None and current.cancel_requested and not cancel.is_set():
                    cancel.set()
        except asyncio.CancelledError:
            cancel.set()
            await asyncio.to_thread(process.join, 10)
            if process.is_alive():
                process.kill()
            raise
        finally:
            self._running.pop(job.job_id, None)
            self.wake()
        await asyncio.to_thread(process.join, 10)
        await self._record(job, outcome)

    async def _record(self, job: Job, outcome: tuple[Any, ...]) -> None:
        kind = outcome[0]
        if kind == "done":
            summary = outcome[1]
            await self._jobs.finish(job, SUCCEEDED)
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
            log.info("job %s succeeded: title %s is playable", job.job_id, job.title_id)
        elif kind == "cancelled":
            await self._jobs.finish(job, CANCELLED)
        else:
            await self._jobs.finish(job, FAILED, reason=outcome[1], message=outcome[2])
            log.warning("job %s failed: %s", job.job_id, outcome[2])

    async def stop(self) -> None:
        """Stop dispatching; running encodes are stopped and their jobs go back to the queue."""
        self._stopping = True
        self.wake()
        if self._task is not None:
            await cancel_all([self._task])
        tasks = list(self._running.values())  # each stops its ffmpeg on cancel (that clean-up may take seconds)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await self._jobs.requeue_running()


__all__ = ["RUNNING", "Scheduler"]
