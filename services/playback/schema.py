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

Times are unix microseconds; positions and runtimes milliseconds."""

from __future__ import annotations

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

SCHEMA = Schema(
    KEYSPACE,
    [
        Migration(1, create_tables=[SESSIONS, STREAM_SLOTS, POSITIONS]),
        Migration(2, add_columns=[("sessions", QOE_TIME), ("sessions", AUTH_SESSION), ("sessions", REGIONS)]),
        Migration(3, create_tables=[WATCH_HISTORY]),
    ],
)
