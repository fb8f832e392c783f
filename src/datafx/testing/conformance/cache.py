"""Conformance tests for expiry through ``datafx.Cache``."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

import datafx
from datafx.testing.fixtures import Backend

# Short lifetimes keep the suite fast; the margins allow a loaded machine.
SHORT_TTL = 0.3
EXPIRY_WAIT = 0.6


def _cache(backend: Backend) -> datafx.Cache:
    if not backend.capabilities.cache:
        pytest.skip(f"{backend.spec.id} has no cache behavior")
    return datafx.Cache(backend.conn)


async def test_set_with_ttl_reports_remaining_time(backend: Backend) -> None:
    cache = _cache(backend)
    await cache.set(backend.key(), {"v": 1}, ttl=timedelta(seconds=30))
    remaining = await cache.get_ttl(backend.key())
    assert remaining is not None
    assert timedelta(seconds=25) < remaining <= timedelta(seconds=30)
    assert await cache.get(backend.key()) == {"v": 1}


async def test_ttl_has_millisecond_precision(backend: Backend) -> None:
    cache = _cache(backend)
    await cache.set(backend.key(), 1, ttl=1.25)
    remaining = await cache.get_ttl(backend.key())
    assert remaining is not None
    assert timedelta(seconds=1.0) < remaining <= timedelta(seconds=1.25)
    assert remaining != timedelta(seconds=1), "TTL was rounded to whole seconds"


async def test_expired_key_is_never_returned(backend: Backend) -> None:
    cache = _cache(backend)
    store = datafx.Store(backend.conn)
    await cache.set(backend.key(), "short", ttl=SHORT_TTL)
    await cache.set(backend.key("long"), "long", ttl=60)
    assert await cache.exists(backend.key())
    await asyncio.sleep(EXPIRY_WAIT)
    with pytest.raises(datafx.KeyNotFoundError):
        await cache.get(backend.key())
    with pytest.raises(datafx.KeyNotFoundError):
        await cache.get_raw(backend.key())
    with pytest.raises(datafx.KeyNotFoundError):
        await cache.get_ttl(backend.key())
    assert not await cache.exists(backend.key())
    assert await store.get_many([backend.key(), backend.key("long")]) == {
        backend.key("long"): "long"
    }


async def test_update_of_expired_key_fails(backend: Backend) -> None:
    cache = _cache(backend)
    store = datafx.Store(backend.conn)
    await cache.set(backend.key(), "short", ttl=SHORT_TTL)
    await asyncio.sleep(EXPIRY_WAIT)
    with pytest.raises(datafx.KeyNotFoundError):
        await store.update(backend.key(), "revived")
    with pytest.raises(datafx.KeyNotFoundError):
        await cache.expire(backend.key(), 10)
    assert not await cache.exists(backend.key())


async def test_zero_or_negative_ttl_is_rejected(backend: Backend) -> None:
    cache = _cache(backend)
    await cache.set(backend.key(), "kept")
    for bad in (0, 0.0, -1, timedelta(0), timedelta(seconds=-5), float("nan")):
        with pytest.raises(ValueError, match="ttl"):
            await cache.set(backend.key(), "replaced", ttl=bad)
        with pytest.raises(ValueError, match="ttl"):
            await cache.set_raw(backend.key(), b"replaced", ttl=bad)
        with pytest.raises(ValueError, match="ttl"):
            await cache.expire(backend.key(), bad)
    with pytest.raises(ValueError, match="100 years"):
        await cache.set(backend.key(), "replaced", ttl=1e12)
    with pytest.raises(TypeError):
        await cache.set(backend.key(), "replaced", ttl="10")  # type: ignore[arg-type]
    assert await cache.get(backend.key()) == "kept"
    assert await cache.get_ttl(backend.key()) is None


async def test_key_without_ttl_reports_none(backend: Backend) -> None:
    cache = _cache(backend)
    await cache.set(backend.key(), 1)
    assert await cache.get_ttl(backend.key()) is None


async def test_get_ttl_of_missing_key_raises(backend: Backend) -> None:
    cache = _cache(backend)
    with pytest.raises(datafx.KeyNotFoundError):
        await cache.get_ttl(backend.key("missing"))


async def test_set_without_ttl_clears_old_ttl(backend: Backend) -> None:
    cache = _cache(backend)
    await cache.set(backend.key(), 1, ttl=SHORT_TTL)
    await cache.set(backend.key(), 2)
    assert await cache.get_ttl(backend.key()) is None
    await asyncio.sleep(EXPIRY_WAIT)
    assert await cache.get(backend.key()) == 2

    await cache.set(backend.key("store"), 1, ttl=SHORT_TTL)
    await datafx.Store(backend.conn).set(backend.key("store"), 2)
    assert await cache.get_ttl(backend.key("store")) is None


async def test_update_keeps_ttl(backend: Backend) -> None:
    cache = _cache(backend)
    store = datafx.Store(backend.conn)
    await cache.set(backend.key(), "v1", ttl=30)
    await store.update(backend.key(), "v2")
    remaining = await cache.get_ttl(backend.key())
    assert remaining is not None
    assert remaining > timedelta(seconds=25)
    assert await cache.get(backend.key()) == "v2"

    await cache.set(backend.key("short"), "v1", ttl=SHORT_TTL)
    await store.update_raw(backend.key("short"), b'"v2"')
    await asyncio.sleep(EXPIRY_WAIT)
    assert not await cache.exists(backend.key("short"))


async def test_expire_sets_new_ttl(backend: Backend) -> None:
    cache = _cache(backend)
    await cache.set(backend.key(), 1)
    await cache.expire(backend.key(), timedelta(seconds=40))
    remaining = await cache.get_ttl(backend.key())
    assert remaining is not None
    assert timedelta(seconds=35) < remaining <= timedelta(seconds=40)
    await cache.expire(backend.key(), SHORT_TTL)
    await asyncio.sleep(EXPIRY_WAIT)
    assert not await cache.exists(backend.key())


async def test_expire_missing_key_raises(backend: Backend) -> None:
    cache = _cache(backend)
    with pytest.raises(datafx.KeyNotFoundError):
        await cache.expire(backend.key("missing"), 10)
    assert not await cache.exists(backend.key("missing"))


async def test_delete_is_idempotent(backend: Backend) -> None:
    cache = _cache(backend)
    await cache.set(backend.key(), 1, ttl=60)
    await cache.delete(backend.key())
    await cache.delete(backend.key())
    assert not await cache.exists(backend.key())


async def test_raw_values_with_ttl(backend: Backend) -> None:
    cache = _cache(backend)
    await cache.set_raw(backend.key(), b"\x00bytes\xff", ttl=60)
    assert await cache.get_raw(backend.key()) == b"\x00bytes\xff"
    remaining = await cache.get_ttl(backend.key())
    assert remaining is not None
    assert remaining > timedelta(seconds=55)


async def test_typed_cache_read(backend: Backend) -> None:
    cache = _cache(backend)
    await cache.set(backend.key(), [1, 2, 3], ttl=60)
    assert await cache.get(backend.key(), list[int]) == [1, 2, 3]
    with pytest.raises(datafx.UnmarshalError):
        await cache.get(backend.key(), dict[str, int])


async def test_non_finite_float_rejected_before_write(backend: Backend) -> None:
    cache = _cache(backend)
    with pytest.raises(datafx.MarshalError):
        await cache.set(backend.key(), float("nan"), ttl=60)
    assert not await cache.exists(backend.key())


__all__ = [name for name in dir() if name.startswith("test_")]
