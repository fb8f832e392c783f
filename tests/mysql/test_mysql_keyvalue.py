"""MySQL key-values: hostile keys, size limits, expiry sweeps and migrations."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

import datafx
from datafx.connfx.adapters.mysql import MySqlConnection
from datafx.connfx.adapters.sqlbase.limits import KeyTooLongError

pytestmark = pytest.mark.server

OpenConnection = Callable[..., Awaitable[MySqlConnection]]

HOSTILE_KEYS = [
    "it's",
    'say "hi"',
    "a; DROP TABLE users; --",
    "back\\slash",
    "100%_done",
    "ключ/键/🔑",
    "Key",
    "key",
    "padded ",
    "padded",
    "x" * 3000,
]


async def test_hostile_keys_are_distinct_data(open_connection: OpenConnection) -> None:
    conn = await open_connection()
    store = datafx.Store(conn)
    for index, key in enumerate(HOSTILE_KEYS):
        await store.set(key, index)
    for index, key in enumerate(HOSTILE_KEYS):
        assert await store.get(key) == index
    expected = {key: index for index, key in enumerate(HOSTILE_KEYS)}
    assert await store.get_many(HOSTILE_KEYS) == expected
    rows = await conn.query(f"SELECT `key` FROM `{conn.names.prefix}kv`")
    assert sorted(bytes(r["key"]).decode() for r in rows) == sorted(HOSTILE_KEYS)


async def test_overlong_key_names_the_limit(open_connection: OpenConnection) -> None:
    store = datafx.Store(await open_connection())
    key = "é" * 1600  # 3200 bytes in UTF-8
    with pytest.raises(KeyTooLongError) as caught:
        await store.set(key, 1)
    assert "3072 bytes" in str(caught.value)
    with pytest.raises(KeyTooLongError):
        await store.set_many({"short": 1, key: 2})
    assert not await store.exists("short")
    assert not await store.exists(key)


async def test_value_over_packet_limit_is_rejected(
    open_connection: OpenConnection,
) -> None:
    conn = await open_connection()
    limit = int((await conn.query("SELECT @@max_allowed_packet AS n"))[0]["n"])
    store = datafx.Store(conn)
    with pytest.raises(datafx.MarshalError, match="max_allowed_packet"):
        await store.set_raw("big", b"x" * limit)
    assert not await store.exists("big")


async def test_update_with_same_value_counts_as_found(
    open_connection: OpenConnection,
) -> None:
    store = datafx.Store(await open_connection())
    await store.set("k", 1)
    await store.update("k", 1)
    assert await store.get("k") == 1


async def test_sweeper_removes_expired_rows(open_connection: OpenConnection) -> None:
    conn = await open_connection(cleanup_interval=0.05, cleanup_batch=2)
    cache = datafx.Cache(conn)
    for index in range(5):
        await cache.set(f"gone{index}", index, ttl=0.01)
    await cache.set("kept", 1, ttl=60)
    await cache.set("forever", 1)
    table = f"`{conn.names.prefix}kv`"
    for _ in range(100):
        rows = await conn.query(f"SELECT `key` FROM {table} ORDER BY `key`")
        if len(rows) == 2:
            break
        await asyncio.sleep(0.05)
    assert [bytes(r["key"]) for r in rows] == [b"forever", b"kept"]


async def test_concurrent_first_use_migrates_once(
    open_connection: OpenConnection,
) -> None:
    conns = [await open_connection() for _ in range(6)]
    await asyncio.gather(*(c.ensure_tables() for c in conns))
    await asyncio.gather(
        *(datafx.Store(c).set(f"k{i}", i) for i, c in enumerate(conns))
    )
    rows = await conns[0].query(
        f"SELECT component, version FROM `{conns[0].names.prefix}schema_version` "
        "ORDER BY component"
    )
    assert rows == [
        {"component": "kv", "version": 1},
        {"component": "queue", "version": 1},
    ]


async def test_scan_keys_pages_by_prefix(open_connection: OpenConnection) -> None:
    store = datafx.Store(await open_connection())
    keys = [f"user:{i:04d}" for i in range(1200)]
    others = [
        "user;",
        "usex",
        "us",
        "user%x",
        "User:1",
        "ключ:1",
        "ключ:2",
        "\U0010ffff",
    ]
    await store.set_many({key: 1 for key in keys + others})
    await datafx.Cache(store.connection).set("user:gone", 1, ttl=0.001)
    await asyncio.sleep(0.01)
    assert [k async for k in store.scan_keys("user:")] == keys
    assert [k async for k in store.scan_keys("ключ")] == ["ключ:1", "ключ:2"]
    assert [k async for k in store.scan_keys("user%")] == ["user%x"]
    assert sorted([k async for k in store.scan_keys()]) == sorted(keys + others)
