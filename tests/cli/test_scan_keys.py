"""``Store.scan_keys``: the key listing ``datafx kv export`` is built on."""

from __future__ import annotations

import asyncio

import pytest

from datafx import ConnectionNotSupportedError, Store
from datafx.connfx import Registry
from datafx.connfx.behaviors import Behavior
from datafx.connfx.connection import Connection


async def open_store(dsn: str, registry: Registry) -> Store:
    return Store(await registry.add_connection("default", dsn))


async def collect(store: Store, prefix: str = "") -> list[str]:
    return [key async for key in store.scan_keys(prefix)]


async def test_scan_yields_prefixed_keys_in_order(dsn: str) -> None:
    async with Registry.with_defaults() as registry:
        store = await open_store(dsn, registry)
        await store.set_many({"b:2": 1, "a:1": 1, "b:1": 1, "b": 1, "c": 1})
        assert await collect(store, "b:") == ["b:1", "b:2"]
        assert await collect(store) == ["a:1", "b", "b:1", "b:2", "c"]


async def test_scan_prefix_wildcards_are_literal(dsn: str) -> None:
    async with Registry.with_defaults() as registry:
        store = await open_store(dsn, registry)
        await store.set_many({"50%_off": 1, "50x_off": 1, "5*": 1, "5?": 1, "5a": 1})
        assert await collect(store, "50%") == ["50%_off"]
        assert await collect(store, "5*") == ["5*"]
        assert await collect(store, "5?") == ["5?"]


async def test_scan_skips_expired_keys(dsn: str) -> None:
    async with Registry.with_defaults() as registry:
        conn = await registry.add_connection("default", dsn)
        store = Store(conn)
        await store.set("live", 1)
        await conn.key_value.set("short", b"1", 0.05)  # type: ignore[union-attr]
        await asyncio.sleep(0.1)
        assert await collect(store) == ["live"]


async def test_scan_pages_through_many_keys(dsn: str) -> None:
    async with Registry.with_defaults() as registry:
        store = await open_store(dsn, registry)
        keys = [f"k{i:05d}" for i in range(2345)]
        await store.set_many(dict.fromkeys(keys, 0))
        assert await collect(store, "k") == keys


async def test_scan_stopped_early_releases(dsn: str) -> None:
    async with Registry.with_defaults() as registry:
        store = await open_store(dsn, registry)
        await store.set_many({f"k{i:04d}": i for i in range(1200)})
        seen = []
        async for key in store.scan_keys():
            seen.append(key)
            if len(seen) == 3:
                break
        assert seen == ["k0000", "k0001", "k0002"]
        await store.set("after", 1)
        assert await store.get("after") == 1


class _NoScanKeyValue:
    async def get(self, key: str) -> bytes | None:
        return None


class _NoScanConnection(Connection):
    protocol = "noscan"
    behaviors = frozenset({Behavior.KEY_VALUE})

    def __init__(self) -> None:
        from datafx.connfx.config import ConfigTarget

        super().__init__("noscan", ConfigTarget(protocol="noscan"))
        self.key_value = _NoScanKeyValue()  # type: ignore[assignment]


async def test_scan_unsupported_backend_raises() -> None:
    store = Store(_NoScanConnection())
    with pytest.raises(ConnectionNotSupportedError, match="key scan"):
        await collect(store)


async def test_scan_rejects_non_string_prefix(dsn: str) -> None:
    async with Registry.with_defaults() as registry:
        store = await open_store(dsn, registry)
        with pytest.raises(TypeError, match="prefix must be a str"):
            await collect(store, 5)  # type: ignore[arg-type]
