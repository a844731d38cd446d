"""``create_server``: RecommendationService, the signal consumers, the model (re)loader and the training loop."""

from __future__ import annotations

import asyncio
import logging
import os

import grpc

from marquee.v1 import catalog_pb2, recommendations_pb2_grpc
from ml.artifact import Artifact
from services.common.bus.consume import follow_topic
from services.common.deps import Dependencies
from services.common.ids import new_id
from services.common.server import ServiceBinding, build_server
from services.common.service import Service
from services.common.store.port import Store
from services.common.topics import CATALOG_TITLE
from services.recommendations.config import RecommendationsConfig
from services.recommendations.events import EventTokens
from services.recommendations.model import ServingModel
from services.recommendations.schema import ARTIFACTS, CURRENT, MODELS, SCHEMA
from services.recommendations.servicer import SERVICE_NAME, TITLE, RecommendationServicer
from services.recommendations.signals import Signals, follow
from services.recommendations.titles import CatalogTitles, item_of
from services.recommendations.training import train

log = logging.getLogger("marquee.recommendations")
RELOAD_INTERVAL = 15.0
CATALOG_RETRY = 10.0  # seconds before training again when the catalog could not be reached
NOT_FOUND_RETRIES, NOT_FOUND_DELAY = 3, 0.5  # an announced title another catalog replica has not applied yet


class Models:
    """The current serving model, reloaded from the store when another run (or replica) trained a new one."""

    def __init__(self, store: Store, titles: CatalogTitles) -> None:
        self._store = store
        self._titles = titles
        self.model: ServingModel | None = None
        self.trained_time = 0
        self.ready = asyncio.Event()

    async def reload(self) -> bool:
        row = await self._store.get(MODELS, {"name": CURRENT})
        if row is None:
            return False
        if self.model is not None and row["version"] == self.model.version and row["trained_time"] == self.trained_time:
            return False
        stored = await self._store.get(ARTIFACTS, {"version": row["version"]})
        if stored is None:  # replaced by a newer run between the two reads: the next poll sees that one
            return False
        artifact = await asyncio.to_thread(Artifact.from_bytes, stored["artifact"])
        self.model = ServingModel(artifact)
        self.trained_time = row["trained_time"]
        self.ready.set()
        log.info("recommendations: serving model %s (%d titles)", artifact.version, len(artifact.items))
        return True

    async def add_title(self, title_id: str) -> None:
        """A title the catalog announced joins the model from its features (fetched with GetTitle). A catalog
        replica other than the one that wrote it may not have applied the announcement yet, so NOT_FOUND is asked
        again a few times before the title counts as deleted meanwhile (its deletion is announced too)."""
        if self.model is None or title_id in self.model.index:
            return
        title = await self._titles.get(title_id)
        for _ in range(NOT_FOUND_RETRIES):
            if title is not None:
                break
            await asyncio.sleep(NOT_FOUND_DELAY)
            title = await self._titles.get(title_id)
        if title is not None and self.model is not None and self.model.add_title(item_of(title)):
            log.info("recommendations: titles/%s joined the model from its features", title_id)


async def _training_loop(config: RecommendationsConfig, store: Store, titles: CatalogTitles, models: Models) -> None:
    training = config.training
    if not training.at_start:
        if training.interval <= 0:
            return
        await asyncio.sleep(training.interval)
    while True:
        try:
            if await train(store, titles, training) is not None:
                await models.reload()
        except grpc.aio.AioRpcError as err:
            if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                log.warning("recommendations: the catalog is unreachable (%s); training in %.0f s", err.details(),
                            CATALOG_RETRY)  # fmt: skip
                await asyncio.sleep(CATALOG_RETRY)
                continue
            log.exception("recommendations: training failed; serving the previous model")
        except Exception:
            log.exception("recommendations: training failed; serving the previous model")
        if training.interval <= 0:
            return
        await asyncio.sleep(training.interval)


async def _reload_loop(models: Models) -> None:
    while True:
        await asyncio.sleep(RELOAD_INTERVAL)
        try:
            await models.reload()
        except Exception:
            log.exception("recommendations: could not reload the model")


def event_tokens(config: RecommendationsConfig, deps: Dependencies) -> EventTokens:
    """Row event tokens signed under keys derived from the access-token keys (``[auth] keys``, which every replica
    shares and rotates), or, with none configured, a key of this process's own (its tokens verify only here)."""
    keys = {kid: secret.get_secret_value().encode() for kid, secret in deps.auth.keys.items()}
    kid = deps.auth.signing_kid
    if not keys:
        keys, kid = {"process": os.urandom(32)}, "process"
    return EventTokens(keys, kid, config.event_token_ttl)


class RecommendationsService(Service):
    """The recommendations service, with its models (tests look into them)."""

    models: Models


async def create_server(config: RecommendationsConfig, deps: Dependencies) -> RecommendationsService:
    """Build the service (not started) with the stored model loaded and a channel to the catalog (at
    ``deps.addresses``) open; the signal consumers, the model reloader and the training loop run once it starts."""
    await deps.store.migrate(SCHEMA)
    titles = CatalogTitles.connect(deps.address("catalog"), deps.tokens)
    try:
        models = Models(deps.store, titles)
        await models.reload()
    except BaseException:
        await titles.close()
        raise

    async def title_changed(event: catalog_pb2.TitleChangedEvent) -> None:
        if not event.deleted:
            await models.add_title(TITLE.parse(event.title, "title")["title"])

    async def follow_titles() -> None:
        group = f"recommendations-{new_id()}"
        await follow_topic(
            deps.bus, CATALOG_TITLE, group, "titles", catalog_pb2.TitleChangedEvent, title_changed, per_process=True
        )

    servicer = RecommendationServicer(
        config,
        deps.store,
        lambda: models.model,
        lambda: models.trained_time,
        deps.page_tokens,
        deps.geo,
        event_tokens(config, deps),
    )
    binding = ServiceBinding(
        name=SERVICE_NAME,
        add_to_server=lambda server: recommendations_pb2_grpc.add_RecommendationServiceServicer_to_server(
            servicer, server
        ),
    )
    try:
        server, port = build_server(config.server, [binding], tokens=deps.tokens, denylist=deps.denylist)
    except BaseException:
        await titles.close()
        raise
    signals = Signals(deps.store)
    service = RecommendationsService(
        "recommendations",
        grpc=server,
        grpc_port=port,
        background=[
            *((f"signals-{i}", run) for i, run in enumerate(follow(signals, deps.bus))),
            ("titles", follow_titles),
            ("training", lambda: _training_loop(config, deps.store, titles, models)),
            ("reload", lambda: _reload_loop(models)),
        ],
        cleanups=[titles.close],
    )
    service.models = models
    return service
