"""PostgreSQL transactions: isolation, conflicts, deadlocks and cancellation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import pytest

import datafx
from datafx.connfx.adapters.postgres import PostgresConnection

pytestmark = pytest.mark.server

OpenConnection = Callable[..., Awaitable[PostgresConnection]]


async def _idle_in_transaction(conn: PostgresConnection, app: str) -> int:
    rows = await conn.query(
        "SELECT count(*) AS n FROM pg_stat_activity "
        "WHERE application_name = $1 AND state LIKE 'idle in transaction%'",
        app,
    )
    return int(rows[0]["n"])


async def test_default_isolation_is_read_committed(
    open_connection: OpenConnection,
) -> None:
    conn = await open_connection()
    tx_store = datafx.TransactionalStore(conn)
    async with tx_store.transaction() as tx:
        await tx.set("k", 1)
        port = tx._tx  # the adapter's transaction, to reach its connection
        level = await port._connection.fetchval("SHOW transaction_isolation")  # type: ignore[attr-defined]
    assert level == "read committed"


async def test_serializable_on_request(open_connection: OpenConnection) -> None:
    conn = await open_connection(isolation="serializable")
    async with datafx.TransactionalStore(conn).transaction() as tx:
        await tx.set("k", 1)
        level = await tx._tx._connection.fetchval("SHOW transaction_isolation")  # type: ignore[attr-defined]
    assert level == "serializable"


async def test_serialization_failure_is_retryable(
    open_connection: OpenConnection,
) -> None:
    conn = await open_connection(isolation="serializable")
    store = datafx.Store(conn)
    await store.set("counter", 0)
    tx_store = datafx.TransactionalStore(conn)
    first_read = asyncio.Event()
    second_blocked = asyncio.Event()

    async def first() -> None:
        async with tx_store.transaction() as tx:
            value = await tx.get("counter")
            first_read.set()
            await second_blocked.wait()
            await tx.set("counter", value + 1)

    async def second() -> None:
        await first_read.wait()
        async with tx_store.transaction() as tx:
            waiting = asyncio.create_task(tx.get("counter"))
            await asyncio.sleep(0.1)  # blocked on the first one's row lock
            second_blocked.set()
            value = await waiting
            await tx.set("counter", value + 1)

    results = await asyncio.gather(first(), second(), return_exceptions=True)
    assert results[0] is None
    failure = results[1]
    assert isinstance(failure, datafx.TransactionFailedError)
    assert failure.retryable
    assert "40001" in str(failure)
    assert await store.get("counter") == 1


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
            await tx.get(second)

    results = await asyncio.gather(
        lock_in_order("a", "b"), lock_in_order("b", "a"), return_exceptions=True
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1
    assert isinstance(failures[0], datafx.TransactionFailedError)
    assert failures[0].retryable
    assert "40P01" in str(failures[0])


async def test_cancelled_transaction_rolls_back_cleanly(
    open_connection: OpenConnection,
) -> None:
    app = f"datafx-cancel-{uuid.uuid4().hex[:8]}"
    conn = await open_connection(pool_size=1, pool_min=1, application_name=app)
    observer = await open_connection()
    store = datafx.Store(conn)
    await store.set("k", "before")
    tx_store = datafx.TransactionalStore(conn)
    inside = asyncio.Event()

    async def hang() -> None:
        async with tx_store.transaction() as tx:
            await tx.set("k", "during")
            inside.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(hang())
    await inside.wait()
    assert await _idle_in_transaction(observer, app) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await store.get("k") == "before"
    assert await _idle_in_transaction(observer, app) == 0
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
    # Both pooled connections are usable again.
    await asyncio.gather(store.set("x", 1), store.set("y", 2))
    assert await store.get_many(["x", "y"]) == {"x": 1, "y": 2}
