"""Configuration errors, options and connection details of the SQLite backend."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiosqlite
import pytest

import datafx
from datafx.connfx import ConnectionState, InvalidConfigError
from datafx.connfx.adapters.sqlite import SqliteConnection
from datafx.connfx.adapters.sqlite.options import check_database_path

OpenConnection = Callable[..., Awaitable[SqliteConnection]]


async def test_missing_folder_is_invalid_config(
    open_connection: OpenConnection, tmp_path: Path
) -> None:
    path = tmp_path / "missing" / "data.db"
    with pytest.raises(InvalidConfigError) as info:
        await open_connection(f"sqlite:///{path}")
    message = str(info.value)
    assert str(path.parent) in message
    assert "does not exist" in message
    assert "create it" in message
    assert not path.parent.exists()


async def test_folder_sqlite_cannot_write_is_invalid_config(
    open_connection: OpenConnection,
) -> None:
    # /proc accepts no new files, even from root, who passes every
    # permission-bit check; the error comes from SQLite's failed open.
    path = "/proc/datafx-test.db"
    with pytest.raises(InvalidConfigError) as info:
        await open_connection(f"sqlite:///{path}")
    assert path in str(info.value)
    assert not await asyncio.to_thread(os.path.exists, path)


def test_folder_without_write_permission_is_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stands in for a folder without write permission, which root cannot see
    # through os.access: the check must ask for W_OK on the folder.
    real_access = os.access
    folder = str(tmp_path)

    def access(path: str, mode: int) -> bool:
        if path == folder and mode & os.W_OK:
            return False
        return real_access(path, mode)

    monkeypatch.setattr(os, "access", access)
    with pytest.raises(InvalidConfigError) as info:
        check_database_path(str(tmp_path / "data.db"))
    message = str(info.value)
    assert folder in message
    assert "not writable" in message


async def test_path_that_is_a_folder_is_rejected(
    open_connection: OpenConnection, tmp_path: Path
) -> None:
    with pytest.raises(InvalidConfigError, match="is a folder"):
        await open_connection(f"sqlite:///{tmp_path}")


async def test_file_that_is_not_sqlite_is_rejected(
    open_connection: OpenConnection, db_path: Path, dsn: str
) -> None:
    text = b"this is not a database file, just some text " * 100
    await asyncio.to_thread(db_path.write_bytes, text)
    with pytest.raises(InvalidConfigError) as info:
        await open_connection(dsn)
    assert str(db_path) in str(info.value)
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)


async def test_unknown_option_lists_known_options(
    open_connection: OpenConnection, dsn: str
) -> None:
    with pytest.raises(InvalidConfigError) as info:
        await open_connection(dsn + "?synchronus=FULL")
    message = str(info.value)
    assert "synchronus" in message
    for known in ("busy_timeout", "cleanup_batch", "cleanup_interval", "synchronous"):
        assert known in message


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("synchronous=SOMETIMES", "synchronous"),
        ("busy_timeout=-1", "busy_timeout"),
        ("busy_timeout=soon", "busy_timeout"),
        ("cleanup_interval=nan", "cleanup_interval"),
        ("cleanup_batch=0", "cleanup_batch"),
        ("cleanup_batch=1.5", "cleanup_batch"),
        ("table=sqlite_mine", "table"),
        ("table=", "table"),
    ],
)
async def test_invalid_option_values_are_rejected(
    open_connection: OpenConnection, dsn: str, db_path: Path, query: str, name: str
) -> None:
    with pytest.raises(InvalidConfigError, match=name):
        await open_connection(f"{dsn}?{query}")
    assert not await asyncio.to_thread(db_path.exists)


async def test_synchronous_defaults_to_normal(
    open_connection: OpenConnection, dsn: str
) -> None:
    conn = await open_connection(dsn)
    rows = list(await conn.raw.execute_fetchall("PRAGMA synchronous"))
    assert rows[0][0] == 1  # NORMAL
    assert conn.health_details()["synchronous"] == "NORMAL"


async def test_synchronous_full_from_dsn(
    open_connection: OpenConnection, dsn: str
) -> None:
    conn = await open_connection(dsn + "?synchronous=full")
    rows = list(await conn.raw.execute_fetchall("PRAGMA synchronous"))
    assert rows[0][0] == 2  # FULL
    assert conn.health_details()["synchronous"] == "FULL"


async def test_properties_override_dsn_options(
    open_connection: OpenConnection, dsn: str
) -> None:
    conn = await open_connection(dsn + "?busy_timeout=9", busy_timeout=0.25)
    assert conn.options.busy_timeout == 0.25
    rows = list(await conn.raw.execute_fetchall("PRAGMA busy_timeout"))
    assert rows[0][0] == 250


async def test_table_option_with_quote_in_name(
    open_connection: OpenConnection, dsn: str, db_path: Path
) -> None:
    conn = await open_connection(dsn, table='my "kv" table')
    store = datafx.Store(conn)
    await store.set("k", 1)
    assert await store.get("k") == 1
    with sqlite3.connect(db_path) as probe:
        rows = probe.execute('SELECT key FROM "my ""kv"" table"').fetchall()
    assert rows == [("k",)]


async def test_newer_schema_version_is_rejected(
    open_connection: OpenConnection, dsn: str, db_path: Path
) -> None:
    conn = await open_connection(dsn)
    await conn.close()
    with sqlite3.connect(db_path) as probe:
        probe.execute("UPDATE datafx_meta SET value = '99' WHERE name = 'kv:datafx_kv'")
    with pytest.raises(InvalidConfigError, match="newer"):
        await open_connection(dsn)


async def test_health_check_reports_latency_and_path(
    open_connection: OpenConnection, dsn: str, db_path: Path
) -> None:
    conn = await open_connection(dsn)
    status = await conn.health_check()
    assert status.healthy
    assert 0 < status.latency < 5
    assert status.details["path"] == str(db_path)
    assert status.details["journal_mode"] == "wal"
    await conn.close()
    assert conn.state is ConnectionState.DISCONNECTED
    assert not (await conn.health_check()).healthy


async def test_raw_is_the_writer_connection(
    open_connection: OpenConnection, dsn: str
) -> None:
    conn = await open_connection(dsn)
    assert isinstance(conn.raw, aiosqlite.Connection)
    assert conn.raw is conn.database.writer
    assert conn.database.reader is not conn.database.writer


async def test_relative_path_resolves_against_working_folder(
    open_connection: OpenConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    conn = await open_connection("sqlite:///relative.db")
    await datafx.Store(conn).set("k", 1)
    assert conn.database.path == str(tmp_path / "relative.db")
    assert (tmp_path / "relative.db").exists()
