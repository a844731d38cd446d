"""The catalog keyspace.

    titles((title_id))                       the title, read by id (shows hold their seasons and episodes)
    titles_by_media((media_id), title_id)    which titles play an encoded asset (encoding-done fans out here)
    media((media_id))                        an encoded asset's state, from encoding-done events
    imports((source))                        data sets loaded into the catalog (the demo's MovieLens titles)
    titles_by_bucket((bucket), title_id)     every title id, spread over 16 partitions (listing, index rebuilds)
    ratings((title_id), profile_id)          one rating per profile per title
    rating_summaries((title_id))             count, total and 1..5 histogram, updated by compare-and-set
    rating_ops((title_id), op_id)            rating changes in progress (a crash leaves them: recount)
    pending_titles((bucket), title_id)       titles with rating changes in progress, by listing bucket
    reviews((title_id), review_id DESC)      reviews newest first (ids are time-ordered)
    review_reports((review_id), reporter)    one report per profile per review

Enumerations are stored by their ``marquee.v1`` value names (``TITLE_TYPE_MOVIE``, ``MATURITY_RATING_PG``); lists
(genres, cast, regions) are JSON. Times are unix microseconds.
"""

from __future__ import annotations

import zlib

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

BUCKETS = 16
TITLES_BY_BUCKET = Table(
    "titles_by_bucket",
    columns=(Column("bucket", "int"), Column("title_id", "text")),
    partition_key=("bucket",),
    clustering_key=(("title_id", Order.ASC),),
    keyspace=KEYSPACE,
)
RATINGS = Table(
    "ratings",
    columns=(
        Column("title_id", "text"),
        Column("profile_id", "text"),
        Column("account_id", "text"),
        Column("stars", "int"),
        Column("update_time", "int"),
    ),
    partition_key=("title_id",),
    clustering_key=(("profile_id", Order.ASC),),
    keyspace=KEYSPACE,
)
RATING_SUMMARIES = Table(
    "rating_summaries",
    columns=(
        Column("title_id", "text"),
        Column("version", "int"),
        Column("count", "int"),
        Column("total", "int"),
        Column("histogram", "json"),
    ),
    partition_key=("title_id",),
    keyspace=KEYSPACE,
)
RATING_OPS = Table(
    "rating_ops",
    columns=(Column("title_id", "text"), Column("op_id", "text")),
    partition_key=("title_id",),
    clustering_key=(("op_id", Order.ASC),),
    keyspace=KEYSPACE,
)
PENDING_TITLES = Table(
    "pending_titles",
    columns=(Column("bucket", "int"), Column("title_id", "text")),
    partition_key=("bucket",),
    clustering_key=(("title_id", Order.ASC),),
    keyspace=KEYSPACE,
)
REVIEWS = Table(
    "reviews",
    columns=(
        Column("title_id", "text"),
        Column("review_id", "text"),
        Column("account_id", "text"),
        Column("profile_id", "text"),
        Column("author_display_name", "text"),
        Column("text", "text"),
        Column("stars", "int"),
        Column("hidden", "bool"),
        Column("reports", "int"),
        Column("create_time", "int"),
    ),
    partition_key=("title_id",),
    clustering_key=(("review_id", Order.DESC),),
    keyspace=KEYSPACE,
)
REVIEW_REPORTS = Table(
    "review_reports",
    columns=(Column("review_id", "text"), Column("reporter", "text"), Column("reason", "text")),
    partition_key=("review_id",),
    clustering_key=(("reporter", Order.ASC),),
    keyspace=KEYSPACE,
)
# which review a profile's CreateReview request_id created (retries return it); kept REVIEW_REQUEST_TTL seconds
REVIEW_REQUESTS = Table(
    "review_requests",
    columns=(
        Column("account_id", "text"),
        Column("profile_id", "text"),
        Column("request_id", "text"),
        Column("title_id", "text"),
        Column("review_id", "text"),
    ),
    partition_key=("account_id", "profile_id", "request_id"),
    keyspace=KEYSPACE,
)
REVIEW_REQUEST_TTL = 7 * 24 * 3600

SCHEMA = Schema(
    KEYSPACE,
    [
        Migration(1, create_tables=[TITLES, TITLES_BY_MEDIA, MEDIA, IMPORTS]),
        Migration(2, create_tables=[TITLES_BY_BUCKET, RATINGS, RATING_SUMMARIES, REVIEWS, REVIEW_REPORTS]),
        # shows: their seasons and episodes; episodes: the show they belong to
        Migration(3, add_columns=[("titles", Column("seasons", "json")), ("titles", Column("series", "text"))]),
        # posters and backdrops set by admins (thumbnails and trick-play come from the encoded media)
        Migration(4, add_columns=[("titles", Column("artwork", "json"))]),
        # rating changes in progress: what a crash leaves here is recounted at the next start
        Migration(5, create_tables=[RATING_OPS, PENDING_TITLES]),
        # CreateReview's request ids
        Migration(6, create_tables=[REVIEW_REQUESTS]),
    ],
)


def bucket_of(title_id: str) -> int:
    """The listing partition of a title (stable across processes: not Python's salted hash)."""
    return zlib.crc32(title_id.encode()) % BUCKETS
