"""The gateway's routing table leaves internal services out: ContentKeyService (a title's clear content keys, for
the licence service) is never discovered, and a configured route to it is refused."""

from __future__ import annotations

import pytest

from services.gateway.routes import INTERNAL_SERVICES, Routes, UnknownService, marquee_services


def test_internal_services_are_not_discovered() -> None:
    known = marquee_services()
    assert "marquee.v1.ContentKeyService" in INTERNAL_SERVICES
    assert not INTERNAL_SERVICES & set(known)
    assert {"marquee.v1.PlaybackService", "marquee.v1.LicenseService", "marquee.v1.EncodingService"} <= set(known)


async def test_a_configured_route_to_an_internal_service_is_refused() -> None:
    with pytest.raises(UnknownService, match="internal"):
        Routes({"marquee.v1.ContentKeyService": "127.0.0.1:1"})
    routes = Routes({"marquee.v1.LicenseService": "127.0.0.1:1"})
    try:
        assert routes.lookup("/marquee.v1.LicenseService/AcquireLicense") is not None
    finally:
        await routes.close()
