"""Protect an encoded title (what services/encoder publishes) with Common Encryption, for tests: every rendition's
init segment and media segments encrypted with one key per track type, and media.json's segment sizes, keyframe
ranges and bandwidths updated for the encrypted files. Integration tests of the manifests, the licence service and
the players can start from `protect_title`."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marquee.native import CencEncryptor
from services.encoder.media.protect import protect_rendition

# Fixed test keys (key id, key) per track type: never use these for anything real.
TEST_KEYS: dict[str, tuple[bytes, bytes]] = {
    "video": (bytes.fromhex("5a4d0c2b9d0e4d1f8e1c7b6a5f4e3d2c"), bytes.fromhex("00112233445566778899aabbccddeeff")),
    "audio": (bytes.fromhex("6b5e1d3cae1f5e2f9f2d8c7b6a5f4e3d"), bytes.fromhex("ffeeddccbbaa99887766554433221100")),
}


@dataclass(frozen=True)
class ProtectedTitle:
    path: Path
    scheme: str
    keys: dict[str, tuple[bytes, bytes]]
    # rendition id -> the encryptor that made it (its init segment, tracks and pssh boxes)
    encryptors: dict[str, CencEncryptor]

    @property
    def description(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads((self.path / "media.json").read_text())
        return doc


def protect_title(
    title_dir: Path,
    out_dir: Path,
    scheme: str,
    keys: dict[str, tuple[bytes, bytes]] | None = None,
    *,
    hls_aes128: bool = False,
) -> ProtectedTitle:
    """Copy the title at `title_dir` to `out_dir` (a title directory of an origin) with its media encrypted (and its
    HLS AES-128 variant, as the encoder packages it)."""
    keys = keys or TEST_KEYS
    doc = json.loads((title_dir / "media.json").read_text())
    if out_dir.exists():
        shutil.rmtree(out_dir)
    shutil.copytree(title_dir, out_dir, ignore=shutil.ignore_patterns("*.m4s", "init.mp4"))
    encryptors = {}
    for kind, renditions in (("video", doc["video"]), ("audio", doc["audio"])):
        for rendition in renditions:
            rid = rendition["id"]
            encryptors[rid] = protect_rendition(
                title_dir / rid, out_dir / rid, rendition, kind, scheme, keys, hls_aes128=hls_aes128
            )
    (out_dir / "media.json").write_text(json.dumps(doc, indent=1))
    return ProtectedTitle(out_dir, scheme, dict(keys), encryptors)
