"""Proactive fill: pull whole titles into an edge ahead of demand within a bandwidth cap (Open Connect's nightly
fill). Objects already cached cost nothing; only bytes actually fetched upstream count against the cap."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from edge.node import EdgeNode
from marquee.native import NotFoundError

MEDIA_DESCRIPTION = "media.json"


def title_objects(title: str, media: dict[str, object]) -> list[str]:
    """Every object key of a title, from its media description (docs/media-description.md)."""
    keys: list[str] = []
    for kind in ("video", "audio"):
        renditions = media.get(kind, [])
        for r in renditions if isinstance(renditions, list) else []:
            rid, template, start = r["id"], r["media"], int(r.get("start_number", 1))
            keys.append(f"{title}/{rid}/{r['init']}")
            keys.extend(
                f"{title}/{rid}/{template.replace('$Number$', str(start + i))}" for i in range(len(r["segments"]))
            )
    thumbnail = media.get("thumbnail")
    if isinstance(thumbnail, str):
        keys.append(f"{title}/{thumbnail}")
    return keys


@dataclass
class FillReport:
    titles: int = 0
    objects: int = 0
    fetched_bytes: int = 0
    seconds: float = 0.0
    missing: list[str] = field(default_factory=list)

    @property
    def bits_per_second(self) -> float:
        return self.fetched_bytes * 8 / self.seconds if self.seconds else 0.0


async def fill(node: EdgeNode, titles: Iterable[str], *, bandwidth_bps: int) -> FillReport:
    """Prefetches every object of ``titles`` into ``node``, pacing upstream bytes to ``bandwidth_bps``.

    Titles the upstream does not have are listed in ``missing``; the fill goes on with the rest."""
    if bandwidth_bps <= 0:
        raise ValueError("bandwidth_bps must be > 0")
    report = FillReport()
    started = time.monotonic()
    fetched_before = node.stats()["upstream_bytes"]

    async def pace() -> None:
        fetched = node.stats()["upstream_bytes"] - fetched_before
        ahead = fetched * 8 / bandwidth_bps - (time.monotonic() - started)
        if ahead > 0:
            await asyncio.sleep(ahead)

    for title in titles:
        try:
            media = json.loads(await asyncio.to_thread(node.fetch, f"{title}/{MEDIA_DESCRIPTION}"))
        except NotFoundError:
            report.missing.append(title)
            continue
        report.titles += 1
        for key in title_objects(title, media):
            await asyncio.to_thread(node.prefetch, key)
            report.objects += 1
            await pace()
    report.fetched_bytes = node.stats()["upstream_bytes"] - fetched_before
    report.seconds = time.monotonic() - started
    return report
