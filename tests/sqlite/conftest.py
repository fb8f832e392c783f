"""Fixtures for the SQLite backend tests: fresh database files and open connections."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from datafx.connfx import ConfigTarget, Registry
from datafx.connfx.adapters.sqlite import SqliteConnection

CHILD_SCRIPT = Path(__file__).with_name("child.py")

OpenConnection = Callable[..., Awaitable[SqliteConnection]]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data.db"


@pytest.fixture
def dsn(db_path: Path) -> str:
    return f"sqlite:///{db_path}"


@pytest_asyncio.fixture
async def open_connection() -> AsyncIterator[OpenConnection]:
    """Return ``open(dsn, **properties)``; every connection closes after the test."""
    registry = Registry.with_defaults()
    count = 0

    async def open_(dsn: str, **properties: Any) -> SqliteConnection:
        nonlocal count
        count += 1
        target = ConfigTarget(dsn=dsn, properties=properties)
        conn = await registry.add_connection(f"c{count}", target)
        assert isinstance(conn, SqliteConnection)
        return conn

    try:
        yield open_
    finally:
        await registry.close()


@pytest.fixture
def run_child() -> Callable[..., Awaitable[str]]:
    """Return ``run(*args)``, which runs ``child.py`` in a new Python process.

    ``run`` returns the child's output and fails the test when the child fails
    or takes longer than a minute.
    """
    return _run_child


async def _run_child(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CHILD_SCRIPT),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(60):
            stdout, stderr = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, stderr.decode()
    return stdout.decode().strip()
