"""The typed front of Marquee's Rust core (``marquee._native``, built from ``native/`` by maturin).

Signed URL tokens
-----------------
``TokenKeyring(keys, signing_kid)`` holds HMAC keys by id (at least 16 bytes each). ``sign(acl, expires_at,
session_id=None, regions=None)`` returns a URL-safe token granting every path matched by one of the ACL patterns
(absolute paths where ``*`` matches any run of characters, ``/`` included) until ``expires_at`` (unix seconds),
optionally bound to a playback session and to clients in ``regions`` (ISO 3166-1 alpha-2; the edges check the
client's region against them, ``TokenClaims.regions``). ``verify(token, path, now=None, session_id=None)`` returns
the ``TokenClaims`` or raises, in this order of checks: ``TokenInvalidError`` (malformed, or the signature does
not match: a tampered token is never reported as anything else), ``UnknownKeyError`` (a key id not in the ring),
``TokenExpiredError``, ``TokenForbiddenError`` (the path is not covered, is not normalised, or the session
differs). All token errors derive from ``TokenError``; bad arguments raise ``InvalidArgumentError`` (a
``ValueError``). Verification takes about a microsecond, so it keeps the GIL.

Manifests
---------
``Presentation.from_json(text)`` parses and validates a title's media description (docs/media-description.md;
``InvalidArgumentError`` names the bad field). Per playback request it renders ``hls_multivariant``,
``hls_media(rendition_id)``, ``hls_iframes(rendition_id)`` and ``dash_mpd``, with ``token`` appended to every
URI as ``?{token_param}={token}``, ``pathways`` as ``[(pathway_id, base_uri), ...]`` for content steering (absolute
URIs per pathway; without them URIs are relative), ``steering`` as ``(server_uri, default_pathway)``, and
``max_height`` dropping taller video renditions (never the last one). Rendering releases the GIL. A protected
title (media.json ``protection``; ``protection_scheme`` says which scheme, None when clear) gets DASH
``ContentProtection`` (mp4protection with ``cenc:default_KID``, ClearKey with ``dashif:Laurl`` when ``dash_mpd`` is
given a ``license_url``, and the common ``cenc:pssh``) and HLS ``EXT-X-KEY`` in its media playlists.

Content protection
------------------
``CencEncryptor(init_segment, scheme, keys, iv_size=8, constant_ivs=None, pssh=None)`` protects one rendition with
Common Encryption (ISO/IEC 23001-7), ``scheme`` "cenc" (AES-CTR) or "cbcs" (AES-CBC, 1:9 pattern for video):
``keys`` maps each track type of the init segment ("video", "audio") to ``(key_id, key)``, 16 bytes each. Its
``init_segment`` is the protected init segment (encv/enca with sinf/tenc, then a pssh of ``COMMON_SYSTEM_ID``
listing the key ids and the caller's extra ``pssh`` boxes, see ``pssh_box(system_id, data, key_ids)``);
``tracks`` describe each track's ``CencTrack`` (key id, IV size or constant IV, pattern); ``encrypt(segment,
iv=None)`` encrypts one clear media segment without the GIL ('cenc' IVs are random per segment unless given).
Malformed media raises ``MalformedMediaError``, media it does not handle (codecs other than H.264 and AAC, an
already encrypted stream, sidx in a segment) ``UnsupportedMediaError``, both ``InvalidArgumentError``s, as are bad
key or IV lengths. ``hls_aes128_encrypt(segment, key, media_sequence=None, iv=None)`` is HLS METHOD=AES-128
(whole-segment AES-128-CBC, PKCS#7), with the IV ``hls_sequence_iv(media_sequence)`` unless one is given.
docs/drm.md describes the packaging-time encryption.

Edge data plane
---------------
``EdgeServer(config_json)`` starts an edge cache (``edge.config.EdgeConfig`` writes the JSON): hyper on a tokio
runtime of its own serves ``{prefix}{key}`` from a memory and a disk tier, coalescing misses into one upstream
fetch. Players need a signed URL token (``token_keys``); a shield takes edges' fills by a fill credential
(``fill_keys``: edges sign one per upstream request, shields verify it) and players only when it has player keys.
Its methods are the control surface: ``stats()``, ``cached_titles()``, ``purge(prefix)``, ``fetch(key)``,
``prefetch(key)``, ``set_rate_limit(bytes_per_sec)``, ``revoke_sessions([(session_id, until), ...])`` (the tokens
of ended playback sessions are refused with 410 until they expire), ``stop()``. ``NotFoundError`` (a
``LookupError``) is raised for objects the upstream does not have, ``OSError`` for bind, disk and upstream
failures.
``replay_policy(policy, capacity, ids, sizes)`` replays a request trace through an eviction policy.

Ingest front
------------
``IngestFront(config_json)`` binds playback's public gRPC address and connects to Redis (``OSError`` when either
fails; ``InvalidArgumentError`` for a bad configuration); ``serve()`` starts answering UpdatePosition calls the
servicer admitted (``admit_token``, ``admit_session``, ``forget_session``) on a tokio runtime of its own and
forwarding every other call to the grpc.aio server (``services.playback.ingest`` writes the JSON and explains
what is answered). ``stats()``, ``latency()``, ``stop(grace)``.

Search
------
``TitleIndex()`` is the catalog's in-memory tantivy index: ``upsert(docs_json)`` (a JSON array of title
documents: id, title, original_title, description, cast, directors, genres, year, maturity, regions, kind,
playable, popularity), ``delete(ids)``, ``clear()``, ``search(query, filter_json, limit, offset)`` returning
``([(title_id, score)], total)`` (typo-tolerant, prefix for the word being typed, joined words, ranked by
relevance blended with popularity), ``count(filter_json)`` and ``suggest(query, filter_json, limit)``
(did-you-mean title ids). Filters (JSON): genre, min_year, max_year, kind, max_maturity, region,
playable_only. ``InvalidArgumentError`` for empty or over-long (200 characters) queries and malformed filters.

Similarity
----------
``SimilarityIndex(items, metric="dot"|"cosine")`` holds float32 item embeddings (one row per item);
``top_k(queries, k, allowed=None, exclude=None, threads=0)`` scores a batch of query rows against every item and
keeps the k best per query in the same pass (no score matrix), leaving out items where ``allowed`` is False and
each query's ``exclude`` ids; it returns ``(ids, scores)`` of shape (queries, k), padded with -1 / -inf, and runs
on ``threads`` threads (0: all cores) without the GIL.
"""

from __future__ import annotations

from marquee._native import (
    COMMON_SYSTEM_ID,
    CencEncryptor,
    CencTrack,
    EdgeServer,
    IngestFront,
    InvalidArgumentError,
    MalformedMediaError,
    NotFoundError,
    Presentation,
    SimilarityIndex,
    TitleIndex,
    TokenClaims,
    TokenError,
    TokenExpiredError,
    TokenForbiddenError,
    TokenInvalidError,
    TokenKeyring,
    UnknownKeyError,
    UnsupportedMediaError,
    acl_matches,
    hls_aes128_encrypt,
    hls_sequence_iv,
    pssh_box,
    replay_policy,
)

__all__ = [
    "COMMON_SYSTEM_ID",
    "CencEncryptor",
    "CencTrack",
    "EdgeServer",
    "IngestFront",
    "InvalidArgumentError",
    "MalformedMediaError",
    "NotFoundError",
    "Presentation",
    "SimilarityIndex",
    "TitleIndex",
    "TokenClaims",
    "TokenError",
    "TokenExpiredError",
    "TokenForbiddenError",
    "TokenInvalidError",
    "TokenKeyring",
    "UnknownKeyError",
    "UnsupportedMediaError",
    "acl_matches",
    "hls_aes128_encrypt",
    "hls_sequence_iv",
    "pssh_box",
    "replay_policy",
]
