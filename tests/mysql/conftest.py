"""Fixtures for the MySQL and MariaDB tests: connections on a table prefix of their own.

Every test gets a fresh table prefix, and every table created under it is
dropped after the test. The tests skip when no server accepts connections
on 127.0.0.1:3306, unless ``DATAFX_REQUIRE_SERVICES=1`` makes that a failure.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio

from datafx.connfx import ConfigTarget, Registry
from datafx.connfx.adapters.mysql import MySqlConnection
from datafx.testing import server_reachable, services_required

DSN = "mysql://root@127.0.0.1:3306/test"

OpenConnection = Callable[..., Awaitable[MySqlConnection]]


@pytest.fixture
def prefix() -> str:
    return f"myt{uuid.uuid4().hex[:10]}_"


@pytest_asyncio.fixture
async def open_connection(prefix: str) -> AsyncIterator[OpenConnection]:
    """Return ``open(**properties)`` for connections on this test's table prefix."""
    if not server_reachable("127.0.0.1", 3306):
        reason = "mysql: no server answers on 127.0.0.1:3306"
        if services_required():
            pytest.fail(reason)
        pytest.skip(reason)
    registry = Registry.with_defaults()

    async def open_(dsn: str = DSN, **properties: Any) -> MySqlConnection:
        properties.setdefault("table_prefix", prefix)
        target = ConfigTarget(dsn=dsn, properties=properties)
        conn = await registry.add_connection(uuid.uuid4().hex, target)
        assert isinstance(conn, MySqlConnection)
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
            "SELECT table_name AS name FROM information_schema.tables "
            "WHERE table_schema = 'test' AND LEFT(table_name, %s) = %s",
            len(prefix),
            prefix,
        )
        for row in rows:
            name = row["name"].replace("`", "``")
            await conn.execute(f"DROP TABLE IF EXISTS `{name}`")  # type: ignore[attr-defined]
