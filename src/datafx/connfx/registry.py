"""The connection registry and connection factories."""

from __future__ import annotations

import asyncio
import importlib
import importlib.metadata
import logging
from typing import Protocol, runtime_checkable

from datafx.connfx.behaviors import Behavior
from datafx.connfx.config import ConfigTarget
from datafx.connfx.connection import Connection
from datafx.connfx.dsn import protocol_for_scheme
from datafx.connfx.errors import (
    ConnectionAlreadyExistsError,
    ConnectionNotFoundError,
    InvalidConfigError,
    UnsupportedProtocolError,
)

__all__ = [
    "BUILTIN_ADAPTERS",
    "DEFAULT_CONNECTION",
    "ConnectionFactory",
    "LazyFactory",
    "Registry",
]

DEFAULT_CONNECTION = "default"

# protocol -> (adapter module, extra that installs its driver or None).
# Each adapter module exposes a module-level ``factory``.
BUILTIN_ADAPTERS: dict[str, tuple[str, str | None]] = {
    "memory": ("datafx.connfx.adapters.memory", None),
    "sqlite": ("datafx.connfx.adapters.sqlite", None),
    "redis": ("datafx.connfx.adapters.redis", "redis"),
    "postgres": ("datafx.connfx.adapters.postgres", "postgres"),
    "mysql": ("datafx.connfx.adapters.mysql", "mysql"),
}

# NOTE: these protocols have a driver extra in pyproject.toml but no adapter
# yet; asking for one raises UnsupportedProtocolError saying so.
PLANNED_PROTOCOLS = frozenset({"mongodb", "amqp", "nats", "memcached"})

_logger = logging.getLogger("datafx.connfx.registry")


def _version() -> str:
    try:
        return importlib.metadata.version("datafx")
    except importlib.metadata.PackageNotFoundError:
        return "this version"


@runtime_checkable
class ConnectionFactory(Protocol):
    """Creates connections for one protocol."""

    @property
    def protocol(self) -> str: ...

    async def create(
        self, name: str, target: ConfigTarget, logger: logging.Logger | None
    ) -> Connection:
        """Open a connection; raise ``InvalidConfigError`` for bad configuration."""
        ...


class LazyFactory:
    """A factory that imports its adapter module on first use.

    A missing driver makes ``create`` raise ``UnsupportedProtocolError``
    naming the extra to install; importing datafx never needs the driver.
    """

    def __init__(self, protocol: str, module: str, extra: str | None) -> None:
        self._protocol = protocol
        self._module = module
        self._extra = extra
        self._factory: ConnectionFactory | None = None

    @property
    def protocol(self) -> str:
        return self._protocol

    def load(self) -> ConnectionFactory:
        if self._factory is None:
            try:
                module = importlib.import_module(self._module)
            except ImportError as exc:
                hint = (
                    f'; install it with: pip install "datafx[{self._extra}]"'
                    if self._extra
                    else ""
                )
                raise UnsupportedProtocolError(
                    f"the driver for protocol {self._protocol!r} is not installed "
                    f"({exc.name or exc}){hint}"
                ) from exc
            self._factory = module.factory
        return self._factory

    async def create(
        self, name: str, target: ConfigTarget, logger: logging.Logger | None
    ) -> Connection:
        return await self.load().create(name, target, logger)


class Registry:
    """Named connections and the factories that open them.

    Use ``async with Registry.with_defaults() as registry:`` to close every
    connection at the end, or call :meth:`close`.
    """

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger or _logger
        self._factories: dict[str, ConnectionFactory] = {}
        self._connections: dict[str, Connection] = {}
        self._pending: set[str] = set()

    @classmethod
    def with_defaults(cls, logger: logging.Logger | None = None) -> Registry:
        """Return a registry with every built-in factory registered."""
        registry = cls(logger=logger)
        for protocol, (module, extra) in BUILTIN_ADAPTERS.items():
            registry.register_factory(LazyFactory(protocol, module, extra))
        return registry

    def register_factory(self, factory: ConnectionFactory) -> None:
        """Register (or replace) the factory of ``factory.protocol``."""
        protocol = protocol_for_scheme(factory.protocol)
        if not protocol:
            raise InvalidConfigError("a connection factory needs a non-empty protocol")
        self._factories[protocol] = factory

    def list_registered_protocols(self) -> list[str]:
        return sorted(self._factories)

    def list_connections(self) -> list[str]:
        return sorted(self._connections)

    async def add_connection(self, name: str, target: ConfigTarget | str) -> Connection:
        """Open a connection and register it under ``name``.

        ``target`` is a :class:`ConfigTarget` or a DSN string. Raises
        ``ConnectionAlreadyExistsError`` when the name is taken and
        ``UnsupportedProtocolError`` when no factory serves the protocol.
        """
        if not isinstance(name, str) or not name:
            raise InvalidConfigError(
                f"a connection name must be a non-empty str, got {name!r}"
            )
        if name in self._connections or name in self._pending:
            raise ConnectionAlreadyExistsError(
                f"a connection named {name!r} already exists; remove it first "
                "or choose another name"
            )
        if isinstance(target, str):
            target = ConfigTarget.from_dsn(target)
        elif not isinstance(target, ConfigTarget):
            raise InvalidConfigError(
                "target must be a ConfigTarget or a DSN string, "
                f"not {type(target).__name__}"
            )
        factory = self._factories.get(target.protocol)
        if factory is None:
            known = ", ".join(self.list_registered_protocols()) or "none"
            extra = BUILTIN_ADAPTERS.get(target.protocol, ("", None))[1]
            hint = f'; install it with: pip install "datafx[{extra}]"' if extra else ""
            if target.protocol in PLANNED_PROTOCOLS:
                hint = (
                    f"; datafx {_version()} has no {target.protocol} adapter yet, "
                    "so register your own ConnectionFactory for it"
                )
            raise UnsupportedProtocolError(
                f"unsupported protocol {target.protocol!r} (registered: {known}){hint}"
            )
        self._pending.add(name)
        try:
            connection = await factory.create(name, target, self._logger)
        finally:
            self._pending.discard(name)
        self._connections[name] = connection
        self._logger.info("opened connection %r to %s", name, target.masked_location())
        return connection

    def get_default(self) -> Connection:
        return self.get_named(DEFAULT_CONNECTION)

    def get_named(self, name: str) -> Connection:
        try:
            return self._connections[name]
        except KeyError:
            known = ", ".join(self.list_connections()) or "none"
            raise ConnectionNotFoundError(
                f"no connection named {name!r} (registered: {known})"
            ) from None

    def get_by_behavior(self, behavior: Behavior) -> list[Connection]:
        return [c for c in self._connections.values() if behavior in c.behaviors]

    def get_by_protocol(self, protocol: str) -> list[Connection]:
        protocol = protocol_for_scheme(protocol)
        return [c for c in self._connections.values() if c.protocol == protocol]

    async def remove_connection(self, name: str) -> None:
        """Close and unregister a connection; raises ``ConnectionNotFoundError``."""
        connection = self.get_named(name)
        del self._connections[name]
        await connection.close()

    async def close(self) -> None:
        """Close every connection, even when some fail to close."""
        connections = list(self._connections.values())
        self._connections.clear()
        results = await asyncio.gather(
            *(c.close() for c in connections), return_exceptions=True
        )
        for connection, result in zip(connections, results, strict=True):
            if isinstance(result, BaseException):
                self._logger.warning(
                    "closing connection %r failed: %s", connection.name, result
                )

    async def __aenter__(self) -> Registry:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
