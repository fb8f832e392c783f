"""Key-values and cache on the ``<prefix>kv`` table.

One row per key: ``key TEXT``, ``value BYTEA``, ``expires_at TIMESTAMPTZ``
(NULL for no expiry). Every read filters on ``expires_at`` with the server's
clock, so an expired row is never returned, whether or not the sweeper has
removed it yet. Keys and values are always bound parameters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from datafx.connfx.adapters.postgres.pool import PooledStatements, PostgresPool
from datafx.connfx.adapters.sqlbase.lazy import Once
from datafx.connfx.adapters.sqlbase.limits import KeyTooLongError, check_value_size
from datafx.connfx.adapters.sqlbase.names import TableNames
from datafx.connfx.adapters.sqlbase.prefix import SCAN_PAGE, prefix_upper_bound
from datafx.connfx.errors import KeyNotFoundError

__all__ = ["KvStatements", "PostgresKeyValue", "row_count"]

# A B-tree index entry holds at most 2704 bytes (PostgreSQL 12 and later,
# 8 kB pages); a longer key, after compression, cannot be a primary key.
MAX_INDEXED_KEY_BYTES = 2704
# BYTEA holds at most 1 GB.
MAX_VALUE_BYTES = (1 << 30) - 1

_LIVE = "(expires_at IS NULL OR expires_at > clock_timestamp())"
_DEADLINE = "clock_timestamp() + $3::float8 * interval '1 second'"


@dataclass(frozen=True, slots=True)
class KvStatements:
    """The SQL of every key-value operation, for one table.

    ``lock`` is appended to reads inside transactions (``FOR UPDATE``), so
    a read-modify-write in one transaction cannot lose a concurrent update.
    """

    get: str
    get_many: str
    exists: str
    ttl: str
    set: str
    set_many: str
    update: str
    remove: str
    remove_many: str
    expire: str
    sweep: str
    scan: str

    @classmethod
    def build(cls, names: TableNames, lock: str = "") -> KvStatements:
        kv = names.table("kv")
        upsert = (
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, "
            "expires_at = EXCLUDED.expires_at"
        )
        ttl_select = (
            "SELECT EXTRACT(EPOCH FROM expires_at - clock_timestamp())::float8 AS ttl, "
            "expires_at IS NULL AS forever"
        )
        return cls(
            get=f"SELECT value FROM {kv} WHERE key = $1 AND {_LIVE}{lock}",
            get_many=(
                f"SELECT key, value FROM {kv} WHERE key = ANY($1::text[]) AND {_LIVE}"
                + (f" ORDER BY key{lock}" if lock else "")
            ),
            exists=f"SELECT 1 FROM {kv} WHERE key = $1 AND {_LIVE}{lock}",
            ttl=f"{ttl_select} FROM {kv} WHERE key = $1 AND {_LIVE}{lock}",
            set=(
                f"INSERT INTO {kv} (key, value, expires_at) "
                f"VALUES ($1, $2, {_DEADLINE}) {upsert}"
            ),
            set_many=(
                f"INSERT INTO {kv} (key, value, expires_at) "
                f"SELECT k, v, {_DEADLINE} FROM unnest($1::text[], $2::bytea[]) "
                f"AS t(k, v) {upsert}"
            ),
            update=f"UPDATE {kv} SET value = $2 WHERE key = $1 AND {_LIVE}",
            remove=f"DELETE FROM {kv} WHERE key = $1",
            remove_many=f"DELETE FROM {kv} WHERE key = ANY($1::text[])",
            expire=(
                f"UPDATE {kv} SET expires_at = clock_timestamp() + "
                f"$2::float8 * interval '1 second' WHERE key = $1 AND {_LIVE}"
            ),
            # $1 lower bound (the prefix), $2 upper bound or NULL, $3 last key seen.
            scan=(
                f"SELECT key FROM {kv} WHERE key >= $1 "
                "AND ($2::text IS NULL OR key < $2) "
                f"AND ($3::text IS NULL OR key > $3) AND {_LIVE} "
                "ORDER BY key LIMIT $4"
            ),
            sweep=(
                f"DELETE FROM {kv} WHERE key = ANY(ARRAY("
                f"SELECT key FROM {kv} WHERE expires_at <= clock_timestamp() "
                "LIMIT $1 FOR UPDATE SKIP LOCKED)) "
                "AND expires_at <= clock_timestamp()"
            ),
        )


def row_count(status: str) -> int:
    """Return the row count of a command tag such as ``UPDATE 3``."""
    tail = status.rpartition(" ")[2]
    return int(tail) if tail.isdigit() else -1


def _check_values(items: Mapping[str, bytes]) -> None:
    for key, value in items.items():
        check_value_size(key, value, MAX_VALUE_BYTES, "PostgreSQL", "BYTEA limit")


def _too_long(keys: Sequence[str]) -> KeyTooLongError:
    longest = max(keys, key=lambda k: len(k.encode()))
    return KeyTooLongError(
        longest, len(longest.encode()), MAX_INDEXED_KEY_BYTES, "PostgreSQL"
    )


class KvOperations:
    """Key-value operations on a given connection, for the port and transactions."""

    def __init__(self, statements: KvStatements) -> None:
        self.sql = statements

    async def get(self, connection: Any, key: str) -> bytes | None:
        value: bytes | None = await connection.fetchval(self.sql.get, key)
        return value

    async def get_many(self, connection: Any, keys: Sequence[str]) -> dict[str, bytes]:
        rows = await connection.fetch(self.sql.get_many, list(keys))
        return {row[0]: row[1] for row in rows}

    async def set(
        self, connection: Any, key: str, value: bytes, ttl: float | None
    ) -> None:
        check_value_size(key, value, MAX_VALUE_BYTES, "PostgreSQL", "BYTEA limit")
        try:
            await connection.execute(self.sql.set, key, value, ttl)
        except asyncpg.ProgramLimitExceededError as exc:
            raise _too_long([key]) from exc

    async def set_many(
        self, connection: Any, items: Mapping[str, bytes], ttl: float | None
    ) -> None:
        _check_values(items)
        try:
            await connection.execute(
                self.sql.set_many, list(items), list(items.values()), ttl
            )
        except asyncpg.ProgramLimitExceededError as exc:
            raise _too_long(list(items)) from exc

    async def update(self, connection: Any, key: str, value: bytes) -> bool:
        check_value_size(key, value, MAX_VALUE_BYTES, "PostgreSQL", "BYTEA limit")
        status = await connection.execute(self.sql.update, key, value)
        return row_count(status) > 0

    async def remove(self, connection: Any, key: str) -> None:
        await connection.execute(self.sql.remove, key)

    async def remove_many(self, connection: Any, keys: Sequence[str]) -> None:
        await connection.execute(self.sql.remove_many, list(keys))

    async def exists(self, connection: Any, key: str) -> bool:
        return await connection.fetchval(self.sql.exists, key) is not None

    async def get_ttl(self, connection: Any, key: str) -> float | None:
        row = await connection.fetchrow(self.sql.ttl, key)
        if row is None:
            raise KeyNotFoundError(key)
        if row["forever"]:
            return None
        # The row was live when read, so a tiny or negative rest is clock noise.
        return max(float(row["ttl"]), 0.001)

    async def expire(self, connection: Any, key: str, ttl: float) -> bool:
        status = await connection.execute(self.sql.expire, key, ttl)
        return row_count(status) > 0


class PostgresKeyValue:
    """Key-value and cache ports; each statement borrows a pooled connection."""

    def __init__(self, pool: PostgresPool, names: TableNames, ready: Once) -> None:
        self._pool = pool
        self._ready = ready
        self._ops = KvOperations(KvStatements.build(names))
        self._statements = PooledStatements(pool)

    async def get(self, key: str) -> bytes | None:
        if not self._ready.done:
            await self._ready.ensure()
        return await self._ops.get(self._statements, key)

    async def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        if not self._ready.done:
            await self._ready.ensure()
        return await self._ops.get_many(self._statements, keys)

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        if not self._ready.done:
            await self._ready.ensure()
        await self._ops.set(self._statements, key, value, ttl)

    async def set_many(
        self, items: Mapping[str, bytes], ttl: float | None = None
    ) -> None:
        if not self._ready.done:
            await self._ready.ensure()
        await self._ops.set_many(self._statements, items, ttl)

    async def update(self, key: str, value: bytes) -> bool:
        if not self._ready.done:
            await self._ready.ensure()
        return await self._ops.update(self._statements, key, value)

    async def remove(self, key: str) -> None:
        if not self._ready.done:
            await self._ready.ensure()
        await self._ops.remove(self._statements, key)

    async def remove_many(self, keys: Sequence[str]) -> None:
        if not self._ready.done:
            await self._ready.ensure()
        await self._ops.remove_many(self._statements, keys)

    async def exists(self, key: str) -> bool:
        if not self._ready.done:
            await self._ready.ensure()
        return await self._ops.exists(self._statements, key)

    async def get_ttl(self, key: str) -> float | None:
        if not self._ready.done:
            await self._ready.ensure()
        return await self._ops.get_ttl(self._statements, key)

    async def expire(self, key: str, ttl: float) -> bool:
        if not self._ready.done:
            await self._ready.ensure()
        return await self._ops.expire(self._statements, key, ttl)

    async def scan(self, prefix: str = "") -> AsyncIterator[str]:
        """Yield live keys starting with ``prefix`` in key order, a page at a time."""
        await self._ready.ensure()
        upper = prefix_upper_bound(prefix)
        last: str | None = None
        while True:
            async with self._pool.acquire() as connection:
                rows = await connection.fetch(
                    self._ops.sql.scan, prefix, upper, last, SCAN_PAGE
                )
            for row in rows:
                yield row[0]
            if len(rows) < SCAN_PAGE:
                return
            last = rows[-1][0]

    async def delete_expired(self, limit: int) -> int:
        """Remove at most ``limit`` expired rows, skipping rows others hold locked."""
        async with self._pool.acquire() as connection:
            status = await connection.execute(self._ops.sql.sweep, limit)
        return row_count(status)
