"""The in-process bus: the conformance suite."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.common.bus.memory import InMemoryBus
from tests.common.bus_conformance import *  # noqa: F403

MAX_LEN = 100


@pytest.fixture
def bus_max_len() -> int:
    return MAX_LEN


@pytest.fixture
async def bus() -> AsyncIterator[InMemoryBus]:
    b = InMemoryBus(max_len=MAX_LEN)
    yield b
    await b.close()
