"""Tables datafx creates and upgrades in MySQL and MariaDB, with recorded versions.

Each component (``kv``, ``queue``, ``stream``) has an ordered list of
migrations, and ``<prefix>schema_version`` records the version each reached.
MySQL commits every DDL statement on its own, so upgrades are serialized with
a named lock (``GET_LOCK``) derived from the schema and prefix: processes that
start at the same time apply each migration once. Every statement is written
to be safe to repeat (``IF NOT EXISTS``), because a process that dies halfway
leaves the finished steps in place without recording the version.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from datafx.connfx.adapters.mysql.pool import MySqlPool, execute, fetch
from datafx.connfx.adapters.sqlbase.names import TableNames
from datafx.connfx.errors import BackendError

__all__ = [
    "KV_MIGRATIONS",
    "MAX_NAME_BYTES",
    "QUEUE_MIGRATIONS",
    "Migration",
    "migrate",
]

Migration = Callable[[TableNames], Sequence[str]]

# Seconds to wait for another process that is upgrading the same tables.
LOCK_TIMEOUT = 60

# InnoDB indexes at most 3072 bytes of a key (DYNAMIC row format, the default
# since MySQL 5.7.9 and MariaDB 10.2.2).
MAX_KEY_BYTES = 3072


def _kv_v1(names: TableNames) -> list[str]:
    # VARBINARY compares keys byte for byte: no case folding and no trailing
    # space padding, as on every other backend.
    return [
        f"""CREATE TABLE IF NOT EXISTS {names.table("kv")} (
            `key` VARBINARY({MAX_KEY_BYTES}) NOT NULL,
            `value` LONGBLOB NOT NULL,
            expires_at DATETIME(6) NULL,
            PRIMARY KEY (`key`),
            KEY {names.index("kv_expires_at")} (expires_at)
        ) ENGINE=InnoDB"""
    ]


KV_MIGRATIONS: tuple[Migration, ...] = (_kv_v1,)

# Queue, group and consumer names are VARBINARY(1024): three of them still fit
# the 3072-byte index limit of the consumers table.
MAX_NAME_BYTES = 1024


def _queue_v1(names: TableNames) -> list[str]:
    name = f"VARBINARY({MAX_NAME_BYTES})"
    # Times are seconds since the Unix epoch (DOUBLE), as the ports use them.
    return [
        f"""CREATE TABLE IF NOT EXISTS {names.table("queues")} (
            name {name} NOT NULL PRIMARY KEY,
            stream BOOLEAN NOT NULL,
            max_length BIGINT NOT NULL,
            reject_when_full BOOLEAN NOT NULL,
            message_ttl DOUBLE NULL,
            last_id BIGINT NOT NULL DEFAULT 0,
            created_at DOUBLE NOT NULL
        ) ENGINE=InnoDB""",
        f"""CREATE TABLE IF NOT EXISTS {names.table("queue_messages")} (
            queue {name} NOT NULL,
            id BIGINT NOT NULL,
            body LONGBLOB NOT NULL,
            headers MEDIUMBLOB NOT NULL,
            published_at DOUBLE NOT NULL,
            expires_at DOUBLE NULL,
            PRIMARY KEY (queue, id)
        ) ENGINE=InnoDB""",
        f"""CREATE TABLE IF NOT EXISTS {names.table("queue_groups")} (
            queue {name} NOT NULL,
            grp {name} NOT NULL,
            last_id BIGINT NOT NULL,
            entries_read BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (queue, grp)
        ) ENGINE=InnoDB""",
        # visible_at: when a leased message may be fetched again (NULL for a
        # stream lease, which only a claim ends), or when a released one is ready.
        f"""CREATE TABLE IF NOT EXISTS {names.table("queue_pending")} (
            queue {name} NOT NULL,
            grp {name} NOT NULL,
            id BIGINT NOT NULL,
            consumer {name} NULL,
            delivered_at DOUBLE NOT NULL,
            visible_at DOUBLE NULL,
            delivery_count INT NOT NULL,
            PRIMARY KEY (queue, grp, id)
        ) ENGINE=InnoDB""",
        f"""CREATE TABLE IF NOT EXISTS {names.table("queue_consumers")} (
            queue {name} NOT NULL,
            grp {name} NOT NULL,
            consumer {name} NOT NULL,
            seen_at DOUBLE NOT NULL,
            PRIMARY KEY (queue, grp, consumer)
        ) ENGINE=InnoDB""",
    ]


QUEUE_MIGRATIONS: tuple[Migration, ...] = (_queue_v1,)


def lock_name(names: TableNames) -> str:
    """Return the GET_LOCK name (at most 64 characters) of a schema and prefix."""
    digest = hashlib.blake2b(
        f"{names.schema}:{names.prefix}".encode(), digest_size=16
    ).hexdigest()
    return f"datafx:{digest}"


async def _create_versions_table(connection: Any, names: TableNames) -> None:
    # Checked first because CREATE TABLE IF NOT EXISTS on an existing table
    # makes asyncmy log a warning for the server's note.
    rows = await fetch(
        connection,
        "SELECT 1 FROM information_schema.tables "
        "WHERE table_schema = %s AND table_name = %s",
        (names.schema, names.raw("schema_version")),
    )
    if rows:
        return
    await execute(
        connection,
        f"""CREATE TABLE IF NOT EXISTS {names.table("schema_version")} (
            component VARCHAR(64) NOT NULL PRIMARY KEY,
            version INT NOT NULL,
            updated_at DATETIME(6) NOT NULL
        ) ENGINE=InnoDB""",
    )


async def migrate(
    pool: MySqlPool,
    names: TableNames,
    component: str,
    migrations: Sequence[Migration],
    logger: logging.Logger,
) -> int:
    """Bring ``component``'s tables up to ``len(migrations)``; return the version."""
    target = len(migrations)
    versions = names.table("schema_version")
    lock = lock_name(names)
    async with pool.acquire() as connection:
        rows = await fetch(connection, "SELECT GET_LOCK(%s, %s)", (lock, LOCK_TIMEOUT))
        if not rows or rows[0][0] != 1:
            raise BackendError(
                f"timed out after {LOCK_TIMEOUT}s waiting for the schema lock of "
                f"{names.schema}.{names.prefix}*; another process holds it while "
                "upgrading the tables",
                protocol="mysql",
                operation="migrate",
            )
        try:
            await _create_versions_table(connection, names)
            rows = await fetch(
                connection,
                f"SELECT version FROM {versions} WHERE component = %s",
                (component,),
            )
            current = int(rows[0][0]) if rows else 0
            if current > target:
                logger.warning(
                    "MySQL tables of %s (%s) are at version %d, newer than this "
                    "datafx (%d); leaving them as they are",
                    component,
                    names.prefix,
                    current,
                    target,
                )
                return current
            for version in range(current + 1, target + 1):
                for statement in migrations[version - 1](names):
                    await execute(connection, statement)
                await execute(
                    connection,
                    f"""INSERT INTO {versions} (component, version, updated_at)
                    VALUES (%s, %s, UTC_TIMESTAMP(6))
                    ON DUPLICATE KEY UPDATE version = VALUES(version),
                    updated_at = VALUES(updated_at)""",
                    (component, version),
                )
                logger.info(
                    "MySQL: upgraded %s tables (%s) to version %d",
                    component,
                    names.prefix,
                    version,
                )
            return target
        finally:
            if connection.connected:
                await fetch(connection, "SELECT RELEASE_LOCK(%s)", (lock,))
