"""Transactions on one pooled PostgreSQL connection.

A transaction borrows a connection for its whole life and runs
``BEGIN ISOLATION LEVEL <isolation>``. Reads inside it lock the rows they
return (``SELECT ... FOR UPDATE``), so a read-modify-write cannot lose a
concurrent update even at READ COMMITTED. A serialization failure (40001) or a
deadlock (40P01), on any statement or on the commit, raises
``TransactionFailedError(retryable=True)``; PostgreSQL has then aborted the
transaction, and the caller's rollback releases the connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar

import asyncpg

from datafx.connfx.adapters.postgres.kv import KvOperations, KvStatements
from datafx.connfx.adapters.postgres.pool import PostgresPool
from datafx.connfx.adapters.sqlbase.lazy import Once
from datafx.connfx.adapters.sqlbase.names import TableNames
from datafx.connfx.errors import TransactionFailedError

__all__ = ["PostgresTransaction", "PostgresTransactional"]

T = TypeVar("T")

_RETRYABLE = (asyncpg.SerializationError, asyncpg.DeadlockDetectedError)


async def _guard(operation: Awaitable[T]) -> T:
    """Await ``operation``; raise a retryable ``TransactionFailedError`` on conflict."""
    try:
        return await operation
    except _RETRYABLE as exc:
        raise TransactionFailedError(
            f"PostgreSQL transaction conflict ({exc.sqlstate}): "
            f"{type(exc).__name__}: {exc}; run the transaction again",
            retryable=True,
        ) from exc


class PostgresTransaction:
    """An open transaction; every method runs on its one connection."""

    def __init__(
        self, pool: PostgresPool, connection: Any, transaction: Any, ops: KvOperations
    ) -> None:
        self._pool = pool
        self._connection = connection
        self._transaction = transaction
        self._ops = ops
        self._finished = False

    def _active(self) -> Any:
        if self._finished:
            raise TransactionFailedError(
                "the PostgreSQL transaction has already ended; start a new one"
            )
        return self._connection

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
        connection = self._active()
        self._finished = True
        try:
            await _guard(self._transaction.commit())
        except BaseException:
            await self._end(connection, rollback=True)
            raise
        await self._end(connection, rollback=False)

    async def rollback(self) -> None:
        if self._finished and self._connection is None:
            return
        self._finished = True
        await self._end(self._connection, rollback=True)

    async def _end(self, connection: Any, *, rollback: bool) -> None:
        """Roll back if asked, then return the connection, even when cancelled.

        asyncpg's pool waits for a cancelled statement to end and rolls back
        any open transaction before the connection is lent again.
        """
        if connection is None:
            return
        self._connection = None
        clean = True
        try:
            if rollback and not connection.is_closed():
                await self._transaction.rollback()
        except asyncpg.InterfaceError:
            # The transaction had already failed (a conflict on commit) or a
            # cancelled statement is still winding down; the pool's full reset
            # rolls back whatever is left before anyone borrows the connection.
            clean = False
        except BaseException:
            clean = False
            raise
        finally:
            await asyncio.shield(self._pool.give_back(connection, clean=clean))


class PostgresTransactional:
    """Opens transactions at the configured isolation level."""

    def __init__(
        self, pool: PostgresPool, names: TableNames, ready: Once, isolation: str
    ) -> None:
        self._pool = pool
        self._ready = ready
        self._isolation = isolation.lower().replace(" ", "_")
        self._ops = KvOperations(KvStatements.build(names, lock=" FOR UPDATE"))

    async def begin(self) -> PostgresTransaction:
        await self._ready.ensure()
        connection = await self._pool.borrow()
        transaction = connection.transaction(isolation=self._isolation)
        try:
            await transaction.start()
        except BaseException:
            await asyncio.shield(self._pool.give_back(connection, clean=False))
            raise
        return PostgresTransaction(self._pool, connection, transaction, self._ops)
