"""MySQL transactions: isolation, deadlocks, retries and cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

import datafx
from datafx.connfx.adapters.mysql import MySqlConnection

pytestmark = pytest.mark.server

OpenConnection = Callable[..., Awaitable[MySqlConnection]]


async def _isolation_inside(conn: MySqlConnection) -> str:
    """Return the isolation level InnoDB reports for a datafx transaction."""
    async with datafx.TransactionalStore(conn).transaction() as tx:
        await tx.set("k", 1)
        connection = tx._tx._connection  # type: ignore[attr-defined]
        async with connection.cursor() as cursor:
            await cursor.execute("SELECT CONNECTION_ID()")
            (thread_id,) = await cursor.fetchone()
        # Asked from another connection, so the query is outside the
        # transaction. InnoDB refreshes this table at most every 0.1 s.
        for _ in range(20):
            rows = await conn.query(
                "SELECT trx_isolation_level AS level "
                "FROM information_schema.innodb_trx WHERE trx_mysql_thread_id = %s",
                thread_id,
            )
            if rows:
                return str(rows[0]["level"])
            await asyncio.sleep(0.05)
    raise AssertionError(f"no InnoDB transaction found for thread {thread_id}")


async def test_default_isolation_is_read_committed(
    open_connection: OpenConnection,
) -> None:
    assert await _isolation_inside(await open_connection()) == "READ COMMITTED"


async def test_serializable_on_request(open_connection: OpenConnection) -> None:
    conn = await open_connection(isolation="serializable")
    # NOTE: information_schema.innodb_trx did not list these SERIALIZABLE
    # transactions reliably on MariaDB 10.11, so this checks the statement
    # the adapter sends before START TRANSACTION.
    statement = conn.transactional._isolation  # type: ignore[union-attr]
    assert statement == "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"
    async with datafx.TransactionalStore(conn).transaction() as tx:
        await tx.set("k", 1)
    assert await datafx.Store(conn).get("k") == 1


async def test_deadlock_is_retryable(open_connection: OpenConnection) -> None:
    conn = await open_connection()
    store = datafx.Store(conn)
    await store.set_many({"a": 0, "b": 0})
    tx_store = datafx.TransactionalStore(conn)
    both_locked = asyncio.Barrier(2)

    async def lock_in_order(first: str, second: str) -> None:
        async with tx_store.transaction() as tx:
            await tx.get(first)
            await both_locked.wait()
            await tx.set(second, 1)

    results = await asyncio.gather(
        lock_in_order("a", "b"), lock_in_order("b", "a"), return_exceptions=True
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1
    assert isinstance(failures[0], datafx.TransactionFailedError)
    assert failures[0].retryable
    assert "1213" in str(failures[0])


async def test_concurrent_increments_retry_to_exact_total(
    open_connection: OpenConnection,
) -> None:
    conn = await open_connection(isolation="serializable", pool_size=8)
    store = datafx.Store(conn)
    await store.set("counter", 0)
    tx_store = datafx.TransactionalStore(conn)

    async def increment(tx: datafx.Transaction) -> None:
        await tx.set("counter", await tx.get("counter") + 1)

    await asyncio.gather(
        *(tx_store.execute_transaction(increment, retries=50) for _ in range(20))
    )
    assert await store.get("counter") == 20


async def test_cancelled_transaction_rolls_back_cleanly(
    open_connection: OpenConnection,
) -> None:
    conn = await open_connection(pool_size=1, pool_min=1)
    store = datafx.Store(conn)
    await store.set("k", "before")
    inside = asyncio.Event()

    async def hang() -> None:
        async with datafx.TransactionalStore(conn).transaction() as tx:
            await tx.set("k", "during")
            inside.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(hang())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await store.get("k") == "before"
    # The pool's one connection is back, outside any transaction.
    assert await conn.query("SELECT @@in_transaction AS t") == [{"t": 0}]
    assert conn.health_details()["pool_idle"] == 1


async def test_cancel_while_blocked_on_a_lock(open_connection: OpenConnection) -> None:
    conn = await open_connection(pool_size=2)
    store = datafx.Store(conn)
    await store.set("k", 0)
    tx_store = datafx.TransactionalStore(conn)
    async with tx_store.transaction() as holder:
        await holder.get("k")

        async def blocked() -> None:
            async with tx_store.transaction() as tx:
                await tx.set("k", await tx.get("k") + 100)

        task = asyncio.create_task(blocked())
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await holder.set("k", 1)
    assert await store.get("k") == 1
    await asyncio.gather(store.set("x", 1), store.set("y", 2))
    assert await store.get_many(["x", "y"]) == {"x": 1, "y": 2}
