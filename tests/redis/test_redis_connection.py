"""Connection behavior of the Redis adapter: pool limits, event loops and health."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable

import pytest

import datafx
from datafx.connfx import ConnectionState
from datafx.connfx.adapters.redis import EventLoopMismatchError, RedisConnection
from datafx.connfx.errors import BackendError, PoolTimeoutError

Connect = Callable[..., Awaitable[RedisConnection]]


async def _hold_pooled_connection(
    conn: RedisConnection, key: str
) -> datafx.Transaction:
    """Start a transaction whose WATCH keeps one pooled connection busy."""
    tx_store = datafx.TransactionalStore(conn)
    context = tx_store.transaction()
    tx = await context.__aenter__()
    await tx.exists(key)
    tx._context = context  # type: ignore[attr-defined]
    return tx


async def test_exhausted_pool_waits_then_raises(connect: Connect, prefix: str) -> None:
    conn = await connect(max_connections=1, pool_timeout=0.3)
    tx = await _hold_pooled_connection(conn, prefix + "held")
    store = datafx.Store(conn)
    started = time.monotonic()
    with pytest.raises(PoolTimeoutError) as info:
        await store.get_raw(prefix + "other")
    waited = time.monotonic() - started
    assert waited >= 0.25
    assert "pool of 1 connections" in str(info.value)
    assert "0.3 s" in str(info.value)
    await tx._context.__aexit__(None, None, None)  # type: ignore[attr-defined]
    await store.set(prefix + "other", 1)
    assert await store.get(prefix + "other") == 1


async def test_pool_wait_ends_when_connection_frees(
    connect: Connect, prefix: str
) -> None:
    conn = await connect(max_connections=1, pool_timeout=5)
    tx = await _hold_pooled_connection(conn, prefix + "held")
    store = datafx.Store(conn)
    waiting = asyncio.create_task(store.exists(prefix + "other"))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await tx._context.__aexit__(None, None, None)  # type: ignore[attr-defined]
    async with asyncio.timeout(2):
        assert await waiting is False


async def test_use_from_other_event_loop_raises(connect: Connect, prefix: str) -> None:
    conn = await connect()
    store = datafx.Store(conn)
    errors: list[BaseException] = []

    def use_in_new_loop() -> None:
        try:
            asyncio.run(store.get_raw(prefix + "k"))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=use_in_new_loop)
    thread.start()
    thread.join(timeout=10)
    assert len(errors) == 1
    assert isinstance(errors[0], EventLoopMismatchError)
    assert "another event loop" in str(errors[0])
    await store.set(prefix + "k", "still works")
    assert await store.get(prefix + "k") == "still works"


async def test_health_reports_latency_and_pool(connect: Connect) -> None:
    conn = await connect(max_connections=4)
    status = await conn.health_check()
    assert status.healthy
    assert status.latency > 0
    assert status.details["max_connections"] == 4
    assert status.details["in_use"] == 0
    assert status.details["idle"] >= 1


async def test_raw_is_the_driver_client(connect: Connect, prefix: str) -> None:
    conn = await connect()
    await conn.raw.set(prefix + "raw", b"1")
    assert await datafx.Store(conn).get(prefix + "raw") == 1


async def test_unreachable_server_fails_at_connect(require_redis: None) -> None:
    registry = datafx.connfx.Registry.with_defaults()
    dsn = "redis://:topsecret@127.0.0.1:1/0?connect_timeout=1&retries=0"
    with pytest.raises(BackendError) as info:
        await registry.add_connection("down", dsn)
    assert "cannot connect to Redis" in str(info.value)
    assert "topsecret" not in str(info.value)
    await registry.close()


async def test_closed_connection_rejects_calls(connect: Connect, prefix: str) -> None:
    conn = await connect()
    await conn.close()
    assert conn.state is ConnectionState.DISCONNECTED
    with pytest.raises(datafx.ConnectionClosedError):
        await datafx.Store(conn).get_raw(prefix + "k")


async def test_small_pool_serves_many_tasks(connect: Connect, prefix: str) -> None:
    conn = await connect(max_connections=2, pool_timeout=5)
    store = datafx.Store(conn)
    await store.set(prefix + "shared", "v")
    async with asyncio.timeout(20):
        values = await asyncio.gather(
            *(store.get(prefix + "shared") for _ in range(200))
        )
    assert values == ["v"] * 200
    status = await conn.health_check()
    assert status.details["in_use"] == 0
    assert status.details["idle"] <= 2
