"""SQLite transactions: cancellation, lock contention and the write gate."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

import datafx
from datafx.connfx.adapters.sqlite import SqliteConnection
from datafx.connfx.adapters.sqlite.database import WriteGate

OpenConnection = Callable[..., Awaitable[SqliteConnection]]


async def _assert_writer_clean(conn: SqliteConnection, key: str) -> None:
    """A new transaction and an autocommit write both succeed and are visible."""
    tx_store = datafx.TransactionalStore(conn)
    store = datafx.Store(conn)
    async with asyncio.timeout(10):
        async with tx_store.transaction() as tx:
            await tx.set(f"{key}:tx", "tx")
        await store.set(f"{key}:plain", "plain")
    assert not conn.database.gate.exclusive
    assert await store.get_many([f"{key}:tx", f"{key}:plain"]) == {
        f"{key}:tx": "tx",
        f"{key}:plain": "plain",
    }


async def test_cancel_during_transaction_statements(
    open_connection: OpenConnection, dsn: str
) -> None:
    conn = await open_connection(dsn)
    tx_store = datafx.TransactionalStore(conn)
    started = asyncio.Event()

    async def busy_transaction() -> None:
        async with tx_store.transaction() as tx:
            for index in range(100_000):
                await tx.set(f"cancelled{index}", index)
                started.set()

    task = asyncio.create_task(busy_transaction())
    async with asyncio.timeout(10):
        await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    await _assert_writer_clean(conn, "after")
    assert await datafx.Store(conn).get_many(["cancelled0", "cancelled1"]) == {}


async def test_cancel_while_waiting_for_writer(
    open_connection: OpenConnection, dsn: str
) -> None:
    conn = await open_connection(dsn)
    tx_store = datafx.TransactionalStore(conn)
    async with tx_store.transaction() as tx:
        await tx.set("held", 1)
        waiting = asyncio.create_task(tx_store.execute_transaction(_set_waiter))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    assert not await datafx.Store(conn).exists("waiter")
    await _assert_writer_clean(conn, "after")


async def _set_waiter(tx: datafx.Transaction) -> None:
    await tx.set("waiter", 1)


async def test_cancel_during_commit_leaves_writer_clean(
    open_connection: OpenConnection, dsn: str
) -> None:
    conn = await open_connection(dsn)
    assert conn.transactional is not None
    tx = await conn.transactional.begin()
    await tx.set("k", b"1")
    commit = asyncio.create_task(tx.commit())
    await asyncio.sleep(0)  # COMMIT is now queued on the writer's thread
    commit.cancel()
    with pytest.raises(asyncio.CancelledError):
        await commit
    await tx.rollback()  # what the data layer does next; must be harmless
    # COMMIT was queued before the cancellation, so its writes are kept.
    assert await datafx.Store(conn).get_raw("k") == b"1"
    await _assert_writer_clean(conn, "after")


async def test_cancel_while_begin_waits_for_other_connection(
    open_connection: OpenConnection, dsn: str
) -> None:
    holder = await open_connection(dsn)
    waiter = await open_connection(dsn, busy_timeout=5)
    async with datafx.TransactionalStore(holder).transaction() as tx:
        await tx.set("held", 1)
        blocked = asyncio.create_task(
            datafx.TransactionalStore(waiter).execute_transaction(_set_waiter)
        )
        await asyncio.sleep(0.2)  # BEGIN IMMEDIATE now waits in SQLite's busy handler
        assert not blocked.done()
        blocked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocked
    await _assert_writer_clean(waiter, "after")
    assert not await datafx.Store(waiter).exists("waiter")


async def test_lock_held_by_other_connection_is_retryable(
    open_connection: OpenConnection, dsn: str
) -> None:
    holder = await open_connection(dsn)
    impatient = await open_connection(dsn, busy_timeout=0.2)
    async with datafx.TransactionalStore(holder).transaction() as tx:
        await tx.set("held", 1)
        with pytest.raises(datafx.TransactionFailedError) as info:
            async with datafx.TransactionalStore(impatient).transaction() as other:
                await other.set("never", 1)
    assert info.value.retryable
    assert "busy_timeout" in str(info.value)
    await _assert_writer_clean(impatient, "after")


async def test_retries_succeed_once_lock_is_free(
    open_connection: OpenConnection, dsn: str
) -> None:
    holder = await open_connection(dsn)
    impatient = await open_connection(dsn, busy_timeout=0.1)
    release = asyncio.Event()

    async def hold_lock() -> None:
        async with datafx.TransactionalStore(holder).transaction() as tx:
            await tx.set("held", 1)
            await release.wait()

    holding = asyncio.create_task(hold_lock())
    await asyncio.sleep(0.05)
    asyncio.get_running_loop().call_later(0.3, release.set)
    async with asyncio.timeout(10):
        await datafx.TransactionalStore(impatient).execute_transaction(
            _set_waiter, retries=100
        )
        await holding
    assert await datafx.Store(holder).get("waiter") == 1


def _real_busy_error(path: Path) -> sqlite3.OperationalError:
    """Return the error SQLite raises when a second writer finds the file locked."""
    first = sqlite3.connect(path, timeout=0, isolation_level=None)
    second = sqlite3.connect(path, timeout=0, isolation_level=None)
    with closing(first), closing(second):
        first.execute("BEGIN IMMEDIATE")
        try:
            second.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            return exc
        finally:
            first.execute("ROLLBACK")
    raise AssertionError("the second BEGIN IMMEDIATE did not fail")


async def test_busy_commit_is_retryable_and_rolled_back(
    open_connection: OpenConnection,
    dsn: str,
    db_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conn = await open_connection(dsn)
    busy = _real_busy_error(db_path)
    writer = conn.database.writer

    class CommitFailsWriter:
        """Forwards to the real writer, except that COMMIT fails as busy."""

        def __getattr__(self, name: str) -> Any:
            return getattr(writer, name)

        async def execute(self, sql: str, parameters: Any = ()) -> Any:
            if sql == "COMMIT":
                raise busy
            return await writer.execute(sql, parameters)

    monkeypatch.setattr(conn.database, "writer", CommitFailsWriter())
    with pytest.raises(datafx.TransactionFailedError) as info:
        async with datafx.TransactionalStore(conn).transaction() as tx:
            await tx.set("k", 1)
    assert info.value.retryable
    assert info.value.__cause__ is busy
    monkeypatch.setattr(conn.database, "writer", writer)
    assert not await datafx.Store(conn).exists("k")
    await _assert_writer_clean(conn, "after")


async def test_outside_write_from_transaction_task_fails_fast(
    open_connection: OpenConnection, dsn: str
) -> None:
    conn = await open_connection(dsn)
    store = datafx.Store(conn)
    with pytest.raises(datafx.BackendError, match="transaction"):
        async with asyncio.timeout(5):
            async with datafx.TransactionalStore(conn).transaction() as tx:
                await tx.set("inside", 1)
                await store.set("outside", 1)
    assert await store.get_many(["inside", "outside"]) == {}
    await _assert_writer_clean(conn, "after")


async def test_nested_transaction_fails_fast(
    open_connection: OpenConnection, dsn: str
) -> None:
    conn = await open_connection(dsn)
    tx_store = datafx.TransactionalStore(conn)
    with pytest.raises(datafx.NestedTransactionError):
        async with asyncio.timeout(5):
            async with tx_store.transaction() as outer:
                await outer.set("outer", 1)
                async with tx_store.transaction() as inner:
                    await inner.set("inner", 1)
    assert await datafx.Store(conn).get_many(["outer", "inner"]) == {}
    await _assert_writer_clean(conn, "after")


async def test_set_many_in_transaction_over_one_statement(
    open_connection: OpenConnection, dsn: str
) -> None:
    conn = await open_connection(dsn)
    count = 40_000  # more rows than one statement can bind
    items = {f"k{index}": index for index in range(count)}
    with pytest.raises(RuntimeError, match="stop"):
        async with datafx.TransactionalStore(conn).transaction() as tx:
            await tx.set_many(items)
            assert len(await tx.get_many(list(items))) == count
            raise RuntimeError("stop")
    assert await datafx.Store(conn).get_many(["k0", f"k{count - 1}"]) == {}


async def test_gate_orders_shared_and_exclusive() -> None:
    gate = WriteGate()
    events: list[str] = []
    await gate.acquire_shared()
    await gate.acquire_shared()

    async def exclusive() -> None:
        await gate.acquire_exclusive()
        events.append("exclusive")
        await asyncio.sleep(0.01)
        events.append("exclusive done")
        gate.release_exclusive()

    async def late_shared() -> None:
        await gate.acquire_shared()
        events.append("late shared")
        gate.release_shared()

    holder = asyncio.create_task(exclusive())
    await asyncio.sleep(0)
    assert gate.exclusive
    late = asyncio.create_task(late_shared())
    await asyncio.sleep(0.01)
    assert events == []  # two shared holders still run
    gate.release_shared()
    await asyncio.sleep(0)
    assert events == []
    gate.release_shared()
    await asyncio.gather(holder, late)
    assert events == ["exclusive", "exclusive done", "late shared"]
    assert not gate.exclusive


async def test_gate_cancelled_exclusive_waiter_releases() -> None:
    gate = WriteGate()
    await gate.acquire_shared()
    waiter = asyncio.create_task(gate.acquire_exclusive())
    await asyncio.sleep(0)
    assert gate.exclusive
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert not gate.exclusive
    gate.release_shared()
    async with asyncio.timeout(1):
        await gate.acquire_exclusive()
    gate.release_exclusive()
