"""Key-values with expiry in one SQLite table.

The table has ``key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at REAL``;
``expires_at`` is wall-clock Unix time in seconds, so every process that
shares the file agrees on it, and ``NULL`` means "never expires". Every read
keeps only rows with ``expires_at IS NULL OR expires_at > now``, so an
expired key is never returned; :func:`sweep_expired` deletes such rows later,
in small batches.
"""

from __future__ import annotations

import abc
import asyncio
import functools
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import closing
from typing import Any, cast

from datafx.connfx.adapters.sqlite.database import FetchRows, SqliteDatabase
from datafx.connfx.adapters.sqlite.schema import migrate, quote_name
from datafx.connfx.errors import KeyNotFoundError, TransactionFailedError

__all__ = [
    "KvStatements",
    "SqliteKeyValue",
    "SqliteTransaction",
    "SqliteTransactional",
    "create_kv_schema",
    "delete_expired",
    "sweep_expired",
]

_logger = logging.getLogger("datafx.connfx.sqlite")

# Runs one statement with bound parameters and returns the changed row count.
WriteStatement = Callable[[str, Sequence[Any]], Awaitable[int]]

# Smallest remaining lifetime that get_ttl reports, so that a live key never
# reports zero (timedelta rounds to microseconds).
_MIN_TTL = 0.001

# Keys fetched per query by scan().
_SCAN_PAGE = 500

# How many batch statements (one per size) each connection keeps ready.
_MAX_CACHED_STATEMENTS = 32


# SQLite's default maximum of bound parameters since 3.32.0. Builds may set a
# higher one (the SQLite 3.40.1 of Debian 12 allows 250000), but statements
# that large hold the write lock long and make megabytes of SQL text.
_MAX_VARIABLES = 32766


@functools.cache
def variable_limit() -> int:
    """Return how many parameters one batch statement binds at most.

    The SQLite library's limit (999 before 3.32.0, by default), capped at
    32766; the same for every connection of this process.
    """
    with closing(sqlite3.connect(":memory:")) as probe:
        limit = probe.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return min(limit, _MAX_VARIABLES)


class KvStatements:
    """SQL text for one key-value table, built once per connection."""

    def __init__(self, table: str) -> None:
        self.table = table
        name = quote_name(table)
        self.name = name
        live = "(expires_at IS NULL OR expires_at > ?)"
        self.live = live

        self.get = f"SELECT value FROM {name} WHERE key = ? AND {live}"
        self.exists = f"SELECT 1 FROM {name} WHERE key = ? AND {live}"
        self.get_ttl = f"SELECT expires_at FROM {name} WHERE key = ? AND {live}"
        self.upsert_tail = (
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
            "expires_at = excluded.expires_at"
        )
        self.set = (
            f"INSERT INTO {name} (key, value, expires_at) VALUES (?, ?, ?)"
            + self.upsert_tail
        )
        self.update = f"UPDATE {name} SET value = ? WHERE key = ? AND {live}"
        self.expire = f"UPDATE {name} SET expires_at = ? WHERE key = ? AND {live}"
        self.remove = f"DELETE FROM {name} WHERE key = ?"

        self.delete_expired = (
            f"DELETE FROM {name} WHERE rowid IN (SELECT rowid FROM {name} "
            "WHERE expires_at <= ? LIMIT ?)"
        )
        self.scan_first = (
            f"SELECT key FROM {name} WHERE key >= ? AND {live} ORDER BY key LIMIT ?"
        )
        self.scan_next = (
            f"SELECT key FROM {name} WHERE key > ? AND {live} ORDER BY key LIMIT ?"
        )

        limit = variable_limit()
        self.get_chunk = limit - 1  # one parameter is the current time
        self.set_chunk = limit // 3  # key, value, expires_at per row
        self.remove_chunk = limit
        self._batch: dict[tuple[str, int], str] = {}

    def schema_steps(self) -> list[list[str]]:
        """Migration steps of this table; append new steps, never edit old ones."""
        index = quote_name(f"{self.table}_expires_at")
        return [
            [
                f"CREATE TABLE IF NOT EXISTS {self.name} (key TEXT PRIMARY KEY, "
                "value BLOB NOT NULL, expires_at REAL NULL)",
                # Partial: permanent keys cost nothing in the index, and the
                # sweep's "expires_at <= ?" implies the index condition.
                f"CREATE INDEX IF NOT EXISTS {index} ON {self.name} (expires_at) "
                "WHERE expires_at IS NOT NULL",
            ]
        ]

    def _cached(self, kind: str, count: int) -> str | None:
        return self._batch.get((kind, count))

    def _remember(self, kind: str, count: int, sql: str) -> str:
        if len(self._batch) >= _MAX_CACHED_STATEMENTS:
            self._batch.clear()
        self._batch[(kind, count)] = sql
        return sql

    def get_many(self, count: int) -> str:
        sql = self._cached("get", count)
        if sql is None:
            marks = ", ".join("?" * count)
            sql = self._remember(
                "get",
                count,
                f"SELECT key, value FROM {self.name} WHERE key IN ({marks}) "
                f"AND {self.live}",
            )
        return sql

    def set_many(self, count: int) -> str:
        sql = self._cached("set", count)
        if sql is None:
            rows = ", ".join(["(?, ?, ?)"] * count)
            sql = self._remember(
                "set",
                count,
                f"INSERT INTO {self.name} (key, value, expires_at) VALUES {rows}"
                + self.upsert_tail,
            )
        return sql

    def remove_many(self, count: int) -> str:
        sql = self._cached("remove", count)
        if sql is None:
            marks = ", ".join("?" * count)
            sql = self._remember(
                "remove", count, f"DELETE FROM {self.name} WHERE key IN ({marks})"
            )
        return sql


async def create_kv_schema(database: SqliteDatabase, statements: KvStatements) -> int:
    """Create or upgrade the key-value table; return its schema version."""
    return await migrate(database, f"kv:{statements.table}", statements.schema_steps())


def _deadline(ttl: float | None) -> float | None:
    return None if ttl is None else time.time() + ttl


class _KeyValueOperations(abc.ABC):
    """Key-value and cache operations over three statement runners.

    Subclasses set ``_fetch`` (runs a SELECT) and ``_write`` (runs one
    statement and returns the changed row count), and implement
    ``_write_rows`` (one statement for many parameter rows, atomically).
    """

    _fetch: FetchRows
    _write: WriteStatement

    def __init__(self, statements: KvStatements) -> None:
        self._sql = statements

    @abc.abstractmethod
    async def _write_rows(self, sql: str, rows: list[tuple[Any, ...]]) -> None: ...

    async def get(self, key: str) -> bytes | None:
        rows = await self._fetch(self._sql.get, (key, time.time()))
        return rows[0][0] if rows else None

    async def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        """Return the live keys' values; more keys than one query binds take several."""
        sql = self._sql
        now = time.time()
        chunk = sql.get_chunk
        if len(keys) <= chunk:
            return dict(await self._fetch(sql.get_many(len(keys)), (*keys, now)))
        found: dict[str, bytes] = {}
        for start in range(0, len(keys), chunk):
            part = keys[start : start + chunk]
            found.update(await self._fetch(sql.get_many(len(part)), (*part, now)))
        return found

    async def exists(self, key: str) -> bool:
        return bool(await self._fetch(self._sql.exists, (key, time.time())))

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        expires_at = None if ttl is None else time.time() + ttl
        await self._write(self._sql.set, (key, value, expires_at))

    async def set_many(
        self, items: Mapping[str, bytes], ttl: float | None = None
    ) -> None:
        """Upsert every item in one statement, or in one transaction when too many."""
        expires_at = _deadline(ttl)
        sql = self._sql
        if len(items) <= sql.set_chunk:
            parameters: list[Any] = []
            for key, value in items.items():
                parameters += (key, value, expires_at)
            await self._write(sql.set_many(len(items)), parameters)
            return
        rows = [(key, value, expires_at) for key, value in items.items()]
        await self._write_rows(sql.set, rows)

    async def update(self, key: str, value: bytes) -> bool:
        return await self._write(self._sql.update, (value, key, time.time())) > 0

    async def remove(self, key: str) -> None:
        await self._write(self._sql.remove, (key,))

    async def remove_many(self, keys: Sequence[str]) -> None:
        sql = self._sql
        if len(keys) <= sql.remove_chunk:
            await self._write(sql.remove_many(len(keys)), keys)
            return
        await self._write_rows(sql.remove, [(key,) for key in keys])

    async def get_ttl(self, key: str) -> float | None:
        now = time.time()
        rows = await self._fetch(self._sql.get_ttl, (key, now))
        if not rows:
            raise KeyNotFoundError(key)
        expires_at: float | None = rows[0][0]
        if expires_at is None:
            return None
        return max(expires_at - now, _MIN_TTL)

    async def expire(self, key: str, ttl: float) -> bool:
        now = time.time()
        return await self._write(self._sql.expire, (now + ttl, key, now)) > 0


class SqliteKeyValue(_KeyValueOperations):
    """Key-value, cache and key-scan ports outside transactions.

    Reads use the database's reader; each write is one autocommit statement
    on the writer and waits while a transaction holds it.
    """

    def __init__(self, database: SqliteDatabase, statements: KvStatements) -> None:
        super().__init__(statements)
        self._database = database
        self._fetch = database.fetch
        self._write = database.write

    async def _write_rows(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        async with self._database.transaction() as writer:
            await writer.executemany(sql, rows)

    async def scan(self, prefix: str = "") -> AsyncIterator[str]:
        """Yield live keys starting with ``prefix`` in key order, a page at a time.

        No lock or transaction is held between pages.
        """
        sql = self._sql
        rows = await self._fetch(sql.scan_first, (prefix, time.time(), _SCAN_PAGE))
        while rows:
            for (key,) in rows:
                if not key.startswith(prefix):
                    return
                yield key
            if len(rows) < _SCAN_PAGE:
                return
            last = rows[-1][0]
            rows = await self._fetch(sql.scan_next, (last, time.time(), _SCAN_PAGE))

    async def delete_expired(self, batch: int) -> int:
        """Delete expired rows, ``batch`` per statement; return how many went."""
        return await delete_expired(self._database, self._sql, batch)


class SqliteTransaction(_KeyValueOperations):
    """An open ``BEGIN IMMEDIATE`` transaction on the writer connection.

    Reads and writes go to the writer, so reads see this transaction's own
    writes; other connections see none of them before the commit.
    """

    def __init__(self, database: SqliteDatabase, statements: KvStatements) -> None:
        super().__init__(statements)
        self._database = database
        self._writer = database.writer
        self._done = False
        self._fetch = self._fetch_in_transaction
        self._write = self._write_in_transaction

    def _check_active(self) -> None:
        if self._done:
            raise TransactionFailedError(
                "the transaction has already ended; start a new one"
            )

    async def _fetch_in_transaction(
        self, sql: str, parameters: Sequence[Any]
    ) -> list[tuple[Any, ...]]:
        self._check_active()
        return await cast(FetchRows, self._writer.execute_fetchall)(sql, parameters)

    async def _write_in_transaction(self, sql: str, parameters: Sequence[Any]) -> int:
        self._check_active()
        cursor = await self._writer.execute(sql, parameters)
        return cursor.rowcount

    async def _write_rows(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        self._check_active()
        await self._writer.executemany(sql, rows)

    async def commit(self) -> None:
        self._check_active()
        self._done = True
        await self._database.commit()

    async def rollback(self) -> None:
        if self._done:
            return
        self._done = True
        await self._database.rollback()


class SqliteTransactional:
    """Opens :class:`SqliteTransaction` objects; they take turns on the writer."""

    def __init__(self, database: SqliteDatabase, statements: KvStatements) -> None:
        self._database = database
        self._sql = statements

    async def begin(self) -> SqliteTransaction:
        await self._database.begin()
        return SqliteTransaction(self._database, self._sql)


async def delete_expired(
    database: SqliteDatabase, statements: KvStatements, batch: int
) -> int:
    """Delete every expired row, ``batch`` rows per autocommit statement.

    Other writers and transactions get their turn between two statements.
    """
    total = 0
    while True:
        removed = await database.write(statements.delete_expired, (time.time(), batch))
        total += removed
        if removed < batch:
            return total
        await asyncio.sleep(0)


async def sweep_expired(
    database: SqliteDatabase, statements: KvStatements, interval: float, batch: int
) -> None:
    """Delete expired rows every ``interval`` seconds until cancelled."""
    while True:
        await asyncio.sleep(interval)
        try:
            removed = await delete_expired(database, statements, batch)
        except Exception as exc:
            _logger.warning(
                "deleting expired keys from %s in %r failed: %s: %s; retrying in %gs",
                statements.name,
                database.path,
                type(exc).__name__,
                exc,
                interval,
            )
            continue
        if removed:
            _logger.debug(
                "deleted %d expired keys from %s in %r",
                removed,
                statements.name,
                database.path,
            )
