"""encode_title: master file -> a complete, atomically published title in the origin store.

    {origin}/{title}/media.json, thumbnail.jpg, trickplay/sprites.vtt + sprites-N.jpg,
    {origin}/{title}/{rendition}/init.mp4, seg-1.m4s, seg-2.m4s, ...

With ``protection`` (docs/drm.md), each rendition is split into clear CMAF files in the work directory, then
encrypted (Common Encryption, ``cenc`` or ``cbcs``, and the HLS AES-128 variant in ``{rendition}/aes128/`` unless
turned off) into the staged title, so only encrypted media is published; media.json then has a ``protection`` entry
(scheme, KIDs and ``pssh`` per track type, never keys).

Everything is written under {origin}/.staging/{staging_name}/ first and renamed into place only when complete, so
a failed or cancelled encode leaves nothing visible and a re-run replaces the title whole. The encoder names the
staging directory after the job and attempt (services/encoder/staging.py), so leftovers can be tied to their job.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.encoder.media import cmaf, describe, protect, thumbnails
from services.encoder.media.errors import MediaError, SourceError
from services.encoder.media.ladder import DEFAULT_LADDER, Rung, select_ladder
from services.encoder.media.transcode import Progress, probe, transcode

SEGMENT_SECONDS = 4.0
TITLE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
STAGING = ".staging"
OLD_SUFFIX = "-old"  # the title replaced by a publish, set aside in .staging/{staging_name}-old until removed


@dataclass(frozen=True)
class EncodedTitle:
    title_id: str
    path: Path
    description: dict[str, Any]


def _sample_times(duration: float, interval: float) -> list[float]:
    times = [i * interval for i in range(int(duration // interval) + 1) if i * interval < duration]
    thumb = duration * 0.1
    return sorted({*times, thumb})


def encode_title(
    source: Path,
    title_id: str,
    origin: Path,
    *,
    ladder: tuple[Rung, ...] = DEFAULT_LADDER,
    preset: str = "veryfast",
    threads: int = 0,
    language: str = "und",
    on_progress: Callable[[Progress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    protection: protect.Protection | None = None,
    staging_name: str | None = None,
) -> EncodedTitle:
    """``staging_name``: the directory under {origin}/.staging/ to build the title in (default a fresh
    ``{title}-{random}``); it must be unique to this encode."""
    if not TITLE_ID_RE.match(title_id):
        raise ValueError(f"title id {title_id!r} must match {TITLE_ID_RE.pattern}")
    info = probe(source)
    planned = select_ladder(info.width, info.height, ladder)
    staging = origin / STAGING / (staging_name or f"{title_id}-{uuid.uuid4().hex[:8]}")
    work = staging / ".work"
    final = origin / title_id
    try:
        interval = SEGMENT_SECONDS
        samples = _sample_times(info.duration, interval)
        result = transcode(
            source,
            info,
            planned,
            work,
            segment_seconds=SEGMENT_SECONDS,
            preset=preset,
            threads=threads,
            sample_times=samples,
            on_progress=on_progress,
            should_cancel=should_cancel,
        )
        if on_progress is not None:
            on_progress(Progress(99.0, "package", 0.0))
        # protected: clear files go to the work directory (removed below) and only encrypted ones to the title
        clear_root = work / "clear" if protection is not None else staging
        encryptors: dict[str, tuple[str, Any]] = {}

        def package(kind: str, desc: dict[str, Any]) -> dict[str, Any]:
            if protection is not None:
                rid = desc["id"]
                encryptor = protect.protect_rendition(
                    clear_root / rid,
                    staging / rid,
                    desc,
                    kind,
                    protection.scheme,
                    protection.keys,
                    hls_aes128=protection.hls_aes128,
                )
                encryptors[rid] = (kind, encryptor)
            return desc

        video_desc = []
        for p in planned:
            out_dir = clear_root / p.rung.name
            ts, segments = cmaf.split(result.video[p.rung.name], out_dir)
            codecs = cmaf.avc_codecs((out_dir / "init.mp4").read_bytes())
            video = (p.width, p.height, info.frame_rate)
            video_desc.append(package("video", describe.rendition(p.rung.name, codecs, ts, segments, video=video)))
        audio_desc = []
        if result.audio is not None:
            rid = f"audio-{language}"
            out_dir = clear_root / rid
            ts, segments = cmaf.split(result.audio, out_dir)
            codecs = cmaf.aac_codecs((out_dir / "init.mp4").read_bytes())
            audio = (language, _language_name(language), 2, 48_000)
            audio_desc.append(package("audio", describe.rendition(rid, codecs, ts, segments, audio=audio)))
        thumb_frame = min(result.sampled, key=lambda s: abs(s[0] - info.duration * 0.1), default=None)
        thumb_name = None
        if thumb_frame is not None:
            thumbnails.thumbnail(thumb_frame[1], staging / "thumbnail.jpg")
            thumb_name = "thumbnail.jpg"
        tiles = [s for s in result.sampled if abs(s[0] / interval - round(s[0] / interval)) < 1e-9]
        trickplay = None
        if tiles:
            thumbnails.sprites(tiles, info.duration, interval, staging / "trickplay")
            trickplay = {
                "vtt": "trickplay/sprites.vtt",
                "interval": interval,
                "width": thumbnails.TILE_W,
                "height": thumbnails.TILE_H,
            }
        doc = describe.title(
            title_id, SEGMENT_SECONDS, video_desc, audio_desc, thumbnail=thumb_name, trickplay=trickplay
        )
        if protection is not None:
            doc["protection"] = protect.description(protection.scheme, encryptors, hls_aes128=protection.hls_aes128)
        shutil.rmtree(work)
        (staging / "media.json").write_text(json.dumps(doc, indent=1))
        _publish(staging, final)
        if on_progress is not None:
            on_progress(Progress(100.0, "done", 0.0))
        return EncodedTitle(title_id, final, doc)
    except MediaError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        _remove_if_empty(origin / STAGING)


def _publish(staging: Path, final: Path) -> None:
    """Swap the staged title into place: old version aside (next to the staging directory, named after it), new
    one in, old one removed."""
    old = None
    if final.exists():
        old = staging.with_name(f"{staging.name}{OLD_SUFFIX}")
        final.rename(old)
    staging.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _remove_if_empty(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()


_LANGUAGES = {"en": "English", "fr": "Français", "de": "Deutsch", "es": "Español", "und": "Original"}


def _language_name(code: str) -> str:
    return _LANGUAGES.get(code, code)


__all__ = ["EncodedTitle", "MediaError", "Progress", "SourceError", "encode_title"]
