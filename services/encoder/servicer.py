"""EncodingService over gRPC (admin only)."""

from __future__ import annotations

import asyncio
import re
from pathlib import PurePosixPath
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from marquee.v1 import encoding_pb2, encoding_pb2_grpc
from services.common.auth import require_admin
from services.common.errors import InvalidArgument
from services.common.names import NamePattern
from services.common.paging import PageTokens, page_size, query_fingerprint
from services.encoder.jobs import STATES, TERMINAL, Job, Jobs
from services.encoder.scheduler import Scheduler

JOB = NamePattern("encodingJobs/{job}")
TITLE = NamePattern("titles/{title}")
SERVICE_NAME = encoding_pb2.DESCRIPTOR.services_by_name["EncodingService"].full_name
_STATE_ENUM = {name: encoding_pb2.EncodingJobState.Value(f"ENCODING_JOB_STATE_{name}") for name in STATES}
_RUNG_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
MAX_PRIORITY = 1000
WATCH_POLL = 0.25


def _ts(micros: int) -> timestamp_pb2.Timestamp | None:
    if not micros:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromMicroseconds(micros)
    return ts


def job_pb(job: Job) -> encoding_pb2.EncodingJob:
    msg = encoding_pb2.EncodingJob(
        name=JOB.format(job=job.job_id),
        title=TITLE.format(title=job.title_id),
        source_uri=job.source_uri,
        priority=job.priority,
        ladder=[
            encoding_pb2.Rung(name=r["name"], height=r["height"], video_bitrate=r["video_bitrate"]) for r in job.ladder
        ],
        state=_STATE_ENUM[job.state],
        progress=encoding_pb2.EncodingProgress(percent=job.percent, rung=job.rung, speed=job.speed),
        attempt=job.attempt,
    )
    if job.error_reason or job.error_message:
        msg.error.CopyFrom(encoding_pb2.EncodingError(reason=job.error_reason, message=job.error_message))
    for field, value in (("create_time", job.create_time), ("start_time", job.start_time), ("end_time", job.end_time)):
        ts = _ts(value)
        if ts is not None:
            getattr(msg, field).CopyFrom(ts)
    return msg


def check_source_uri(uri: str, limit: int) -> str:
    if not uri:
        raise InvalidArgument("job.source_uri is required", field_name="job.source_uri")
    if len(uri) > limit:
        raise InvalidArgument(f"job.source_uri is longer than {limit} characters", field_name="job.source_uri")
    path = uri.removeprefix("file://")
    if "://" in path or not PurePosixPath(path).is_absolute():
        raise InvalidArgument("job.source_uri must be an absolute path or a file:// URI", field_name="job.source_uri")
    return uri


class EncodingServicer(encoding_pb2_grpc.EncodingServiceServicer):
    def __init__(self, jobs: Jobs, scheduler: Scheduler, page_tokens: PageTokens, max_source_uri: int) -> None:
        self._jobs = jobs
        self._scheduler = scheduler
        self._pages = page_tokens
        self._max_uri = max_source_uri

    async def CreateEncodingJob(
        self, request: encoding_pb2.CreateEncodingJobRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> encoding_pb2.CreateEncodingJobResponse:
        require_admin()
        title_id = TITLE.parse(request.job.title, "job.title")["title"]
        source = check_source_uri(request.job.source_uri, self._max_uri)
        if not -MAX_PRIORITY <= request.job.priority <= MAX_PRIORITY:
            raise InvalidArgument(f"job.priority must be within ±{MAX_PRIORITY}", field_name="job.priority")
        if len(request.request_id) > 64:
            raise InvalidArgument("request_id is longer than 64 characters", field_name="request_id")
        ladder = []
        for i, r in enumerate(request.job.ladder):
            if (
                not _RUNG_NAME.match(r.name)
                or not 16 <= r.height <= 4320
                or not 50_000 <= r.video_bitrate <= 200_000_000
            ):
                raise InvalidArgument(
                    f"job.ladder[{i}]: each rung needs a name ([A-Za-z0-9_-]{{1,32}}), a height of 16..4320"
                    " and a bitrate of 50 kbit/s..200 Mbit/s",
                    field_name=f"job.ladder[{i}]",
                )
            ladder.append({"name": r.name, "height": r.height, "video_bitrate": r.video_bitrate})
        job = await self._jobs.submit(title_id, source, request.job.priority, ladder, request.request_id)
        self._scheduler.wake()
        return encoding_pb2.CreateEncodingJobResponse(job=job_pb(job))

    async def GetEncodingJob(
        self, request: encoding_pb2.GetEncodingJobRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> encoding_pb2.GetEncodingJobResponse:
        require_admin()
        job = await self._jobs.get(JOB.parse(request.name)["job"])
        return encoding_pb2.GetEncodingJobResponse(job=job_pb(job))

    async def ListEncodingJobs(
        self, request: encoding_pb2.ListEncodingJobsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> encoding_pb2.ListEncodingJobsResponse:
        require_admin()
        state = None
        if request.state:
            names = {v: k for k, v in _STATE_ENUM.items()}
            if request.state not in names:
                raise InvalidArgument(f"state {request.state} is not an EncodingJobState", field_name="state")
            state = names[request.state]
        size = page_size(request.page_size)
        fingerprint = query_fingerprint({"state": state})
        after = self._pages.decode(request.page_token, fingerprint)
        jobs, page = await self._jobs.list(state, size, after)
        return encoding_pb2.ListEncodingJobsResponse(
            jobs=[job_pb(j) for j in jobs], next_page_token=self._pages.encode(page.next, fingerprint)
        )

    async def CancelEncodingJob(
        self, request: encoding_pb2.CancelEncodingJobRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> encoding_pb2.CancelEncodingJobResponse:
        require_admin()
        job = await self._jobs.cancel(JOB.parse(request.name)["job"])
        return encoding_pb2.CancelEncodingJobResponse(job=job_pb(job))

    async def WatchEncodingJob(
        self, request: encoding_pb2.WatchEncodingJobRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Any:
        require_admin()
        job_id = JOB.parse(request.name)["job"]
        last: encoding_pb2.EncodingJob | None = None
        while True:
            job = await self._jobs.get(job_id)
            msg = job_pb(job)
            if msg != last:
                yield encoding_pb2.WatchEncodingJobResponse(job=msg)
                last = msg
            if job.state in TERMINAL:
                return
            await asyncio.sleep(WATCH_POLL)
