"""``create_server``: EncodingService with its job scheduler and worker processes."""

from __future__ import annotations

from marquee.v1 import encoding_pb2_grpc
from services.common.deps import Dependencies
from services.common.server import ServiceBinding, build_server
from services.common.service import Service
from services.encoder import schema
from services.encoder.config import EncoderConfig
from services.encoder.jobs import Jobs
from services.encoder.keys import ContentKeys, MasterKeys
from services.encoder.scheduler import Scheduler
from services.encoder.servicer import SERVICE_NAME, EncodingServicer


async def create_server(config: EncoderConfig, deps: Dependencies) -> Service:
    """Build the service (not started); its scheduler starts with it, and stopping it stops the workers (their
    jobs go back to the queue)."""
    await deps.store.migrate(schema.SCHEMA)
    origin = config.origin or deps.data_dir / "origin"
    jobs = Jobs(deps.store)
    protection = None
    if config.protection != "none":  # MasterKeys refuses (ConfigError) a platform without [content_keys]
        protection = (config.protection, ContentKeys(deps.store, MasterKeys(deps.content_keys)))
    scheduler = Scheduler(
        jobs,
        deps.bus,
        origin,
        workers=config.workers,
        preset=config.preset,
        threads=config.threads,
        protection=protection,
    )
    servicer = EncodingServicer(jobs, scheduler, deps.page_tokens, config.max_source_uri)
    binding = ServiceBinding(
        name=SERVICE_NAME,
        add_to_server=lambda server: encoding_pb2_grpc.add_EncodingServiceServicer_to_server(servicer, server),
    )
    server, port = build_server(config.server, [binding], tokens=deps.tokens, denylist=deps.denylist)
    return Service("encoder", grpc=server, grpc_port=port, on_start=[scheduler.start], cleanups=[scheduler.stop])
