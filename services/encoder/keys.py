"""Content keys of protected titles: one 16-byte AES key and its 16-byte key id (KID) per title and track type
("video", "audio"), made when a title is first packaged protected and stored wrapped by a master key (envelope
encryption), never in clear.

Wrapping: AES-256-GCM under a key-encryption key derived with HKDF-SHA256 from the configured master secret
(``[content_keys] keys``, by id); a random 96-bit nonce per wrap; the associated data binds the wrapped key to its
row (title, track type, KID), so a wrapped key copied to another row, or to another title, does not unwrap. The
newest master key (``wrapping_kid``) wraps, any configured one unwraps, and :meth:`ContentKeys.rewrap` moves every
stored key to the wrapping master key (``marquee keys rewrap``), after which an old master key can be removed.

The encoder owns the keys (its ``encoding`` keyspace, ``content_keys`` table): it is the only writer, at packaging
time; a licence service reads them through a gRPC contract, never this table (docs/drm.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from services.common.config import ConfigError, ContentKeysConfig
from services.common.ids import now_micros
from services.common.store.port import Scannable, Store
from services.encoder.schema import CONTENT_KEYS

TRACK_TYPES = ("video", "audio")
KEY_BYTES = 16
NONCE_BYTES = 12
FORMAT = "aes256gcm-hkdf-v1"
_HKDF_INFO = b"marquee content key wrapping v1"


class KeyUnavailable(Exception):
    """A stored content key cannot be unwrapped: its master key is not configured, or the wrapped bytes were
    altered or moved to another row."""


@dataclass(frozen=True)
class ContentKey:
    track_type: str
    kid: bytes  # 16 bytes
    key: bytes  # 16 bytes

    def __repr__(self) -> str:  # never print a key
        return f"ContentKey({self.track_type!r}, kid={self.kid.hex()})"


def _aad(title_id: str, track_type: str, kid: bytes) -> bytes:
    return f"marquee-content-key:{title_id}:{track_type}:".encode() + kid


class MasterKeys:
    """The configured master keys: wrap with ``wrapping_kid``, unwrap with any."""

    def __init__(self, config: ContentKeysConfig) -> None:
        if not config.keys:
            raise ConfigError("content protection needs a master key: set [content_keys] keys and wrapping_kid")
        self.wrapping_kid = config.wrapping_kid
        self._keks = {kid: _derive(secret.get_secret_value().encode()) for kid, secret in config.keys.items()}

    def wrap(self, key: bytes, aad: bytes) -> tuple[str, bytes]:
        nonce = os.urandom(NONCE_BYTES)
        return self.wrapping_kid, nonce + self._keks[self.wrapping_kid].encrypt(nonce, key, aad)

    def unwrap(self, master_kid: str, wrapped: bytes, aad: bytes) -> bytes:
        kek = self._keks.get(master_kid)
        if kek is None:
            raise KeyUnavailable(f"master key {master_kid!r} is not configured ([content_keys] keys)")
        try:
            key = kek.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], aad)
        except InvalidTag:
            raise KeyUnavailable("a wrapped content key does not unwrap (altered, or not this row's)") from None
        if len(key) != KEY_BYTES:
            raise KeyUnavailable("a wrapped content key has the wrong length")
        return key


def _derive(secret: bytes) -> AESGCM:
    kek = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(secret)
    return AESGCM(kek)


class ContentKeys:
    """The ``content_keys((title_id), track_type)`` table: one read gets every key of a title."""

    def __init__(self, store: Store, masters: MasterKeys) -> None:
        self._store = store
        self._masters = masters

    async def get(self, title_id: str) -> dict[str, ContentKey]:
        """The title's keys by track type (empty when the title has none)."""
        page = await self._store.query(CONTENT_KEYS, {"title_id": title_id}, limit=len(TRACK_TYPES) + 8)
        out = {}
        for row in page.rows:
            aad = _aad(title_id, row["track_type"], row["kid"])
            key = self._masters.unwrap(row["master_kid"], row["wrapped_key"], aad)
            out[row["track_type"]] = ContentKey(row["track_type"], row["kid"], key)
        return out

    async def get_or_create(self, title_id: str) -> dict[str, ContentKey]:
        """The title's keys, made (and stored wrapped) for the track types it lacks. Concurrent callers agree on
        one key per track type: the first insert wins (a lightweight transaction) and the others read it."""
        found = await self.get(title_id)
        for track_type in TRACK_TYPES:
            if track_type in found:
                continue
            kid, key = os.urandom(KEY_BYTES), os.urandom(KEY_BYTES)
            master_kid, wrapped = self._masters.wrap(key, _aad(title_id, track_type, kid))
            row = {
                "title_id": title_id,
                "track_type": track_type,
                "kid": kid,
                "wrapped_key": wrapped,
                "master_kid": master_kid,
                "create_time": now_micros(),
            }
            await self._store.insert(CONTENT_KEYS, row, if_not_exists=True)
        return await self.get(title_id) if len(found) < len(TRACK_TYPES) else found

    async def rewrap(self, scannable: Scannable, *, batch: int = 500) -> tuple[int, int]:
        """Wrap every stored key with the current wrapping master key; returns (rewrapped, already current). A
        maintenance scan (``marquee keys rewrap``), never a service's hot path; safe to run again or concurrently
        (each row is rewrapped only if it still holds what was read)."""
        rewrapped = current = 0
        after: bytes | None = None
        while True:
            page = await scannable.scan(CONTENT_KEYS, limit=batch, after=after)
            for scanned in page.rows:
                row = scanned.row
                if row["master_kid"] == self._masters.wrapping_kid:
                    current += 1
                    continue
                aad = _aad(row["title_id"], row["track_type"], row["kid"])
                key = self._masters.unwrap(row["master_kid"], row["wrapped_key"], aad)
                master_kid, wrapped = self._masters.wrap(key, aad)
                applied = await self._store.update(
                    CONTENT_KEYS,
                    {"title_id": row["title_id"], "track_type": row["track_type"]},
                    {"wrapped_key": wrapped, "master_kid": master_kid},
                    if_={"master_kid": row["master_kid"], "wrapped_key": row["wrapped_key"]},
                )
                rewrapped += int(applied)
            if page.next is None:
                return rewrapped, current
            after = page.next


def as_encryptor_keys(keys: Mapping[str, ContentKey]) -> dict[str, tuple[bytes, bytes]]:
    """Track type -> (KID, key), as ``CencEncryptor`` takes them."""
    return {t: (k.kid, k.key) for t, k in keys.items()}
