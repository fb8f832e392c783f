"""Redis Cluster behavior: batches split per slot, transactions on one slot."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import pytest_asyncio

import datafx
from datafx.connfx import Registry
from datafx.connfx.adapters.redis import RedisConnection
from datafx.connfx.adapters.redis.keyvalue import group_by_slot
from datafx.connfx.adapters.redis.localserver import shared_cluster


@pytest_asyncio.fixture
async def cluster_conn() -> AsyncIterator[RedisConnection]:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.skip("redis-server or redis-cli is not on PATH")
    async with Registry.with_defaults() as registry:
        conn = await registry.add_connection("cluster", shared_cluster().dsn)
        assert isinstance(conn, RedisConnection)
        yield conn


def _keys_in_many_slots(count: int) -> list[str]:
    run = uuid.uuid4().hex[:8]
    keys = [f"c{run}:{i}" for i in range(count)]
    assert len(group_by_slot(keys)) > 10
    return keys


async def test_batches_split_across_slots(cluster_conn: RedisConnection) -> None:
    store = datafx.Store(cluster_conn)
    keys = _keys_in_many_slots(40)
    await store.set_many({key: {"key": key} for key in keys})
    found = await store.get_many([*keys, "c-missing"])
    assert found == {key: {"key": key} for key in keys}
    await store.remove_many(keys[:20])
    assert set(await store.get_many(keys)) == set(keys[20:])
    await store.remove_many(keys)


async def test_set_many_with_ttl_across_slots(cluster_conn: RedisConnection) -> None:
    cache = datafx.Cache(cluster_conn)
    keys = _keys_in_many_slots(20)
    port = cluster_conn.key_value
    assert port is not None
    await port.set_many({key: b"1" for key in keys}, ttl=30.0)
    for key in keys:
        remaining = await cache.get_ttl(key)
        assert remaining is not None
        assert timedelta(seconds=25) < remaining <= timedelta(seconds=30)
    await datafx.Store(cluster_conn).remove_many(keys)


async def test_transaction_across_slots_is_rejected(
    cluster_conn: RedisConnection,
) -> None:
    tx_store = datafx.TransactionalStore(cluster_conn)
    first, second = _keys_in_many_slots(40)[:2]
    with pytest.raises(datafx.TransactionFailedError) as info:
        async with tx_store.transaction() as tx:
            await tx.set(first, 1)
            await tx.set(second, 2)
    assert info.value.retryable is False
    assert "hash tag" in str(info.value)
    assert not await datafx.Store(cluster_conn).exists(first)


async def test_transaction_with_hash_tag_commits(cluster_conn: RedisConnection) -> None:
    tx_store = datafx.TransactionalStore(cluster_conn)
    tag = uuid.uuid4().hex[:8]
    keys = [f"{{order:{tag}}}:total", f"{{order:{tag}}}:items"]
    async with tx_store.transaction() as tx:
        await tx.set(keys[0], 10)
        await tx.set(keys[1], ["a", "b"])
        assert await tx.get(keys[0]) == 10
    store = datafx.Store(cluster_conn)
    assert await store.get_many(keys) == {keys[0]: 10, keys[1]: ["a", "b"]}
    await store.remove_many(keys)


async def test_scan_covers_every_node(cluster_conn: RedisConnection) -> None:
    store = datafx.Store(cluster_conn)
    keys = _keys_in_many_slots(30)
    await store.set_many(dict.fromkeys(keys, 0))
    prefix = keys[0].rsplit(":", 1)[0] + ":"
    assert sorted([key async for key in store.scan_keys(prefix)]) == sorted(keys)
    await store.remove_many(keys)


async def test_cluster_health_details(cluster_conn: RedisConnection) -> None:
    status = await cluster_conn.health_check()
    assert status.healthy
    assert status.details["cluster"] is True
    assert status.details["nodes"] == 3
