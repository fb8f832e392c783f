"""Registry: factories, look-ups, removal and error cases."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

import datafx
from datafx import connfx
from datafx.connfx import Behavior


async def test_add_and_look_up_connections() -> None:
    async with connfx.Registry.with_defaults() as registry:
        default = await registry.add_connection(connfx.DEFAULT_CONNECTION, "memory://")
        other = await registry.add_connection(
            "other", connfx.ConfigTarget(dsn="memory://x")
        )
        assert registry.get_default() is default
        assert registry.get_named("other") is other
        assert registry.list_connections() == ["default", "other"]
        assert set(registry.get_by_behavior(Behavior.KEY_VALUE)) == {default, other}
        assert registry.get_by_behavior(Behavior.RELATIONAL) == []
        assert registry.get_by_protocol("memory") == [default, other]
        assert "sqlite" in registry.list_registered_protocols()
        await registry.remove_connection("other")
        assert other.closed
        with pytest.raises(connfx.ConnectionNotFoundError, match="other"):
            registry.get_named("other")
    assert default.closed


async def test_duplicate_name_is_rejected() -> None:
    async with connfx.Registry.with_defaults() as registry:
        await registry.add_connection("a", "memory://")
        with pytest.raises(connfx.ConnectionAlreadyExistsError, match="'a'"):
            await registry.add_connection("a", "memory://")


async def test_unknown_protocol_lists_registered_ones() -> None:
    async with connfx.Registry.with_defaults() as registry:
        with pytest.raises(connfx.UnsupportedProtocolError, match="memory"):
            await registry.add_connection("x", "cassandra://h")


async def test_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        connfx.registry.BUILTIN_ADAPTERS,
        "fakedb",
        ("datafx_missing_module_xyz", "fakedb"),
    )
    async with connfx.Registry.with_defaults() as registry:
        with pytest.raises(connfx.UnsupportedProtocolError, match=r"datafx\[fakedb\]"):
            await registry.add_connection("x", connfx.ConfigTarget(protocol="fakedb"))
        assert registry.list_connections() == []


async def test_remove_unknown_connection() -> None:
    async with connfx.Registry() as registry:
        with pytest.raises(connfx.ConnectionNotFoundError):
            await registry.remove_connection("nope")


async def test_custom_factory_is_used() -> None:
    class Factory:
        protocol = "custom"

        async def create(
            self, name: str, target: connfx.ConfigTarget, logger: logging.Logger | None
        ) -> connfx.Connection:
            from datafx.connfx.adapters.memory import MemoryConnection

            return MemoryConnection(name, connfx.ConfigTarget(dsn="memory://"), logger)

    registry = connfx.Registry()
    registry.register_factory(Factory())
    conn = await registry.add_connection("c", connfx.ConfigTarget(protocol="custom"))
    await datafx.Store(conn).set("k", 1)
    await registry.close()


async def test_store_rejects_connection_without_behavior() -> None:
    async with connfx.Registry.with_defaults() as registry:
        conn = await registry.add_connection("m", "memory://")
        conn.behaviors = frozenset({Behavior.CACHE})
        with pytest.raises(datafx.ConnectionNotSupportedError, match="key-value"):
            datafx.Store(conn)
        with pytest.raises(datafx.ConnectionNotSupportedError, match="transactional"):
            datafx.TransactionalStore(conn)


async def test_password_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="datafx")
    async with connfx.Registry.with_defaults() as registry:
        await registry.add_connection("m", "memory://user:s3cr3t-pw@name")
    assert "s3cr3t-pw" not in caplog.text


def test_importing_datafx_imports_no_optional_driver() -> None:
    drivers = ["redis", "asyncpg", "asyncmy", "aiomysql", "aio_pika", "nats", "pymongo"]
    code = (
        "import sys, datafx, datafx.connfx\n"
        f"print(','.join(m for m in {drivers!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


async def test_protocol_without_adapter_says_so() -> None:
    async with connfx.Registry.with_defaults() as registry:
        with pytest.raises(connfx.UnsupportedProtocolError, match="no amqp adapter"):
            await registry.add_connection("x", "amqp://guest:guest@127.0.0.1:5672/")
