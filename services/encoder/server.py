"""``create_server``: EncodingService with its job scheduler and worker processes, and ContentKeyService (the
licence service's read of content keys) on the same server."""

from __future__ import annotations

from marquee.v1 import content_keys_pb2_grpc, encoding_pb2_grpc
from services.common.deps import Dependencies
from services.common.server import ServiceBinding, build_server
from services.common.service import Service
from services.encoder import schema
from services.encoder.config import EncoderConfig
from services.encoder.jobs import Jobs
from services.encoder.keys import ContentKeys, MasterKeys
from services.encoder.keyservice import SERVICE_NAME as KEYS_SERVICE_NAME
from services.encoder.keyservice import ContentKeyServicer
from services.encoder.scheduler import Scheduler
from services.encoder.servicer import SERVICE_NAME, EncodingServicer


async def create_server(config: EncoderConfig, deps: Dependencies) -> Service:
    """Build the service (not started); its scheduler starts with it, and stopping it stops the workers (their
    jobs go back to the queue at once; another replica's are left to it)."""
    await deps.store.migrate(schema.SCHEMA)
    origin = config.origin or deps.data_dir / "origin"
    jobs = Jobs(deps.store)
    protection = None
    content_keys = None
    if config.protection != "none" or deps.content_keys.keys:
        # MasterKeys refuses (ConfigError) a protecting encoder without [content_keys]
        content_keys = ContentKeys(deps.store, MasterKeys(deps.content_keys))
    if config.protection != "none" and content_keys is not None:
        protection = (config.protection, content_keys)
    scheduler = Scheduler(
        jobs,
        deps.bus,
        origin,
        workers=config.workers,
        preset=config.preset,
        threads=config.threads,
        protection=protection,
        hls_aes128=config.hls_aes128,
        lease_seconds=config.lease_seconds,
    )
    servicer = EncodingServicer(jobs, scheduler, deps.page_tokens, config.max_source_uri)
    binding = ServiceBinding(
        name=SERVICE_NAME,
        add_to_server=lambda server: encoding_pb2_grpc.add_EncodingServiceServicer_to_server(servicer, server),
    )
    key_servicer = ContentKeyServicer(content_keys)
    keys_binding = ServiceBinding(
        name=KEYS_SERVICE_NAME,
        add_to_server=lambda server: content_keys_pb2_grpc.add_ContentKeyServiceServicer_to_server(
            key_servicer, server
        ),
    )
    server, port = build_server(config.server, [binding, keys_binding], tokens=deps.tokens, denylist=deps.denylist)
    return Service("encoder", grpc=server, grpc_port=port, on_start=[scheduler.start], cleanups=[scheduler.stop])
