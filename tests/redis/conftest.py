"""Fixtures for the Redis adapter tests: a live server on 127.0.0.1:6379.

Tests skip when no server responds there, unless ``DATAFX_REQUIRE_SERVICES=1``.
Every key a test writes starts with its own ``prefix``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio

from datafx.connfx import ConfigTarget, Registry
from datafx.connfx.adapters.redis import RedisConnection
from datafx.testing import server_reachable, services_required

REDIS_DSN = "redis://127.0.0.1:6379/0"

Connect = Callable[..., Awaitable[RedisConnection]]


@pytest.fixture
def prefix() -> str:
    return f"rt{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def require_redis() -> None:
    if server_reachable("127.0.0.1", 6379):
        return
    if services_required():
        pytest.fail("no Redis server answers on 127.0.0.1:6379")
    pytest.skip("no Redis server answers on 127.0.0.1:6379")


@pytest_asyncio.fixture
async def connect(require_redis: None, prefix: str) -> AsyncIterator[Connect]:
    """Open Redis connections that are closed when the test ends.

    Keys on 127.0.0.1:6379 that contain the test's ``prefix`` are deleted then.
    """
    async with Registry.with_defaults() as registry:

        async def open_connection(
            dsn: str = REDIS_DSN, **properties: Any
        ) -> RedisConnection:
            target = ConfigTarget(dsn=dsn, properties=properties)
            conn = await registry.add_connection(uuid.uuid4().hex, target)
            assert isinstance(conn, RedisConnection)
            return conn

        yield open_connection
        cleaner = await open_connection()
        keys = [
            key
            async for key in cleaner.raw.scan_iter(match=f"*{prefix}*", count=10_000)
        ]
        if keys:
            await cleaner.raw.delete(*keys)
