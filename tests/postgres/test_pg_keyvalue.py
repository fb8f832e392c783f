"""PostgreSQL key-values: hostile keys, size limits, expiry sweeps and migrations."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

import pytest

import datafx
from datafx.connfx.adapters.postgres import PostgresConnection
from datafx.connfx.adapters.sqlbase.limits import KeyTooLongError

OpenConnection = Callable[..., Awaitable[PostgresConnection]]

pytestmark = pytest.mark.server

HOSTILE_KEYS = [
    "it's",
    'say "hi"',
    "a; DROP TABLE users; --",
    "100%_done\\",
    "ключ/键/🔑",
    " padded ",
    "padded",
    "x" * 2000,
]


async def test_hostile_keys_are_data(open_connection: OpenConnection) -> None:
    conn = await open_connection()
    store = datafx.Store(conn)
    for index, key in enumerate(HOSTILE_KEYS):
        await store.set(key, index)
    for index, key in enumerate(HOSTILE_KEYS):
        assert await store.get(key) == index
    assert await store.get_many(HOSTILE_KEYS) == {
        k: i for i, k in enumerate(HOSTILE_KEYS)
    }
    rows = await conn.query(f'SELECT key FROM "{conn.names.prefix}kv"')
    assert sorted(row["key"] for row in rows) == sorted(HOSTILE_KEYS)
    await store.remove_many(HOSTILE_KEYS)
    assert await store.get_many(HOSTILE_KEYS) == {}


async def test_overlong_key_names_the_limit(open_connection: OpenConnection) -> None:
    store = datafx.Store(await open_connection())
    key = os.urandom(4000).hex()  # incompressible, 8000 bytes
    with pytest.raises(KeyTooLongError) as caught:
        await store.set(key, 1)
    assert "2704 bytes" in str(caught.value)
    with pytest.raises(KeyTooLongError):
        await store.set_many({"short": 1, key: 2})
    assert not await store.exists("short")


async def test_update_keeps_expiry(open_connection: OpenConnection) -> None:
    conn = await open_connection()
    cache = datafx.Cache(conn)
    await cache.set("k", 1, ttl=30)
    await datafx.Store(conn).update("k", 2)
    ttl = await cache.get_ttl("k")
    assert ttl is not None
    assert 29 < ttl.total_seconds() <= 30


async def test_sweeper_removes_expired_rows(open_connection: OpenConnection) -> None:
    conn = await open_connection(cleanup_interval=0.05, cleanup_batch=2)
    cache = datafx.Cache(conn)
    for index in range(5):
        await cache.set(f"gone{index}", index, ttl=0.01)
    await cache.set("kept", 1, ttl=60)
    await cache.set("forever", 1)
    table = f'"{conn.names.prefix}kv"'
    for _ in range(100):
        rows = await conn.query(f"SELECT key FROM {table} ORDER BY key")
        if len(rows) == 2:
            break
        await asyncio.sleep(0.05)
    assert [row["key"] for row in rows] == ["forever", "kept"]


async def test_concurrent_first_use_migrates_once(
    open_connection: OpenConnection,
) -> None:
    conns = [await open_connection() for _ in range(6)]
    await asyncio.gather(*(c.ensure_tables() for c in conns))
    await asyncio.gather(
        *(datafx.Store(c).set(f"k{i}", i) for i, c in enumerate(conns))
    )
    rows = await conns[0].query(
        f'SELECT component, version FROM "{conns[0].names.prefix}schema_version" '
        "ORDER BY component"
    )
    assert rows == [
        {"component": "kv", "version": 1},
        {"component": "queue", "version": 1},
    ]


async def test_schema_option_places_tables(open_connection: OpenConnection) -> None:
    conn = await open_connection(schema="datafx_test_schema")
    try:
        await datafx.Store(conn).set("k", 1)
        rows = await conn.query(
            "SELECT count(*) AS n FROM pg_tables "
            "WHERE schemaname = $1 AND tablename = $2",
            "datafx_test_schema",
            f"{conn.names.prefix}kv",
        )
        assert rows == [{"n": 1}]
    finally:
        for suffix in ("kv", "schema_version"):
            await conn.execute(
                f'DROP TABLE IF EXISTS "datafx_test_schema".'
                f'"{conn.names.prefix}{suffix}"'
            )


async def test_scan_keys_pages_by_prefix(open_connection: OpenConnection) -> None:
    store = datafx.Store(await open_connection())
    keys = [f"user:{i:04d}" for i in range(1200)]
    others = ["user;", "usex", "us", "user%x", "ключ:1", "ключ:2", "\U0010ffff"]
    await store.set_many({key: 1 for key in keys + others})
    await datafx.Cache(store.connection).set("user:gone", 1, ttl=0.001)
    await asyncio.sleep(0.01)
    assert [k async for k in store.scan_keys("user:")] == keys
    assert [k async for k in store.scan_keys("ключ")] == ["ключ:1", "ключ:2"]
    assert [k async for k in store.scan_keys("user%")] == ["user%x"]
    assert sorted([k async for k in store.scan_keys()]) == sorted(keys + others)
