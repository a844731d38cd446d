"""Titles' media descriptions (``{origin}/{media}/media.json``), parsed by the Rust renderer once per version."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marquee.native import InvalidArgumentError, Presentation
from services.common.errors import FailedPrecondition

MAX_CACHED = 1024


@dataclass(frozen=True)
class Media:
    presentation: Presentation
    doc: dict[str, Any]

    @property
    def runtime_ms(self) -> int:
        return int(self.presentation.duration * 1000)


class MediaLibrary:
    def __init__(self, origin: Path) -> None:
        self._origin = origin
        self._cache: dict[str, tuple[float, Media]] = {}

    async def get(self, media_id: str) -> Media:
        path = self._origin / media_id / "media.json"
        try:
            mtime = (await asyncio.to_thread(path.stat)).st_mtime
        except OSError:
            raise FailedPrecondition(
                f"the media of {media_id} is not in the origin store", reason="TITLE_NOT_PLAYABLE"
            ) from None
        cached = self._cache.get(media_id)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        text = await asyncio.to_thread(path.read_text)
        try:
            media = Media(Presentation.from_json(text), json.loads(text))
        except (InvalidArgumentError, ValueError) as exc:
            raise FailedPrecondition(
                f"the media description of {media_id} is invalid: {exc}", reason="TITLE_NOT_PLAYABLE"
            ) from exc
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        self._cache[media_id] = (mtime, media)
        return media
