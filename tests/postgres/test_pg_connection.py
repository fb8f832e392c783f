"""PostgreSQL connection options, pool limits, health and the query port."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import pytest

import datafx
from datafx.connfx import ConfigTarget, InvalidConfigError, Registry
from datafx.connfx.adapters.postgres import PostgresConnection
from datafx.connfx.errors import PoolTimeoutError

DSN = "postgres://postgres@127.0.0.1:5432/test"
OpenConnection = Callable[..., Awaitable[PostgresConnection]]

pytestmark = pytest.mark.server


async def test_unknown_option_lists_known_ones() -> None:
    async with Registry.with_defaults() as registry:
        with pytest.raises(InvalidConfigError) as caught:
            await registry.add_connection("x", f"{DSN}?pool_sise=3")
    message = str(caught.value)
    assert "pool_sise" in message
    assert "pool_size" in message
    assert "table_prefix" in message


@pytest.mark.parametrize(
    ("properties", "fragment"),
    [
        ({"pool_size": "0"}, "pool_size"),
        ({"pool_min": 5, "pool_size": 2}, "pool_min"),
        ({"isolation": "chaos"}, "isolation"),
        ({"pool_timeout": "-1"}, "pool_timeout"),
        ({"table_prefix": "p" * 70}, "longer than 63 bytes"),
    ],
)
async def test_invalid_options_rejected(
    properties: dict[str, object], fragment: str
) -> None:
    target = ConfigTarget(dsn=DSN, properties=properties)
    async with Registry.with_defaults() as registry:
        with pytest.raises(InvalidConfigError, match=fragment):
            await registry.add_connection("x", target)


async def test_scheme_aliases_and_application_name(
    open_connection: OpenConnection,
) -> None:
    name = f"datafx-test-{uuid.uuid4().hex[:8]}"
    conn = await open_connection(
        "postgresql://postgres@127.0.0.1:5432/test", application_name=name
    )
    assert conn.protocol == "postgres"
    rows = await conn.query("SELECT current_setting('application_name') AS name")
    assert rows == [{"name": name}]


async def test_health_reports_latency_and_pool(open_connection: OpenConnection) -> None:
    conn = await open_connection(pool_size=3, pool_min=1)
    status = await conn.health_check()
    assert status.healthy
    assert status.latency > 0
    assert status.details["pool_max"] == 3
    assert "pool_idle" in status.details


async def test_raw_is_the_asyncpg_pool(open_connection: OpenConnection) -> None:
    conn = await open_connection()
    async with conn.raw.acquire() as raw:
        assert await raw.fetchval("SELECT 41 + 1") == 42


async def test_query_binds_parameters(open_connection: OpenConnection) -> None:
    conn = await open_connection()
    hostile = "x'); DROP TABLE pg_class; --"
    rows = await conn.query("SELECT $1::text AS value, $2::int AS n", hostile, 7)
    assert rows == [{"value": hostile, "n": 7}]
    table = f'"{conn.names.prefix}scratch"'
    assert await conn.execute(f"CREATE TABLE {table} (v TEXT)") == -1
    assert await conn.execute(f"INSERT INTO {table} VALUES ($1), ($2)", "a", "b") == 2
    assert await conn.relational.execute(f"DELETE FROM {table} WHERE v = $1", "a") == 1  # type: ignore[union-attr]


async def test_exhausted_pool_raises_pool_timeout(
    open_connection: OpenConnection,
) -> None:
    conn = await open_connection(pool_size=1, pool_min=1, pool_timeout=0.2)
    store = datafx.Store(conn)
    await store.set("k", 1)
    tx_store = datafx.TransactionalStore(conn)
    async with tx_store.transaction() as tx:
        await tx.set("k", 2)
        with pytest.raises(PoolTimeoutError) as caught:
            await store.get("k")
    assert isinstance(caught.value, TimeoutError)
    assert "all 1 pooled connections" in str(caught.value)
    assert "pool_size" in str(caught.value)
    assert await store.get("k") == 2


async def test_closed_connection_stops_sweeper(open_connection: OpenConnection) -> None:
    conn = await open_connection(cleanup_interval=0.05)
    await datafx.Cache(conn).set("k", 1, ttl=10)
    task = conn.sweeper._task
    assert task is not None
    await conn.close()
    await asyncio.sleep(0)
    assert task.done()
