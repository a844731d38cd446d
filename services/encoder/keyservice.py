"""ContentKeyService over gRPC: a title's clear content keys, for the licence service only.

The encoder is the only holder of the master keys (docs/drm.md): other services read a title's keys through this
contract, never the ``content_keys`` table. Every call needs a service identity (:func:`require_service`: an admin
token with the ``service`` role, which only service-to-service credentials carry), and the gateway never routes
this service. Keys are read, never made: a title never packaged protected is NOT_FOUND."""

from __future__ import annotations

import logging
from typing import Any

import grpc

from marquee.v1 import content_keys_pb2, content_keys_pb2_grpc
from services.common.auth import require_service
from services.common.errors import FailedPrecondition, NotFound
from services.common.names import NamePattern
from services.encoder.keys import ContentKeys, KeyUnavailable

SERVICE_NAME = content_keys_pb2.DESCRIPTOR.services_by_name["ContentKeyService"].full_name
CONTENT_KEYS = NamePattern("titles/{title}/contentKeys")
log = logging.getLogger("marquee.encoder")


class ContentKeyServicer(content_keys_pb2_grpc.ContentKeyServiceServicer):
    def __init__(self, keys: ContentKeys | None) -> None:
        """``keys`` None: no master key is configured here, so no stored key can be unwrapped."""
        self._keys = keys

    async def GetContentKeys(
        self, request: content_keys_pb2.GetContentKeysRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> content_keys_pb2.GetContentKeysResponse:
        principal = require_service()
        title_id = CONTENT_KEYS.parse(request.name, "name")["title"]
        if self._keys is None:
            raise FailedPrecondition(
                "the encoder has no master key configured ([content_keys]): it holds no content key",
                reason="CONTENT_KEY_UNAVAILABLE",
            )
        try:
            keys = await self._keys.get(title_id)
        except KeyUnavailable as exc:
            raise FailedPrecondition(
                f"the content keys of titles/{title_id} cannot be unwrapped: {exc}", reason="CONTENT_KEY_UNAVAILABLE"
            ) from None
        if not keys:
            raise NotFound(f"titles/{title_id} has no content keys", reason="CONTENT_KEYS_NOT_FOUND")
        log.info("content keys of titles/%s read by %s", title_id, principal.account_id)  # KIDs only, never keys
        return content_keys_pb2.GetContentKeysResponse(
            content_keys=content_keys_pb2.ContentKeys(
                name=request.name,
                keys=[
                    content_keys_pb2.ContentKey(track_type=k.track_type, key_id=k.kid, key=k.key)
                    for k in sorted(keys.values(), key=lambda k: k.track_type)
                ],
            )
        )
