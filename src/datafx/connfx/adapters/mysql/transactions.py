"""Transactions on one pooled MySQL or MariaDB connection.

A transaction borrows a connection for its whole life and runs
``SET TRANSACTION ISOLATION LEVEL <isolation>`` then ``START TRANSACTION``.
Reads inside it lock the rows they return (``SELECT ... FOR UPDATE``), so a
read-modify-write cannot lose a concurrent update. A deadlock (1213), a lock
wait timeout (1205) or a changed snapshot (1020, MariaDB 11.6 and later with
``innodb_snapshot_isolation``) raises ``TransactionFailedError(retryable=True)``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar

from asyncmy.errors import MySQLError

from datafx.connfx.adapters.mysql.kv import KvOperations
from datafx.connfx.adapters.mysql.pool import (
    ConnectionStatements,
    MySqlPool,
    execute,
)
from datafx.connfx.adapters.sqlbase.lazy import Once
from datafx.connfx.errors import TransactionFailedError

__all__ = ["MySqlTransaction", "MySqlTransactional", "is_retryable"]

T = TypeVar("T")

# MySQL error codes after which running the transaction again may succeed.
RETRYABLE_CODES = frozenset({1020, 1205, 1213})


def is_retryable(exc: BaseException) -> bool:
    """Return whether ``exc`` is a MySQL conflict worth retrying."""
    return bool(
        isinstance(exc, MySQLError) and exc.args and exc.args[0] in RETRYABLE_CODES
    )


async def _guard(operation: Awaitable[T]) -> T:
    """Await ``operation``; raise a retryable ``TransactionFailedError`` on conflict."""
    try:
        return await operation
    except MySQLError as exc:
        if not is_retryable(exc):
            raise
        raise TransactionFailedError(
            f"MySQL transaction conflict ({exc.args[0]}): {exc.args[-1]}; "
            "run the transaction again",
            retryable=True,
        ) from exc


class MySqlTransaction:
    """An open transaction; every method runs on its one connection."""

    def __init__(self, pool: MySqlPool, connection: Any, ops: KvOperations) -> None:
        self._pool = pool
        self._connection: Any = connection
        self._statements = ConnectionStatements(connection)
        self._ops = ops
        self._finished = False

    def _active(self) -> ConnectionStatements:
        if self._finished:
            raise TransactionFailedError(
                "the MySQL transaction has already ended; start a new one"
            )
        return self._statements

    async def get(self, key: str) -> bytes | None:
        return await _guard(self._ops.get(self._active(), key))

    async def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        return await _guard(self._ops.get_many(self._active(), keys))

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        await _guard(self._ops.set(self._active(), key, value, ttl))

    async def set_many(
        self, items: Mapping[str, bytes], ttl: float | None = None
    ) -> None:
        await _guard(self._ops.set_many(self._active(), items, ttl))

    async def update(self, key: str, value: bytes) -> bool:
        return await _guard(self._ops.update(self._active(), key, value))

    async def remove(self, key: str) -> None:
        await _guard(self._ops.remove(self._active(), key))

    async def remove_many(self, keys: Sequence[str]) -> None:
        await _guard(self._ops.remove_many(self._active(), keys))

    async def exists(self, key: str) -> bool:
        return await _guard(self._ops.exists(self._active(), key))

    async def get_ttl(self, key: str) -> float | None:
        return await _guard(self._ops.get_ttl(self._active(), key))

    async def expire(self, key: str, ttl: float) -> bool:
        return await _guard(self._ops.expire(self._active(), key, ttl))

    async def commit(self) -> None:
        connection = self._active().connection
        self._finished = True
        try:
            await _guard(execute(connection, "COMMIT"))
        except BaseException:
            await self._end(rollback=True)
            raise
        await self._end(rollback=False)

    async def rollback(self) -> None:
        self._finished = True
        await self._end(rollback=True)

    async def _end(self, *, rollback: bool) -> None:
        """Roll back if asked, then return the connection, even when cancelled.

        A ROLLBACK that fails or is cancelled leaves the connection closed or
        inside a transaction; the pool then closes it instead of reusing it,
        and the server rolls back on disconnect.
        """
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            if rollback and connection.connected:
                await execute(connection, "ROLLBACK")
        finally:
            self._pool.give_back(connection)


class MySqlTransactional:
    """Opens transactions at the configured isolation level."""

    def __init__(
        self, pool: MySqlPool, ops: KvOperations, ready: Once, isolation: str
    ) -> None:
        self._pool = pool
        self._ready = ready
        self._ops = ops
        self._isolation = f"SET TRANSACTION ISOLATION LEVEL {isolation}"

    async def begin(self) -> MySqlTransaction:
        await self._ready.ensure()
        connection = await self._pool.borrow()
        try:
            await execute(connection, self._isolation)
            await execute(connection, "START TRANSACTION")
        except BaseException:
            self._pool.give_back(connection)
            raise
        return MySqlTransaction(self._pool, connection, self._ops)
