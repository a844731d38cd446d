"""`marquee ingest FILE --title ID`: submit a master to a running platform and follow it with a progress bar.

`marquee keys rewrap`: wrap every stored content key with the current master key ([content_keys] wrapping_kid),
the step of a master key rotation between adding the new key and removing the old one (docs/drm.md)."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
from pathlib import Path
from typing import Any, cast

import grpc

from marquee.v1 import encoding_pb2, encoding_pb2_grpc
from services.common.store.port import Scannable
from services.encoder import schema
from services.encoder.config import EncoderConfig
from services.encoder.keys import ContentKeys, KeyUnavailable, MasterKeys
from services.platform.admin import admin_metadata
from services.platform.cli import platform_config
from services.platform.runtime import local_config, platform_store

BAR = 30


def _bar(job: encoding_pb2.EncodingJob) -> str:
    done = int(BAR * job.progress.percent / 100)
    state = encoding_pb2.EncodingJobState.Name(job.state).removeprefix("ENCODING_JOB_STATE_").lower()
    speed = f" {job.progress.speed:.1f}x" if job.progress.speed else ""
    return f"\r[{'#' * done}{'.' * (BAR - done)}] {job.progress.percent:5.1f}% {state} {job.progress.rung}{speed}   "


def _cmd(args: argparse.Namespace) -> int:
    source = Path(args.file).resolve()
    if not source.is_file():
        print(f"marquee ingest: {source} is not a file", file=sys.stderr)
        return 2
    stat = source.stat()
    return asyncio.run(_ingest(args, source, f"{source}|{stat.st_size}|{stat.st_mtime_ns}|{args.title}"))


async def _ingest(args: argparse.Namespace, source: Path, identity: str) -> int:
    config = platform_config(args)
    enc = config.service("encoder", EncoderConfig)
    address = args.address or f"{enc.server.host}:{enc.server.port or 50056}"
    request_id = "ingest-" + hashlib.sha256(identity.encode()).hexdigest()[:24]
    md = admin_metadata(config)
    async with grpc.aio.insecure_channel(address) as channel:
        stub: Any = encoding_pb2_grpc.EncodingServiceStub(channel)
        try:
            created = await stub.CreateEncodingJob(
                encoding_pb2.CreateEncodingJobRequest(
                    job=encoding_pb2.EncodingJob(
                        title=f"titles/{args.title}", source_uri=str(source), priority=args.priority
                    ),
                    request_id=request_id,
                ),
                metadata=md,
                timeout=10,
            )
        except grpc.aio.AioRpcError as err:
            hint = " (is `marquee up` running?)" if err.code() == grpc.StatusCode.UNAVAILABLE else ""
            print(f"marquee ingest: {err.details()}{hint}", file=sys.stderr)
            return 1
        job = created.job
        print(f"{job.name} for {job.title}", file=sys.stderr)
        if args.no_wait:
            print(job.name)
            return 0
        async for update in stub.WatchEncodingJob(encoding_pb2.WatchEncodingJobRequest(name=job.name), metadata=md):
            job = update.job
            sys.stderr.write(_bar(job))
            sys.stderr.flush()
        sys.stderr.write("\n")
    if job.state == encoding_pb2.ENCODING_JOB_STATE_SUCCEEDED:
        print(f"{job.title} is playable")
        return 0
    print(
        f"marquee ingest: job ended {encoding_pb2.EncodingJobState.Name(job.state)}: {job.error.message}",
        file=sys.stderr,
    )
    return 1


def _cmd_rewrap(args: argparse.Namespace) -> int:
    platform = local_config(platform_config(args))

    async def go() -> tuple[int, int]:
        store = platform_store(platform)
        try:
            await store.migrate(schema.SCHEMA)
            keys = ContentKeys(store, MasterKeys(platform.content_keys))
            return await keys.rewrap(cast(Scannable, store))  # both adapters scan (maintenance only)
        finally:
            await store.close()

    try:
        rewrapped, current = asyncio.run(go())
    except KeyUnavailable as err:
        print(f"marquee keys rewrap: {err}", file=sys.stderr)
        return 1
    wrapping = platform.content_keys.wrapping_kid
    print(f"{rewrapped} content key(s) rewrapped with master key {wrapping!r}, {current} already were")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("ingest", help="encode a master file into a playable title")
    p.add_argument("file", help="the master file (any format FFmpeg reads)")
    p.add_argument("--title", required=True, help="title id, e.g. my-movie")
    p.add_argument("--priority", type=int, default=0, help="higher runs first (new releases)")
    p.add_argument("--address", default=None, help="EncodingService address (default: from the config)")
    p.add_argument("--no-wait", action="store_true", help="print the job name and return at once")
    p.set_defaults(func=_cmd)

    keys = sub.add_parser("keys", help="content keys of protected titles")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    rewrap = keys_sub.add_parser("rewrap", help="wrap every stored content key with the current master key")
    rewrap.set_defaults(func=_cmd_rewrap)
