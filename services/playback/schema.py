"""The playback keyspace.

    sessions((session_id))                         a playback session: who, what, which slot, until when, up
                                                   to when its QoE reports have accounted for (qoe_time), and
                                                   the sign-in session its access token came from (auth_session),
                                                   the title's licensed regions its URLs are bound to (regions)
    stream_slots((account_id), slot)               one row per concurrent stream an account holds
    positions((account_id, profile_id), title_id)  resume position per profile and title (last write wins by
                                                   the client's event time, USING TIMESTAMP); continue watching
    watch_history((account_id, profile_id), watched_at DESC, title_id)
                                                   one entry per session (watched_at: its start), newest first;
                                                   rewatches are new entries; written like positions
    live_sessions((shard), session_id)             the sessions not yet ended, in LIVE_SHARDS partitions, with
                                                   an expiry no later than theirs: what the expiry sweep reads
                                                   to end (and account for) the sessions whose heartbeats stopped
    downloads((account_id, profile_id), download_id DESC)
                                                   offline downloads per profile, newest first: the device, the
                                                   title and rendition cap, the licence's expiry and play start,
                                                   active or revoked (and why); kept (TTL) a while past expiry
    download_slots((account_id), slot)             one row per download an account holds (the plan's limits per
                                                   account and per device), claimed by compare-and-set, taken
                                                   over once its licence expired, freed by release or revocation
    download_revocations((account_id), auth_session)
                                                   when an account's sign-in session ("" for all of them) was
                                                   revoked: downloads made in it before then are revoked at
                                                   their next check-in (kept as long as an offline licence lasts)

A session row also holds its QoE totals (qoe_stalled_ms, qoe_playing_ms, qoe_switches: the sums of the reports it
has sent, added by the same compare-and-set that claims a report's window), whether it has completed its title
(completed, set once by compare-and-set), and its profile's kind (profile_kind: standard or kids, from the access
token): every replica reads and writes them there, so a session's reports may reach any replica and its end is
accounted once, from whichever replica ends it.

Times are unix microseconds; positions and runtimes milliseconds."""

from __future__ import annotations

import zlib

from services.common.store.schema import Column, Migration, Order, Schema, Table

KEYSPACE = "playback"

SESSIONS = Table(
    "sessions",
    columns=(
        Column("session_id", "text"),
        Column("account_id", "text"),
        Column("profile_id", "text"),
        Column("device_id", "text"),
        Column("title_id", "text"),
        Column("media_id", "text"),
        Column("runtime_ms", "int"),
        Column("slot", "int"),
        Column("max_height", "int"),
        Column("region", "text"),
        Column("start_time", "int"),
        Column("expire_time", "int"),
        Column("ended", "bool"),
        Column("pathways", "json"),
        Column("steering_uri", "text"),
    ),
    partition_key=("session_id",),
    keyspace=KEYSPACE,
)
STREAM_SLOTS = Table(
    "stream_slots",
    columns=(
        Column("account_id", "text"),
        Column("slot", "int"),
        Column("session_id", "text"),
        Column("expire_time", "int"),
    ),
    partition_key=("account_id",),
    clustering_key=(("slot", Order.ASC),),
    keyspace=KEYSPACE,
)
POSITIONS = Table(
    "positions",
    columns=(
        Column("account_id", "text"),
        Column("profile_id", "text"),
        Column("title_id", "text"),
        Column("position_ms", "int"),
        Column("runtime_ms", "int"),
        Column("event_time", "int"),
        Column("finished", "bool"),
        Column("watch_time", "int"),
    ),
    partition_key=("account_id", "profile_id"),
    clustering_key=(("title_id", Order.ASC),),
    keyspace=KEYSPACE,
)

QOE_TIME = Column("qoe_time", "int")
AUTH_SESSION = Column("auth_session", "text")
REGIONS = Column("regions", "json")

WATCH_HISTORY = Table(
    "watch_history",
    columns=(
        Column("account_id", "text"),
        Column("profile_id", "text"),
        Column("watched_at", "int"),
        Column("title_id", "text"),
        Column("session_id", "text"),
        Column("position_ms", "int"),
        Column("runtime_ms", "int"),
        Column("event_time", "int"),
        Column("finished", "bool"),
    ),
    partition_key=("account_id", "profile_id"),
    clustering_key=(("watched_at", Order.DESC), ("title_id", Order.ASC)),
    keyspace=KEYSPACE,
)

PROFILE_KIND = Column("profile_kind", "text")
QOE_STALLED_MS = Column("qoe_stalled_ms", "int")
QOE_PLAYING_MS = Column("qoe_playing_ms", "int")
QOE_SWITCHES = Column("qoe_switches", "int")
COMPLETED = Column("completed", "bool")

LIVE_SHARDS = 16
LIVE_SESSIONS = Table(
    "live_sessions",
    columns=(Column("shard", "int"), Column("session_id", "text"), Column("expire_time", "int")),
    partition_key=("shard",),
    clustering_key=(("session_id", Order.ASC),),
    keyspace=KEYSPACE,
)


DOWNLOADS = Table(
    "downloads",
    columns=(
        Column("account_id", "text"),
        Column("profile_id", "text"),
        Column("download_id", "text"),
        Column("device_id", "text"),
        Column("title_id", "text"),
        Column("media_id", "text"),
        Column("max_height", "int"),
        Column("pathways", "json"),
        Column("regions", "json"),
        Column("auth_session", "text"),
        Column("slot", "int"),
        Column("state", "text"),
        Column("revoke_reason", "text"),
        Column("create_time", "int"),
        Column("expire_time", "int"),
        Column("play_start_time", "int"),
    ),
    partition_key=("account_id", "profile_id"),
    clustering_key=(("download_id", Order.DESC),),
    keyspace=KEYSPACE,
)
DOWNLOAD_SLOTS = Table(
    "download_slots",
    columns=(
        Column("account_id", "text"),
        Column("slot", "int"),
        Column("download_id", "text"),
        Column("profile_id", "text"),
        Column("device_id", "text"),
        Column("auth_session", "text"),
        Column("expire_time", "int"),
    ),
    partition_key=("account_id",),
    clustering_key=(("slot", Order.ASC),),
    keyspace=KEYSPACE,
)


DOWNLOAD_REVOCATIONS = Table(
    "download_revocations",
    columns=(Column("account_id", "text"), Column("auth_session", "text"), Column("revoke_time", "int")),
    partition_key=("account_id",),
    clustering_key=(("auth_session", Order.ASC),),
    keyspace=KEYSPACE,
)


def live_shard(session_id: str) -> int:
    """The live_sessions partition of a session."""
    return zlib.crc32(session_id.encode()) % LIVE_SHARDS


SCHEMA = Schema(
    KEYSPACE,
    [
        Migration(1, create_tables=[SESSIONS, STREAM_SLOTS, POSITIONS]),
        Migration(2, add_columns=[("sessions", QOE_TIME), ("sessions", AUTH_SESSION), ("sessions", REGIONS)]),
        Migration(3, create_tables=[WATCH_HISTORY]),
        Migration(
            4,
            create_tables=[LIVE_SESSIONS],
            add_columns=[
                ("sessions", PROFILE_KIND),
                ("sessions", QOE_STALLED_MS),
                ("sessions", QOE_PLAYING_MS),
                ("sessions", QOE_SWITCHES),
                ("sessions", COMPLETED),
            ],
        ),
        Migration(5, create_tables=[DOWNLOADS, DOWNLOAD_SLOTS, DOWNLOAD_REVOCATIONS]),
    ],
)
