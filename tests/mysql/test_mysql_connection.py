"""MySQL connection options, pool limits, health and the query port."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

import datafx
from datafx.connfx import ConfigTarget, InvalidConfigError, Registry
from datafx.connfx.adapters.mysql import MySqlConnection
from datafx.connfx.errors import PoolTimeoutError

pytestmark = pytest.mark.server

DSN = "mysql://root@127.0.0.1:3306/test"
OpenConnection = Callable[..., Awaitable[MySqlConnection]]


async def test_unknown_option_lists_known_ones() -> None:
    async with Registry.with_defaults() as registry:
        with pytest.raises(InvalidConfigError) as caught:
            await registry.add_connection("x", f"{DSN}?statement_cache_size=3")
    message = str(caught.value)
    assert "statement_cache_size" in message
    assert "pool_size" in message


@pytest.mark.parametrize(
    ("dsn", "properties", "fragment"),
    [
        (DSN, {"pool_size": "many"}, "pool_size"),
        (DSN, {"isolation": "snapshot"}, "isolation"),
        (DSN, {"table_prefix": "p" * 70}, "longer than 64 bytes"),
        ("mysql://root@127.0.0.1:3306", {}, "names no database"),
    ],
)
async def test_invalid_options_rejected(
    dsn: str, properties: dict[str, object], fragment: str
) -> None:
    target = ConfigTarget(dsn=dsn, properties=properties)
    async with Registry.with_defaults() as registry:
        with pytest.raises(InvalidConfigError, match=fragment):
            await registry.add_connection("x", target)


async def test_mariadb_scheme_maps_to_mysql(open_connection: OpenConnection) -> None:
    conn = await open_connection("mariadb://root@127.0.0.1:3306/test")
    assert conn.protocol == "mysql"
    assert await conn.query("SELECT %s + 1 AS n", 41) == [{"n": 42}]


async def test_health_reports_latency_and_pool(open_connection: OpenConnection) -> None:
    conn = await open_connection(pool_size=3)
    status = await conn.health_check()
    assert status.healthy
    assert status.latency > 0
    assert status.details["pool_max"] == 3


async def test_query_binds_parameters(open_connection: OpenConnection) -> None:
    conn = await open_connection()
    hostile = "x'); DROP TABLE mysql.user; -- \\"
    rows = await conn.query("SELECT %s AS value", hostile)
    assert rows == [{"value": hostile}]
    assert await conn.query("SELECT 'a%b' AS literal") == [{"literal": "a%b"}]
    table = f"`{conn.names.prefix}scratch`"
    await conn.execute(f"CREATE TABLE {table} (v VARCHAR(10))")
    assert await conn.execute(f"INSERT INTO {table} VALUES (%s), (%s)", "a", "b") == 2
    assert await conn.execute(f"DELETE FROM {table} WHERE v = %s", "a") == 1


async def test_exhausted_pool_raises_pool_timeout(
    open_connection: OpenConnection,
) -> None:
    conn = await open_connection(pool_size=1, pool_min=1, pool_timeout=0.2)
    store = datafx.Store(conn)
    await store.set("k", 1)
    async with datafx.TransactionalStore(conn).transaction() as tx:
        await tx.set("k", 2)
        with pytest.raises(PoolTimeoutError) as caught:
            await store.get("k")
    assert isinstance(caught.value, TimeoutError)
    assert "all 1 pooled connections" in str(caught.value)
    assert await store.get("k") == 2


async def test_closed_connection_stops_sweeper(open_connection: OpenConnection) -> None:
    conn = await open_connection(cleanup_interval=0.05)
    await datafx.Cache(conn).set("k", 1, ttl=10)
    task = conn.sweeper._task
    assert task is not None
    await conn.close()
    await asyncio.sleep(0)
    assert task.done()
