"""The catalog keyspace.

    titles((title_id))                       the title, read by id
    titles_by_media((media_id), title_id)    which titles play an encoded asset (encoding-done fans out here)
    media((media_id))                        an encoded asset's state, from encoding-done events
    imports((source))                        data sets loaded into the catalog (the demo's MovieLens titles)

Enumerations are stored by their ``marquee.v1`` value names (``TITLE_TYPE_MOVIE``, ``MATURITY_RATING_PG``); lists
(genres, cast, regions) are JSON. Times are unix microseconds.
"""

from __future__ import annotations

from services.common.store.schema import Column, Migration, Order, Schema, Table

KEYSPACE = "catalog"

TITLES = Table(
    "titles",
    columns=(
        Column("title_id", "text"),
        Column("type", "text"),
        Column("display_name", "text"),
        Column("original_title", "text"),
        Column("description", "text"),
        Column("release_year", "int"),
        Column("genres", "json"),
        Column("cast", "json"),
        Column("directors", "json"),
        Column("maturity_rating", "text"),
        Column("licensed_regions", "json"),
        Column("runtime_seconds", "int"),
        Column("popularity", "float"),
        Column("media_id", "text"),
        Column("playable", "bool"),
        Column("source", "text"),
        Column("create_time", "int"),
        Column("update_time", "int"),
    ),
    partition_key=("title_id",),
    keyspace=KEYSPACE,
)
TITLES_BY_MEDIA = Table(
    "titles_by_media",
    columns=(Column("media_id", "text"), Column("title_id", "text")),
    partition_key=("media_id",),
    clustering_key=(("title_id", Order.ASC),),
    keyspace=KEYSPACE,
)
MEDIA = Table(
    "media",
    columns=(
        Column("media_id", "text"),
        Column("ready", "bool"),
        Column("media_path", "text"),
        Column("heights", "json"),
        Column("duration_seconds", "float"),
        Column("job", "text"),
        Column("ready_time", "int"),
    ),
    partition_key=("media_id",),
    keyspace=KEYSPACE,
)
IMPORTS = Table(
    "imports",
    columns=(Column("source", "text"), Column("titles", "int"), Column("import_time", "int")),
    partition_key=("source",),
    keyspace=KEYSPACE,
)

SCHEMA = Schema(KEYSPACE, [Migration(1, create_tables=[TITLES, TITLES_BY_MEDIA, MEDIA, IMPORTS])])
