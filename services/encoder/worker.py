"""The worker process: runs one encode, reporting progress and the outcome through a queue.

Runs in a spawned child process (never forked from the gRPC server), so a crash or a kill of one encode never
takes the service down, and cancellation is an Event the child checks between frames.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.encoder.media.errors import EncodeCancelled, MediaError
from services.encoder.media.ladder import Rung
from services.encoder.media.pipeline import encode_title
from services.encoder.media.protect import Protection
from services.encoder.media.transcode import Progress


@dataclass(frozen=True)
class WorkOrder:
    job_id: str
    title_id: str
    source: str
    origin: str
    ladder: tuple[Rung, ...] | None
    preset: str
    threads: int
    # the title's content keys, unwrapped by the scheduler, handed over the spawn pipe (never written to disk)
    protection: Protection | None = None
    # the staging directory under {origin}/.staging/: {job_id}.{attempt} (services/encoder/staging.py)
    staging_name: str | None = None


def run(order: WorkOrder, messages: Any, cancel: Any) -> None:
    """Child process entry point. Messages: ("progress", percent, phase, speed), ("done", summary),
    ("failed", reason, message), ("cancelled",)."""

    def report(p: Progress) -> None:
        messages.put(("progress", p.percent, p.phase, p.speed))

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

    try:
        kwargs: dict[str, Any] = {}
        if order.ladder:
            kwargs["ladder"] = order.ladder
        done = encode_title(
            Path(order.source),
            order.title_id,
            Path(order.origin),
            preset=order.preset,
            threads=order.threads,
            on_progress=report,
            should_cancel=cancel.is_set,
            protection=order.protection,
            staging_name=order.staging_name,
            **kwargs,
        )
        desc = done.description
        messages.put(
            (
                "done",
                {
                    "heights": [v["height"] for v in desc["video"]],
                    "duration": desc["duration"],
                    "media_path": f"{order.title_id}/media.json",
                },
            )
        )
    except EncodeCancelled:
        messages.put(("cancelled",))
    except MediaError as exc:
        messages.put(("failed", exc.reason, str(exc)))
    except Exception as exc:  # any other failure is reported, never lost with the process
        messages.put(("failed", "SOURCE_INVALID", f"encoder error: {exc}"))
        traceback.print_exc()


def context() -> Any:
    return multiprocessing.get_context("spawn")


@contextlib.contextmanager
def sigint_blocked() -> Iterator[None]:
    """Start worker processes inside this: Ctrl-C in a terminal signals the whole process group, and the parent
    stops encodes itself (the cancel event, then the job goes back to the queue), so a worker must not die of the
    same SIGINT and fail its job. A spawned child inherits the blocked mask through exec (so a Ctrl-C during its
    start-up cannot interrupt it), then ignores SIGINT in :func:`run`; a SIGINT meanwhile waits for the parent."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
