"""Durability, other processes and readers during writes."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import datafx
from datafx.connfx.adapters.sqlite import SqliteConnection

OpenConnection = Callable[..., Awaitable[SqliteConnection]]
RunChild = Callable[..., Awaitable[str]]


async def test_data_survives_close_and_reopen(
    open_connection: OpenConnection, dsn: str
) -> None:
    conn = await open_connection(dsn)
    await datafx.Store(conn).set_many({"a": 1, "b": {"nested": [1, 2]}})
    await datafx.Cache(conn).set("ttl", "v", ttl=60)
    await conn.close()

    reopened = await open_connection(dsn)
    store = datafx.Store(reopened)
    assert await store.get_many(["a", "b", "ttl"]) == {
        "a": 1,
        "b": {"nested": [1, 2]},
        "ttl": "v",
    }
    remaining = await datafx.Cache(reopened).get_ttl("ttl")
    assert remaining is not None
    assert timedelta(seconds=55) < remaining <= timedelta(seconds=60)


async def test_file_uses_wal_journal(
    open_connection: OpenConnection, dsn: str, db_path: Path
) -> None:
    conn = await open_connection(dsn)
    await datafx.Store(conn).set("k", 1)
    with sqlite3.connect(db_path) as probe:
        assert probe.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.health_details()["journal_mode"] == "wal"


async def test_second_process_reads_writes(
    open_connection: OpenConnection, dsn: str, run_child: RunChild
) -> None:
    conn = await open_connection(dsn)
    await datafx.Store(conn).set("from-parent", {"n": 1})
    await datafx.Cache(conn).set("with-ttl", 1, ttl=60)

    assert json.loads(await run_child(dsn, "get", "from-parent")) == {"n": 1}
    assert await run_child(dsn, "get", "absent") == "MISSING"
    child_ttl = float(await run_child(dsn, "ttl", "with-ttl"))
    assert 50 < child_ttl <= 60

    await run_child(dsn, "set", "from-child", '["x", 2]')
    assert await datafx.Store(conn).get("from-child") == ["x", 2]


async def test_processes_creating_one_file_at_once(
    open_connection: OpenConnection, dsn: str, db_path: Path, run_child: RunChild
) -> None:
    await asyncio.gather(
        *(run_child(dsn, "set", f"p{index}", str(index)) for index in range(6))
    )
    conn = await open_connection(dsn)
    found = await datafx.Store(conn).get_many([f"p{index}" for index in range(6)])
    assert found == {f"p{index}": index for index in range(6)}
    with sqlite3.connect(db_path) as probe:
        rows = probe.execute("SELECT name, value FROM datafx_meta").fetchall()
    assert rows == [("kv:datafx_kv", "1")]


async def test_readers_run_during_write_transaction(
    open_connection: OpenConnection, dsn: str, run_child: RunChild
) -> None:
    conn = await open_connection(dsn)
    other = await open_connection(dsn)
    store = datafx.Store(conn)
    await store.set("k", "before")
    async with datafx.TransactionalStore(conn).transaction() as tx:
        await tx.set("k", "during")
        await tx.set_many({f"bulk{index}": index for index in range(2000)})
        async with asyncio.timeout(2):
            assert await store.get("k") == "before"
            assert await datafx.Store(other).get("k") == "before"
        # Another process opens the file and reads while the write lock is held.
        async with asyncio.timeout(20):
            assert json.loads(await run_child(dsn, "get", "k")) == "before"
    assert await store.get("k") == "during"
    assert await datafx.Store(other).get("bulk1999") == 1999


async def test_writes_wait_for_open_transaction(
    open_connection: OpenConnection, dsn: str
) -> None:
    conn = await open_connection(dsn)
    other = await open_connection(dsn)
    store = datafx.Store(conn)
    async with datafx.TransactionalStore(conn).transaction() as tx:
        await tx.set("k", "tx")
        same_connection = asyncio.create_task(store.set("k", "after"))
        other_connection = asyncio.create_task(
            datafx.Store(other).set("other", "after")
        )
        await asyncio.sleep(0.3)
        assert not same_connection.done()
        assert not other_connection.done()
    async with asyncio.timeout(5):
        await same_connection
        await other_connection
    assert await store.get("k") == "after"
    assert await store.get("other") == "after"
