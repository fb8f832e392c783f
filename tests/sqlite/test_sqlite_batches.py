"""Batches larger than one statement binds, and key scans."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import datafx
from datafx.connfx.adapters.sqlite import SqliteConnection
from datafx.connfx.adapters.sqlite.kv import SqliteKeyValue, variable_limit
from datafx.connfx.ports import KeyScanPort

OpenConnection = Callable[..., Awaitable[SqliteConnection]]


async def test_batches_beyond_variable_limit(
    open_connection: OpenConnection, dsn: str
) -> None:
    conn = await open_connection(dsn)
    store = datafx.Store(conn)
    count = variable_limit() + 10
    items = {f"k{index}": index for index in range(count)}
    await store.set_many(items)
    assert await store.get_many(list(items)) == items
    await store.remove_many(list(items)[1:])
    assert await store.get_many(list(items)) == {"k0": 0}


async def test_scan_yields_keys_with_prefix(
    open_connection: OpenConnection, dsn: str
) -> None:
    conn = await open_connection(dsn)
    kv = conn.key_value
    assert isinstance(kv, KeyScanPort)
    assert isinstance(kv, SqliteKeyValue)
    store = datafx.Store(conn)
    expected = {f"user:{index:04d}" for index in range(1200)}
    await store.set_many({key: 1 for key in expected})
    await store.set_many({"user_x": 1, "users": 1, "use": 1, "%user:": 1})
    await datafx.Cache(conn).set("user:expired", 1, ttl=0.001)
    await store.set("user:%_literal", 1)
    await asyncio.sleep(0.01)  # "user:expired" is past its deadline
    found = [key async for key in kv.scan("user:")]
    assert found == sorted(found)
    assert set(found) == expected | {"user:%_literal"}
    assert [key async for key in kv.scan("user:%_")] == ["user:%_literal"]
    everything = [key async for key in kv.scan()]
    assert len(everything) == len(expected) + 5
