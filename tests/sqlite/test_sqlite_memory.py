"""``sqlite://:memory:``: one connection serves reads and writes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

import datafx
from datafx.connfx.adapters.sqlite import SqliteConnection

OpenConnection = Callable[..., Awaitable[SqliteConnection]]

MEMORY = "sqlite://:memory:"


async def test_memory_database_supports_every_port(
    open_connection: OpenConnection,
) -> None:
    conn = await open_connection(MEMORY)
    assert conn.database.reader is conn.database.writer
    assert conn.health_details()["path"] == ":memory:"
    store = datafx.Store(conn)
    cache = datafx.Cache(conn)
    await store.set_many({"a": 1, "b": 2})
    await cache.set("t", "v", ttl=30)
    remaining = await cache.get_ttl("t")
    assert remaining is not None
    assert remaining > timedelta(seconds=25)
    async with datafx.TransactionalStore(conn).transaction() as tx:
        await tx.update("a", 10)
        assert await tx.get("a") == 10
    assert await store.get_many(["a", "b", "t"]) == {"a": 10, "b": 2, "t": "v"}
    assert (await conn.health_check()).healthy


async def test_memory_databases_are_private(open_connection: OpenConnection) -> None:
    first = await open_connection(MEMORY)
    second = await open_connection(MEMORY)
    await datafx.Store(first).set("k", 1)
    assert not await datafx.Store(second).exists("k")


async def test_memory_reads_wait_for_commit(open_connection: OpenConnection) -> None:
    conn = await open_connection(MEMORY)
    store = datafx.Store(conn)
    await store.set("k", "before")
    async with datafx.TransactionalStore(conn).transaction() as tx:
        await tx.set("k", "during")
        reader = asyncio.create_task(store.get("k"))
        await asyncio.sleep(0.05)
        assert not reader.done()
    async with asyncio.timeout(5):
        assert await reader == "during"


async def test_memory_rollback_discards_writes(open_connection: OpenConnection) -> None:
    conn = await open_connection(MEMORY)
    with pytest.raises(LookupError):
        async with datafx.TransactionalStore(conn).transaction() as tx:
            await tx.set("k", 1)
            raise LookupError("abort")
    assert not await datafx.Store(conn).exists("k")
