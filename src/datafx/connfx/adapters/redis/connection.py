"""The Redis connection and its factory."""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from datafx.connfx.adapters.redis.client import WaitingPool, build_client
from datafx.connfx.adapters.redis.config import RedisSettings, read_settings
from datafx.connfx.adapters.redis.errors import EventLoopGuard
from datafx.connfx.adapters.redis.keyvalue import RedisKeyValue
from datafx.connfx.adapters.redis.queue import RedisQueues
from datafx.connfx.adapters.redis.transactions import RedisTransactional
from datafx.connfx.behaviors import Behavior, ConnectionState
from datafx.connfx.config import ConfigTarget
from datafx.connfx.connection import Connection
from datafx.connfx.errors import BackendError

__all__ = ["RedisConnection", "RedisFactory"]


class RedisConnection(Connection):
    """A pooled redis.asyncio client (``redis://``, ``rediss://``) or a cluster
    client (``redis+cluster://host:port,host:port``).

    The connection belongs to the event loop that opened it; a call from
    another loop raises ``EventLoopMismatchError``.
    """

    protocol = "redis"
    behaviors = frozenset(
        {
            Behavior.KEY_VALUE,
            Behavior.CACHE,
            Behavior.TRANSACTIONAL,
            Behavior.QUEUE,
            Behavior.STREAMING,
            Behavior.STATEFUL,
        }
    )

    def __init__(
        self,
        name: str,
        target: ConfigTarget,
        settings: RedisSettings,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(name, target, logger)
        self.settings = settings
        self.guard = EventLoopGuard(name)
        self.client: Redis | RedisCluster = build_client(settings)
        kv = RedisKeyValue(self.client, self.guard)
        self.key_value = kv
        self.cache = kv
        self.transactional = RedisTransactional(self.client, self.guard)
        queues = RedisQueues(
            self.client,
            self.guard,
            settings.socket_timeout,
            settings.stale_consumer_timeout,
        )
        self.queue = queues
        self.stream = queues

    @property
    def raw(self) -> Redis | RedisCluster:
        """The redis.asyncio client (``Redis`` or ``RedisCluster``)."""
        return self.client

    async def open(self) -> None:
        """Make the first round trip, so that a bad address or password fails here."""
        try:
            await self.ping()
        except RedisError as exc:
            await self.client.aclose()
            self.state = ConnectionState.ERROR
            raise BackendError(
                f"cannot connect to Redis at {self.target.masked_location()!r}: "
                f"{type(exc).__name__}: {_without_password(exc, self.settings)}; "
                "check that the server runs and that host, port, TLS and "
                "credentials are right",
                protocol=self.protocol,
                operation="connect",
            ) from exc
        self.state = ConnectionState.READY

    async def ping(self) -> None:
        self.check_open()
        self.guard.check()
        await self.client.ping()

    def health_details(self) -> dict[str, object]:
        details: dict[str, object] = {"cluster": self.settings.cluster}
        pool = getattr(self.client, "connection_pool", None)
        if isinstance(pool, WaitingPool):
            details.update(pool.usage())
        elif isinstance(self.client, RedisCluster):
            nodes = self.client.get_nodes()
            details["nodes"] = len(nodes)
            # ClusterNode keeps its connections in private lists; read them
            # defensively, because they are not part of the driver's API.
            details["in_use"] = sum(
                len(getattr(node, "_connections", ())) - len(getattr(node, "_free", ()))
                for node in nodes
            )
            details["max_connections_per_node"] = self.settings.max_connections
        return details

    async def _close(self) -> None:
        if asyncio.get_running_loop() is not self.guard.loop:
            self.logger.warning(
                "closing Redis connection %r from another event loop; its sockets "
                "are dropped without a clean shutdown",
                self.name,
            )
        await self.client.aclose()


def _without_password(exc: BaseException, settings: RedisSettings) -> str:
    text = str(exc)
    if settings.password:
        text = text.replace(settings.password, "***")
    return text


class RedisFactory:
    """Opens :class:`RedisConnection` objects."""

    protocol = "redis"

    async def create(
        self, name: str, target: ConfigTarget, logger: logging.Logger | None
    ) -> RedisConnection:
        settings = read_settings(target)
        connection = RedisConnection(name, target, settings, logger)
        await connection.open()
        return connection

    def __repr__(self) -> str:
        return "RedisFactory()"
