"""The encoding keyspace.

    jobs((job_id))                                  the job; lease_owner/lease_expire: the encoder running it
                                                    and until when (migration 3; services/encoder/jobs.py)
    job_requests((request_id))                      idempotency: request id -> job (insert IF NOT EXISTS)
    queue((shard), priority DESC, seq ASC, job_id)  runnable jobs, highest priority first, then oldest
    job_index((bucket), seq DESC, job_id)           listing newest first; bucket "all" and one per state
    content_keys((title_id), track_type)            protected titles' keys, wrapped by a master key (keys.py)

``seq`` is the job's creation time in microseconds (ids are time-ordered too).
"""

from __future__ import annotations

from services.common.store.schema import Column, Migration, Order, Schema, Table

KEYSPACE = "encoding"

JOBS = Table(
    "jobs",
    columns=(
        Column("job_id", "text"),
        Column("title_id", "text"),
        Column("source_uri", "text"),
        Column("priority", "int"),
        Column("ladder", "json"),
        Column("state", "text"),
        Column("percent", "float"),
        Column("rung", "text"),
        Column("speed", "float"),
        Column("error_reason", "text"),
        Column("error_message", "text"),
        Column("create_time", "int"),
        Column("start_time", "int"),
        Column("end_time", "int"),
        Column("attempt", "int"),
        Column("request_id", "text"),
        Column("cancel_requested", "bool"),
    ),
    partition_key=("job_id",),
    keyspace=KEYSPACE,
)
JOB_REQUESTS = Table(
    "job_requests",
    columns=(Column("request_id", "text"), Column("job_id", "text")),
    partition_key=("request_id",),
    keyspace=KEYSPACE,
)
QUEUE = Table(
    "queue",
    columns=(Column("shard", "text"), Column("priority", "int"), Column("seq", "int"), Column("job_id", "text")),
    partition_key=("shard",),
    clustering_key=(("priority", Order.DESC), ("seq", Order.ASC), ("job_id", Order.ASC)),
    keyspace=KEYSPACE,
)
JOB_INDEX = Table(
    "job_index",
    columns=(Column("bucket", "text"), Column("seq", "int"), Column("job_id", "text")),
    partition_key=("bucket",),
    clustering_key=(("seq", Order.DESC), ("job_id", Order.ASC)),
    keyspace=KEYSPACE,
)

# a RUNNING job's lease: the scheduler instance running it, and until when (microseconds) unless renewed
LEASE_OWNER = Column("lease_owner", "text")
LEASE_EXPIRE = Column("lease_expire", "int")

CONTENT_KEYS = Table(
    "content_keys",
    columns=(
        Column("title_id", "text"),
        Column("track_type", "text"),
        Column("kid", "blob"),
        Column("wrapped_key", "blob"),  # nonce + AES-GCM(key) under the master key's KEK
        Column("master_kid", "text"),
        Column("create_time", "int"),
    ),
    partition_key=("title_id",),
    clustering_key=(("track_type", Order.ASC),),
    keyspace=KEYSPACE,
)

SCHEMA = Schema(
    KEYSPACE,
    [
        Migration(1, create_tables=[JOBS, JOB_REQUESTS, QUEUE, JOB_INDEX]),
        Migration(2, create_tables=[CONTENT_KEYS]),
        Migration(3, add_columns=[("jobs", LEASE_OWNER), ("jobs", LEASE_EXPIRE)]),
    ],
)
