"""Common Encryption of a packaged rendition (the Rust ``CencEncryptor``): its init segment and every media segment
encrypted with the key of its track type, and its media description entry updated for the encrypted files (sizes,
keyframe ranges, bandwidths). The title's ``protection`` entry tells manifests which KIDs to announce.

With ``hls_aes128``, the rendition also gets its HLS AES-128 variant (RFC 8216, for players without EME) in
``{rendition}/aes128/``: the clear init segment (codec parameters, no samples) and every media segment whole-encrypted
with AES-128-CBC under the same key, its IV the segment's media sequence number (the playlist names no IV)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marquee.native import CencEncryptor, hls_aes128_encrypt
from services.encoder.media import cmaf

SCHEMES = ("cenc", "cbcs")
# the AES-128 variant's directory inside each rendition's (native/core/src/manifest/model.rs AES128_DIR)
AES128_DIR = "aes128"


@dataclass(frozen=True)
class Protection:
    """What to encrypt with: the scheme and track type -> (KID, key). Held in memory only (the worker gets it from
    the scheduler, which unwrapped it); never written anywhere."""

    scheme: str
    keys: Mapping[str, tuple[bytes, bytes]]
    hls_aes128: bool = True

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"protection scheme {self.scheme!r} is not one of {SCHEMES}")

    def __repr__(self) -> str:  # never print a key
        kids = {t: kid.hex() for t, (kid, _) in self.keys.items()}
        return f"Protection({self.scheme!r}, kids={kids}, hls_aes128={self.hls_aes128})"


def _keyframe_len(segment: bytes, init: bytes) -> int:
    """Bytes from the segment start to the end of its first sample (as the media description has it)."""
    top = list(cmaf.boxes(segment))
    moof = next(b for b in top if b.type == b"moof")
    info = cmaf.fragment_info(segment, moof, cmaf.trex_defaults(init))
    return moof.start + info.first_sample_end


def protect_rendition(
    src: Path,
    dst: Path,
    rendition: dict[str, Any],
    kind: str,
    scheme: str,
    keys: Mapping[str, tuple[bytes, bytes]],
    *,
    hls_aes128: bool = False,
) -> CencEncryptor:
    """Encrypt one rendition directory into ``dst`` (and, with ``hls_aes128``, its AES-128 variant into
    ``dst/aes128``) and update ``rendition`` (its media.json entry) in place. The variant's segments are at most 16
    bytes longer than the clear ones and so never longer than the Common Encryption ones (whose ``senc`` alone
    takes 16 bytes or more): the bandwidths written here bound both."""
    clear_init = (src / rendition["init"]).read_bytes()
    encryptor = CencEncryptor(clear_init, scheme, {kind: keys[kind]})
    dst.mkdir(parents=True, exist_ok=True)
    (dst / rendition["init"]).write_bytes(encryptor.init_segment)
    variant = dst / AES128_DIR
    if hls_aes128:
        variant.mkdir()
        (variant / rendition["init"]).write_bytes(clear_init)
    timescale = rendition["timescale"]
    peak = total = 0.0
    for n, entry in enumerate(rendition["segments"], start=rendition["start_number"]):
        name = rendition["media"].replace("$Number$", str(n))
        clear = (src / name).read_bytes()
        protected = encryptor.encrypt(clear)
        (dst / name).write_bytes(protected)
        if hls_aes128:
            (variant / name).write_bytes(hls_aes128_encrypt(clear, keys[kind][1], media_sequence=n))
        entry["size"] = len(protected)
        if "keyframe" in entry:
            entry["keyframe"] = [0, _keyframe_len(protected, clear_init)]
        peak = max(peak, len(protected) * 8 * timescale / entry["duration"])
        total += len(protected) * 8
    seconds = sum(e["duration"] for e in rendition["segments"]) / timescale
    rendition["bandwidth"] = int(peak + 0.5)
    rendition["average_bandwidth"] = min(int(total / seconds + 0.5), rendition["bandwidth"])
    return encryptor


def description(
    scheme: str, encryptors: Mapping[str, tuple[str, CencEncryptor]], *, hls_aes128: bool = False
) -> dict[str, Any]:
    """media.json's ``protection`` entry from the encryptors that made the renditions (rendition id -> (track type,
    encryptor)): the scheme and, per track type, its KID (a UUID, as DASH's ``cenc:default_KID`` writes it) and its
    W3C common ``pssh`` box (base64, DASH's ``cenc:pssh``), and whether the AES-128 variant was packaged. KIDs are
    public (players ask licences for them); keys never appear here."""
    key_ids: dict[str, str] = {}
    pssh: dict[str, str] = {}
    for kind, encryptor in encryptors.values():
        for track in encryptor.tracks:
            key_ids[kind] = str(uuid.UUID(bytes=track.key_id))
        if encryptor.pssh:
            pssh[kind] = base64.b64encode(encryptor.pssh[0]).decode()
    return {"scheme": scheme, "key_ids": key_ids, "pssh": pssh, "hls_aes128": hls_aes128}
