"""The recommendations keyspace.

    interactions((profile_id), title_id)  what a profile watched, finished or rated (from the bus): the training
                                          data, the seen titles never recommended again, the latest views
    profiles((bucket), profile_id)        every profile with interactions, listed by bucket for the batch job
    lists((profile_id), rank)             the precomputed top N of a profile, best first, with its reasons
    models((name))                        the current model ("current"): version, training time, summary
    artifacts((version))                  a model's serving artifact (npz); replicas poll the small models row
                                          and read this only when the version changed
    row_events((serve_id), event)         the impressions and clicks counted of each row served (event:
                                          "impression" or "click:{position}"), written if not exists, living
                                          as long as the row's event token: each counts once (events.py)

Times are unix microseconds."""

from __future__ import annotations

import zlib

from services.common.store.schema import Column, Migration, Order, Schema, Table

KEYSPACE = "recommendations"
BUCKETS = 16
CURRENT = "current"

INTERACTIONS = Table(
    "interactions",
    columns=(
        Column("profile_id", "text"),
        Column("title_id", "text"),
        Column("positive", "bool"),
        Column("kind", "text"),  # viewed | finished | rated
        Column("event_time", "int"),
        Column("region", "text"),
    ),
    partition_key=("profile_id",),
    clustering_key=(("title_id", Order.ASC),),
    keyspace=KEYSPACE,
)

PROFILES = Table(
    "profiles",
    columns=(Column("bucket", "int"), Column("profile_id", "text"), Column("update_time", "int")),
    partition_key=("bucket",),
    clustering_key=(("profile_id", Order.ASC),),
    keyspace=KEYSPACE,
)

LISTS = Table(
    "lists",
    columns=(
        Column("profile_id", "text"),
        Column("rank", "int"),
        Column("title_id", "text"),
        Column("score", "float"),
        Column("reason", "text"),  # a ReasonType name
        Column("source_title", "text"),
        Column("version", "text"),
    ),
    partition_key=("profile_id",),
    clustering_key=(("rank", Order.ASC),),
    keyspace=KEYSPACE,
)

MODELS = Table(
    "models",
    columns=(
        Column("name", "text"),
        Column("version", "text"),
        Column("trained_time", "int"),
        Column("summary", "json"),
    ),
    partition_key=("name",),
    keyspace=KEYSPACE,
)

ARTIFACTS = Table(
    "artifacts",
    columns=(Column("version", "text"), Column("artifact", "blob")),
    partition_key=("version",),
    keyspace=KEYSPACE,
)

ROW_EVENTS = Table(
    "row_events",
    columns=(Column("serve_id", "text"), Column("event", "text")),
    partition_key=("serve_id",),
    clustering_key=(("event", Order.ASC),),
    keyspace=KEYSPACE,
)

SCHEMA = Schema(
    KEYSPACE,
    [
        Migration(1, create_tables=[INTERACTIONS, PROFILES, LISTS, MODELS, ARTIFACTS]),
        Migration(2, create_tables=[ROW_EVENTS]),
    ],
)


def bucket_of(profile_id: str) -> int:
    return zlib.crc32(profile_id.encode()) % BUCKETS
