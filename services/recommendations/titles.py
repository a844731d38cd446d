"""The catalog's titles as recommendations reads them: through CatalogService (the catalog's gRPC contract, never
its tables), with the service's own short-lived admin token (no profile's maturity limit: the model knows every
title, requests filter by the caller's limit). A training run lists every title; a title the catalog announces on
``catalog.title`` is fetched alone.

The demo audience maps MovieLens items to the demo titles through each title's ``source``
(``movielens-100k:{item}``)."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from marquee.v1 import catalog_pb2, catalog_pb2_grpc
from ml.data import STRICTEST, Item
from services.common.auth import AccessTokens, ServiceToken
from services.common.client import connect
from services.common.movielens import SOURCE as DEMO_SOURCE
from services.common.names import NamePattern

TITLE = NamePattern("titles/{title}")
SUBJECT = "svc-recommendations"  # the subject of the service token its calls to the catalog carry
PAGE_SIZE = 1000  # the catalog clamps it to its own max_page_size
LIST_TIMEOUT = 30.0  # per page; the service's calls wait for a catalog that is starting (wait_for_ready)
GET_TIMEOUT = 5.0

Metadata = Callable[[], tuple[tuple[str, str], ...]]


def item_of(title: catalog_pb2.Title) -> Item:
    """A catalog title as the model's item (an unspecified maturity rating counts as the strictest)."""
    return Item(
        TITLE.parse(title.name)["title"],
        title.display_name,
        tuple(title.genres),
        title.release_year or None,
        title.maturity_rating or STRICTEST,
        tuple(title.licensed_regions),
        tuple(p.display_name for p in title.cast if p.display_name),
    )


def demo_item(title: catalog_pb2.Title) -> int | None:
    """The MovieLens item id of a demo title (None for any other title)."""
    prefix = f"{DEMO_SOURCE}:"
    if not title.source.startswith(prefix):
        return None
    return int(title.source.removeprefix(prefix))


class CatalogTitles:
    """Reads titles from CatalogService at one address (one replica or several) with the given call metadata;
    ``wait``: calls wait (within their deadline) for a catalog that is not reachable yet, instead of failing at
    once with UNAVAILABLE."""

    def __init__(self, channel: grpc.aio.Channel, metadata: Metadata, *, wait: bool = True) -> None:
        self._channel = channel
        self._stub = catalog_pb2_grpc.CatalogServiceStub(channel)
        self._metadata = metadata
        self._wait = wait

    @classmethod
    def connect(cls, address: str, tokens: AccessTokens, *, wait: bool = True) -> CatalogTitles:
        """A client of the catalog at ``address`` calling with a service token minted from ``tokens``."""
        return cls(connect(address), ServiceToken(tokens, SUBJECT), wait=wait)

    async def close(self) -> None:
        await self._channel.close(None)

    async def all(self) -> list[catalog_pb2.Title]:
        """Every title, sorted by name. Pages are in the order titles were added (a key no title changes), so a
        title updated during the listing is neither repeated nor skipped."""
        found: dict[str, catalog_pb2.Title] = {}
        token = ""
        while True:
            request = catalog_pb2.ListTitlesRequest(
                order_by=catalog_pb2.TITLE_ORDER_RECENTLY_ADDED, page_size=PAGE_SIZE, page_token=token
            )
            response: catalog_pb2.ListTitlesResponse = await self._stub.ListTitles(
                request, metadata=self._metadata(), timeout=LIST_TIMEOUT, wait_for_ready=self._wait
            )
            for title in response.titles:
                found[title.name] = title
            token = response.next_page_token
            if not token:
                return [found[name] for name in sorted(found)]

    async def get(self, title_id: str) -> catalog_pb2.Title | None:
        """One title; None when the catalog has no such title (deleted since it was announced)."""
        request = catalog_pb2.GetTitleRequest(name=TITLE.format(title=title_id))
        try:
            response: catalog_pb2.GetTitleResponse = await self._stub.GetTitle(
                request, metadata=self._metadata(), timeout=GET_TIMEOUT, wait_for_ready=self._wait
            )
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return response.title
