"""Fixtures for the PostgreSQL tests: connections on a table prefix of their own.

Every test gets a fresh table prefix, and every table created under it is
dropped after the test. The tests skip when no server accepts connections
on 127.0.0.1:5432, unless ``DATAFX_REQUIRE_SERVICES=1`` makes that a failure.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio

from datafx.connfx import ConfigTarget, Registry
from datafx.connfx.adapters.postgres import PostgresConnection
from datafx.testing import server_reachable, services_required

DSN = "postgres://postgres@127.0.0.1:5432/test"

OpenConnection = Callable[..., Awaitable[PostgresConnection]]


@pytest.fixture
def prefix() -> str:
    return f"pgt{uuid.uuid4().hex[:10]}_"


@pytest_asyncio.fixture
async def open_connection(prefix: str) -> AsyncIterator[OpenConnection]:
    """Return ``open(**properties)`` for connections on this test's table prefix."""
    if not server_reachable("127.0.0.1", 5432):
        reason = "postgres: no server answers on 127.0.0.1:5432"
        if services_required():
            pytest.fail(reason)
        pytest.skip(reason)
    registry = Registry.with_defaults()

    async def open_(dsn: str = DSN, **properties: Any) -> PostgresConnection:
        properties.setdefault("table_prefix", prefix)
        target = ConfigTarget(dsn=dsn, properties=properties)
        conn = await registry.add_connection(uuid.uuid4().hex, target)
        assert isinstance(conn, PostgresConnection)
        return conn

    try:
        yield open_
    finally:
        await registry.close()
        await _drop_tables(prefix)


async def _drop_tables(prefix: str) -> None:
    async with Registry.with_defaults() as registry:
        conn = await registry.add_connection("cleanup", DSN)
        rows = await conn.query(  # type: ignore[attr-defined]
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND starts_with(tablename, $1)",
            prefix,
        )
        for row in rows:
            name = row["tablename"].replace('"', '""')
            await conn.execute(f'DROP TABLE IF EXISTS "{name}"')  # type: ignore[attr-defined]
