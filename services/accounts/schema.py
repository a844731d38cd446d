"""The accounts keyspace: tables keyed for their reads (ScyllaDB-shaped; no joins, no scans).

    accounts((account_id))                         the account row, with LWT-guarded profile/device counts
    account_emails((email))                        email -> account id; insert IF NOT EXISTS keeps emails unique
    profiles((account_id), profile_id)             an account's profiles, read as one partition
    profile_names((account_id), name_key)          case-folded profile name -> id; IF NOT EXISTS = unique names
    devices((account_id), device_id)               an account's devices, paged in creation order
    refresh_tokens((token_hash))                   SHA-256 of a refresh token -> its family and state (TTL)
    token_families((account_id), family_id)        an account's sign-in sessions; revoked flag (TTL)

Times are unix microseconds (int).
"""

from __future__ import annotations

from services.common.store.schema import Column, Migration, Order, Schema, Table

KEYSPACE = "accounts"

ACCOUNTS = Table(
    "accounts",
    columns=(
        Column("account_id", "text"),
        Column("email", "text"),
        Column("display_name", "text"),
        Column("plan", "text"),
        Column("password_hash", "text"),
        Column("roles", "json"),
        Column("profile_count", "int"),
        Column("device_count", "int"),
        Column("create_time", "int"),
        Column("update_time", "int"),
    ),
    partition_key=("account_id",),
    keyspace=KEYSPACE,
)
ACCOUNT_EMAILS = Table(
    "account_emails",
    columns=(Column("email", "text"), Column("account_id", "text")),
    partition_key=("email",),
    keyspace=KEYSPACE,
)
PROFILES = Table(
    "profiles",
    columns=(
        Column("account_id", "text"),
        Column("profile_id", "text"),
        Column("display_name", "text"),
        Column("name_key", "text"),
        Column("kids", "bool"),
        Column("maturity_limit", "int"),
        Column("language", "text"),
        Column("avatar_uri", "text"),
        Column("create_time", "int"),
        Column("update_time", "int"),
    ),
    partition_key=("account_id",),
    clustering_key=(("profile_id", Order.ASC),),
    keyspace=KEYSPACE,
)
PROFILE_NAMES = Table(
    "profile_names",
    columns=(Column("account_id", "text"), Column("name_key", "text"), Column("profile_id", "text")),
    partition_key=("account_id",),
    clustering_key=(("name_key", Order.ASC),),
    keyspace=KEYSPACE,
)
DEVICES = Table(
    "devices",
    columns=(
        Column("account_id", "text"),
        Column("device_id", "text"),
        Column("display_name", "text"),
        Column("type", "int"),
        Column("create_time", "int"),
        Column("last_seen_time", "int"),
    ),
    partition_key=("account_id",),
    clustering_key=(("device_id", Order.ASC),),
    keyspace=KEYSPACE,
)
REFRESH_TOKENS = Table(
    "refresh_tokens",
    columns=(
        Column("token_hash", "text"),
        Column("account_id", "text"),
        Column("family_id", "text"),
        Column("profile_id", "text"),
        Column("device_id", "text"),
        Column("expires_at", "int"),
        Column("used", "bool"),
    ),
    partition_key=("token_hash",),
    keyspace=KEYSPACE,
)
TOKEN_FAMILIES = Table(
    "token_families",
    columns=(
        Column("account_id", "text"),
        Column("family_id", "text"),
        Column("revoked", "bool"),
        Column("create_time", "int"),
        Column("expires_at", "int"),
    ),
    partition_key=("account_id",),
    clustering_key=(("family_id", Order.ASC),),
    keyspace=KEYSPACE,
)

SCHEMA = Schema(
    keyspace=KEYSPACE,
    migrations=[
        Migration(
            version=1,
            create_tables=[ACCOUNTS, ACCOUNT_EMAILS, PROFILES, PROFILE_NAMES, DEVICES, REFRESH_TOKENS, TOKEN_FAMILIES],
        )
    ],
)
