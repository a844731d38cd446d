"""Common Encryption of a packaged rendition (the Rust ``CencEncryptor``): its init segment and every media segment
encrypted with the key of its track type, and its media description entry updated for the encrypted files (sizes,
keyframe ranges, bandwidths). The title's ``protection`` entry tells manifests which KIDs to announce."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marquee.native import CencEncryptor
from services.encoder.media import cmaf

SCHEMES = ("cenc", "cbcs")


@dataclass(frozen=True)
class Protection:
    """What to encrypt with: the scheme and track type -> (KID, key). Held in memory only (the worker gets it from
    the scheduler, which unwrapped it); never written anywhere."""

    scheme: str
    keys: Mapping[str, tuple[bytes, bytes]]

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"protection scheme {self.scheme!r} is not one of {SCHEMES}")

    def __repr__(self) -> str:  # never print a key
        kids = {t: kid.hex() for t, (kid, _) in self.keys.items()}
        return f"Protection({self.scheme!r}, kids={kids})"


def _keyframe_len(segment: bytes, init: bytes) -> int:
    """Bytes from the segment start to the end of its first sample (as the media description has it)."""
    top = list(cmaf.boxes(segment))
    moof = next(b for b in top if b.type == b"moof")
    info = cmaf.fragment_info(segment, moof, cmaf.trex_defaults(init))
    return moof.start + info.first_sample_end


def protect_rendition(
    src: Path, dst: Path, rendition: dict[str, Any], kind: str, scheme: str, keys: Mapping[str, tuple[bytes, bytes]]
) -> CencEncryptor:
    """Encrypt one rendition directory into ``dst`` and update ``rendition`` (its media.json entry) in place."""
    clear_init = (src / rendition["init"]).read_bytes()
    encryptor = CencEncryptor(clear_init, scheme, {kind: keys[kind]})
    dst.mkdir(parents=True, exist_ok=True)
    (dst / rendition["init"]).write_bytes(encryptor.init_segment)
    timescale = rendition["timescale"]
    peak = total = 0.0
    for n, entry in enumerate(rendition["segments"], start=rendition["start_number"]):
        name = rendition["media"].replace("$Number$", str(n))
        protected = encryptor.encrypt((src / name).read_bytes())
        (dst / name).write_bytes(protected)
        entry["size"] = len(protected)
        if "keyframe" in entry:
            entry["keyframe"] = [0, _keyframe_len(protected, clear_init)]
        peak = max(peak, len(protected) * 8 * timescale / entry["duration"])
        total += len(protected) * 8
    seconds = sum(e["duration"] for e in rendition["segments"]) / timescale
    rendition["bandwidth"] = int(peak + 0.5)
    rendition["average_bandwidth"] = min(int(total / seconds + 0.5), rendition["bandwidth"])
    return encryptor


def description(scheme: str, encryptors: Mapping[str, tuple[str, CencEncryptor]]) -> dict[str, Any]:
    """media.json's ``protection`` entry from the encryptors that made the renditions (rendition id -> (track type,
    encryptor)): the scheme and, per track type, its KID (a UUID, as DASH's ``cenc:default_KID`` writes it) and its
    W3C common ``pssh`` box (base64, DASH's ``cenc:pssh``). KIDs are public (players ask licences for them); keys
    never appear here."""
    key_ids: dict[str, str] = {}
    pssh: dict[str, str] = {}
    for kind, encryptor in encryptors.values():
        for track in encryptor.tracks:
            key_ids[kind] = str(uuid.UUID(bytes=track.key_id))
        if encryptor.pssh:
            pssh[kind] = base64.b64encode(encryptor.pssh[0]).decode()
    return {"scheme": scheme, "key_ids": key_ids, "pssh": pssh}
