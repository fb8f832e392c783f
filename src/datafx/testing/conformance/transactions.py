"""Conformance tests for ``datafx.TransactionalStore``."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

import datafx
from datafx.testing.fixtures import Backend


class _AbortError(Exception):
    """Raised by a test to leave a transaction block."""


def _tx_store(backend: Backend) -> datafx.TransactionalStore:
    if not backend.capabilities.transactions:
        with pytest.raises(datafx.ConnectionNotSupportedError):
            datafx.TransactionalStore(backend.conn)
        pytest.skip(f"{backend.spec.id} has no transactions")
    return datafx.TransactionalStore(backend.conn)


async def test_commit_makes_writes_visible(backend: Backend) -> None:
    tx_store = _tx_store(backend)
    store = datafx.Store(backend.conn)
    await store.set(backend.key("gone"), 0)
    async with tx_store.transaction() as tx:
        await tx.set(backend.key("a"), 1)
        await tx.set_many({backend.key("b"): 2, backend.key("c"): 3})
        await tx.remove(backend.key("gone"))
    assert await store.get_many([backend.key(k) for k in ("a", "b", "c", "gone")]) == {
        backend.key("a"): 1,
        backend.key("b"): 2,
        backend.key("c"): 3,
    }


async def test_reads_see_own_writes(backend: Backend) -> None:
    tx_store = _tx_store(backend)
    await datafx.Store(backend.conn).set(backend.key("old"), "before")
    async with tx_store.transaction() as tx:
        await tx.set(backend.key("new"), {"x": 1})
        assert await tx.get(backend.key("new")) == {"x": 1}
        await tx.update(backend.key("old"), "after")
        assert await tx.get(backend.key("old")) == "after"
        await tx.remove(backend.key("new"))
        assert not await tx.exists(backend.key("new"))
        with pytest.raises(datafx.KeyNotFoundError):
            await tx.get(backend.key("new"))
        await tx.set_raw(backend.key("raw"), b'"raw"')
        assert await tx.get_many([backend.key("raw"), backend.key("old")]) == {
            backend.key("raw"): "raw",
            backend.key("old"): "after",
        }
        assert await tx.get_raw(backend.key("raw")) == b'"raw"'


async def test_writes_invisible_before_commit(backend: Backend) -> None:
    tx_store = _tx_store(backend)
    store = datafx.Store(backend.conn)
    await store.set(backend.key("existing"), "committed")
    async with tx_store.transaction() as tx:
        await tx.set(backend.key("pending"), 1)
        await tx.update(backend.key("existing"), "uncommitted")
        assert not await store.exists(backend.key("pending"))
        assert await store.get(backend.key("existing")) == "committed"
        if backend.capabilities.shared_between_connections:
            other = datafx.Store(await backend.connect())
            assert not await other.exists(backend.key("pending"))
            assert await other.get(backend.key("existing")) == "committed"
    assert await store.get(backend.key("pending")) == 1
    assert await store.get(backend.key("existing")) == "uncommitted"


async def test_exception_rolls_back_and_propagates(backend: Backend) -> None:
    tx_store = _tx_store(backend)
    store = datafx.Store(backend.conn)
    await store.set(backend.key("kept"), "original")
    error = _AbortError("stop here")
    with pytest.raises(_AbortError) as info:
        async with tx_store.transaction() as tx:
            await tx.set(backend.key("new"), 1)
            await tx.update(backend.key("kept"), "changed")
            raise error
    assert info.value is error
    assert not await store.exists(backend.key("new"))
    assert await store.get(backend.key("kept")) == "original"


async def test_execute_transaction_returns_result(backend: Backend) -> None:
    tx_store = _tx_store(backend)

    async def move(tx: datafx.Transaction) -> int:
        await tx.set(backend.key("from"), 0)
        await tx.set(backend.key("to"), 10)
        return 10

    assert await tx_store.execute_transaction(move) == 10
    store = datafx.Store(backend.conn)
    assert await store.get(backend.key("to")) == 10


async def test_execute_transaction_rolls_back_on_error(backend: Backend) -> None:
    tx_store = _tx_store(backend)

    async def failing(tx: datafx.Transaction) -> None:
        await tx.set(backend.key(), "partial")
        raise _AbortError("caller error")

    with pytest.raises(_AbortError, match="caller error"):
        await tx_store.execute_transaction(failing)
    assert not await datafx.Store(backend.conn).exists(backend.key())


async def test_update_of_missing_key_inside_transaction(backend: Backend) -> None:
    tx_store = _tx_store(backend)
    with pytest.raises(datafx.KeyNotFoundError):
        async with tx_store.transaction() as tx:
            await tx.update(backend.key("absent"), 1)
    assert not await datafx.Store(backend.conn).exists(backend.key("absent"))


async def test_cancelled_transaction_rolls_back_and_leaves_connection_clean(
    backend: Backend,
) -> None:
    tx_store = _tx_store(backend)
    store = datafx.Store(backend.conn)
    entered = asyncio.Event()

    async def slow_transaction() -> None:
        async with tx_store.transaction() as tx:
            await tx.set(backend.key("cancelled"), 1)
            entered.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(slow_transaction())
    async with asyncio.timeout(10):
        await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    async with asyncio.timeout(10):
        async with tx_store.transaction() as tx:
            assert not await tx.exists(backend.key("cancelled"))
            await tx.set(backend.key("next"), 2)
        await store.set(backend.key("plain"), 3)
    assert not await store.exists(backend.key("cancelled"))
    assert await store.get(backend.key("next")) == 2
    assert await store.get(backend.key("plain")) == 3


async def test_concurrent_increments_with_retries_lose_nothing(
    backend: Backend,
) -> None:
    tx_store = _tx_store(backend)
    store = datafx.Store(backend.conn)
    await store.set(backend.key("counter"), 0)

    async def increment(tx: datafx.Transaction) -> None:
        value = await tx.get(backend.key("counter"), int)
        await asyncio.sleep(0)
        await tx.set(backend.key("counter"), value + 1)

    async with asyncio.timeout(60):
        await asyncio.gather(
            *(tx_store.execute_transaction(increment, retries=50) for _ in range(10))
        )
    assert await store.get(backend.key("counter")) == 10


async def test_ttl_inside_transaction(backend: Backend) -> None:
    tx_store = _tx_store(backend)
    if not backend.capabilities.cache:
        pytest.skip(f"{backend.spec.id} has no cache behavior")
    async with tx_store.transaction() as tx:
        await tx.set(backend.key(), "v", ttl=timedelta(seconds=30))
        remaining = await tx.get_ttl(backend.key())
        assert remaining is not None
        assert remaining > timedelta(seconds=25)
        await tx.set(backend.key("forever"), "v")
        assert await tx.get_ttl(backend.key("forever")) is None
    remaining = await datafx.Cache(backend.conn).get_ttl(backend.key())
    assert remaining is not None
    assert remaining > timedelta(seconds=25)


async def test_invalid_values_inside_transaction_write_nothing(
    backend: Backend,
) -> None:
    tx_store = _tx_store(backend)
    with pytest.raises(datafx.MarshalError):
        async with tx_store.transaction() as tx:
            await tx.set(backend.key("ok"), 1)
            await tx.set(backend.key("bad"), float("inf"))
    store = datafx.Store(backend.conn)
    assert await store.get_many([backend.key("ok"), backend.key("bad")]) == {}


async def test_nested_transaction_is_rejected(backend: Backend) -> None:
    tx_store = _tx_store(backend)
    store = datafx.Store(backend.conn)
    async with asyncio.timeout(10):
        async with tx_store.transaction() as outer:
            await outer.set(backend.key("outer"), 1)
            with pytest.raises(datafx.NestedTransactionError):
                async with tx_store.transaction():
                    pass
            await outer.set(backend.key("after"), 2)
    assert await store.get(backend.key("outer")) == 1
    assert await store.get(backend.key("after")) == 2
    async with tx_store.transaction() as tx:
        await tx.set(backend.key("next"), 3)
    assert await store.get(backend.key("next")) == 3


async def test_retries_must_be_non_negative(backend: Backend) -> None:
    tx_store = _tx_store(backend)

    async def noop(tx: datafx.Transaction) -> None:
        return None

    with pytest.raises(ValueError, match="retries"):
        await tx_store.execute_transaction(noop, retries=-1)


__all__ = [name for name in dir() if name.startswith("test_")]
