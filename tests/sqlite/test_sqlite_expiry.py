"""Expired rows: hidden from reads at once, deleted by the background sweep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

import datafx
from datafx.connfx.adapters.sqlite import SqliteConnection
from datafx.connfx.adapters.sqlite.kv import SqliteKeyValue

OpenConnection = Callable[..., Awaitable[SqliteConnection]]


async def _row_count(conn: SqliteConnection) -> int:
    rows = list(await conn.raw.execute_fetchall("SELECT count(*) FROM datafx_kv"))
    return int(rows[0][0])


async def test_sweep_deletes_expired_rows_in_batches(
    open_connection: OpenConnection, dsn: str
) -> None:
    conn = await open_connection(dsn, cleanup_interval=0.05, cleanup_batch=100)
    cache = datafx.Cache(conn)
    await datafx.Store(conn).set_many({f"short{index}": index for index in range(1000)})
    await datafx.Store(conn).set("permanent", 1)
    await cache.set("long", 1, ttl=60)
    for index in range(1000):
        await cache.expire(f"short{index}", 0.01)
    for _ in range(200):  # up to 10 s
        if await _row_count(conn) == 2:
            break
        await asyncio.sleep(0.05)
    assert await _row_count(conn) == 2
    assert await datafx.Store(conn).get_many(["permanent", "long", "short0"]) == {
        "permanent": 1,
        "long": 1,
    }


async def test_sweep_can_be_disabled(open_connection: OpenConnection, dsn: str) -> None:
    conn = await open_connection(dsn, cleanup_interval=0)
    await datafx.Cache(conn).set("k", 1, ttl=0.01)
    await asyncio.sleep(0.1)
    assert not await datafx.Cache(conn).exists("k")
    assert await _row_count(conn) == 1  # hidden from reads, still stored
    assert isinstance(conn.key_value, SqliteKeyValue)
    assert await conn.key_value.delete_expired(batch=10) == 1
    assert await _row_count(conn) == 0


async def test_sweep_stops_when_connection_closes(
    open_connection: OpenConnection, dsn: str
) -> None:
    conn = await open_connection(dsn, cleanup_interval=0.01)
    name = f"datafx-sqlite-expiry:{conn.name}"
    assert any(task.get_name() == name for task in asyncio.all_tasks())
    await conn.close()
    assert not any(task.get_name() == name for task in asyncio.all_tasks())
    with pytest.raises(ValueError, match="no active connection"):
        await conn.database.reader.execute("SELECT 1")
    with pytest.raises(ValueError, match="no active connection"):
        await conn.database.writer.execute("SELECT 1")


async def test_key_at_its_deadline_counts_as_missing(
    open_connection: OpenConnection, dsn: str
) -> None:
    conn = await open_connection(dsn, cleanup_interval=0)
    now = time.time()
    await conn.raw.execute(
        "INSERT INTO datafx_kv (key, value, expires_at) VALUES (?, ?, ?)",
        ("deadline", b"1", now),
    )
    cache = datafx.Cache(conn)
    assert not await cache.exists("deadline")
    try:
        await cache.get_ttl("deadline")
    except datafx.KeyNotFoundError:
        pass
    else:
        raise AssertionError("get_ttl returned a key whose deadline has passed")
    assert not await datafx.Store(conn).get_many(["deadline"])
