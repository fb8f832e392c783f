"""Tables datafx creates and upgrades in PostgreSQL, with recorded versions.

Each component (``kv``, ``queue``, ``stream``) has an ordered list of
migrations. The ``<prefix>schema_version`` table records the version each
component reached. Upgrades run in one transaction that holds a transaction
advisory lock derived from the schema and prefix, so processes that start at
the same time apply each migration exactly once and never see a half-made
table. PostgreSQL DDL is transactional, so a failed upgrade leaves nothing.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from datafx.connfx.adapters.postgres.pool import PostgresPool
from datafx.connfx.adapters.sqlbase.names import TableNames

__all__ = ["KV_MIGRATIONS", "QUEUE_MIGRATIONS", "Migration", "migrate"]

# A migration turns table names into the statements of one version step.
Migration = Callable[[TableNames], Sequence[str]]


def _kv_v1(names: TableNames) -> list[str]:
    kv = names.table("kv")
    return [
        # COLLATE "C" compares keys byte for byte, as every other backend does.
        f"""CREATE TABLE IF NOT EXISTS {kv} (
            key TEXT COLLATE "C" PRIMARY KEY,
            value BYTEA NOT NULL,
            expires_at TIMESTAMPTZ
        )""",
        f"CREATE INDEX IF NOT EXISTS {names.index('kv_expires_at')} "
        f"ON {kv} (expires_at) WHERE expires_at IS NOT NULL",
    ]


KV_MIGRATIONS: tuple[Migration, ...] = (_kv_v1,)


def _queue_v1(names: TableNames) -> list[str]:
    queues = names.table("queues")
    messages = names.table("queue_messages")
    # Times are seconds since the Unix epoch (float8), as the ports use them.
    return [
        f"""CREATE TABLE IF NOT EXISTS {queues} (
            name TEXT COLLATE "C" PRIMARY KEY,
            stream BOOLEAN NOT NULL,
            max_length BIGINT NOT NULL,
            reject_when_full BOOLEAN NOT NULL,
            message_ttl FLOAT8,
            last_id BIGINT NOT NULL DEFAULT 0,
            created_at FLOAT8 NOT NULL
        )""",
        f"""CREATE TABLE IF NOT EXISTS {messages} (
            queue TEXT COLLATE "C" NOT NULL,
            id BIGINT NOT NULL,
            body BYTEA NOT NULL,
            headers BYTEA NOT NULL,
            published_at FLOAT8 NOT NULL,
            expires_at FLOAT8,
            PRIMARY KEY (queue, id)
        )""",
        f"""CREATE TABLE IF NOT EXISTS {names.table("queue_groups")} (
            queue TEXT COLLATE "C" NOT NULL,
            grp TEXT COLLATE "C" NOT NULL,
            last_id BIGINT NOT NULL,
            entries_read BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (queue, grp)
        )""",
        # visible_at: when a leased message may be fetched again (NULL for a
        # stream lease, which only a claim ends), or when a released one is ready.
        f"""CREATE TABLE IF NOT EXISTS {names.table("queue_pending")} (
            queue TEXT COLLATE "C" NOT NULL,
            grp TEXT COLLATE "C" NOT NULL,
            id BIGINT NOT NULL,
            consumer TEXT COLLATE "C",
            delivered_at FLOAT8 NOT NULL,
            visible_at FLOAT8,
            delivery_count INTEGER NOT NULL,
            PRIMARY KEY (queue, grp, id)
        )""",
        f"""CREATE TABLE IF NOT EXISTS {names.table("queue_consumers")} (
            queue TEXT COLLATE "C" NOT NULL,
            grp TEXT COLLATE "C" NOT NULL,
            consumer TEXT COLLATE "C" NOT NULL,
            seen_at FLOAT8 NOT NULL,
            PRIMARY KEY (queue, grp, consumer)
        )""",
    ]


QUEUE_MIGRATIONS: tuple[Migration, ...] = (_queue_v1,)


def lock_id(names: TableNames) -> int:
    """Return the advisory lock key (a signed 64-bit int) of a schema and prefix."""
    digest = hashlib.blake2b(
        f"datafx:{names.schema}:{names.prefix}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


async def migrate(
    pool: PostgresPool,
    names: TableNames,
    component: str,
    migrations: Sequence[Migration],
    logger: logging.Logger,
) -> int:
    """Bring ``component``'s tables up to ``len(migrations)``; return the version."""
    target = len(migrations)
    versions = names.table("schema_version")
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", lock_id(names))
        if names.schema != "public":
            quoted = names.dialect.quote_identifier(names.schema)
            await connection.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
        await connection.execute(
            f"""CREATE TABLE IF NOT EXISTS {versions} (
                component TEXT PRIMARY KEY,
                version INTEGER NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )"""
        )
        current = await _current_version(connection, versions, component)
        if current > target:
            logger.warning(
                "PostgreSQL tables of %s (%s) are at version %d, newer than this "
                "datafx (%d); leaving them as they are",
                component,
                names.prefix,
                current,
                target,
            )
            return current
        for version in range(current + 1, target + 1):
            for statement in migrations[version - 1](names):
                await connection.execute(statement)
            logger.info(
                "PostgreSQL: upgraded %s tables (%s) to version %d",
                component,
                names.prefix,
                version,
            )
        if target > current:
            await connection.execute(
                f"""INSERT INTO {versions} (component, version) VALUES ($1, $2)
                ON CONFLICT (component)
                DO UPDATE SET version = EXCLUDED.version, updated_at = now()""",
                component,
                target,
            )
        return target


async def _current_version(connection: Any, versions: str, component: str) -> int:
    value = await connection.fetchval(
        f"SELECT version FROM {versions} WHERE component = $1", component
    )
    return int(value) if value is not None else 0
