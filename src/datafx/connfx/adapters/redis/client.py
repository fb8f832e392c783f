"""Building the redis.asyncio client (single server or cluster) from settings."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import Connection as DriverConnection
from redis.asyncio.connection import SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError
from redis.exceptions import TimeoutError as RedisTimeoutError

from datafx.connfx.adapters.redis.config import RedisSettings
from datafx.connfx.adapters.redis.errors import pool_timeout_error

__all__ = [
    "CancelSafeConnection",
    "CancelSafeSSLConnection",
    "WaitingPool",
    "build_client",
]

RedisClient = Redis | RedisCluster


class _CancelSafeSend:
    """Bound the send of a command with ``asyncio.timeout`` instead of ``wait_for``.

    redis-py 8.2 wraps each send in ``asyncio.wait_for(..., socket_timeout)``.
    On Python 3.11, ``wait_for`` drops a cancellation that arrives as the send
    completes, so a cancelled task goes on running (seen here in about one of
    25 cancelled blocking reads). ``asyncio.timeout`` has no such race. The
    driver reads ``socket_timeout`` to choose ``wait_for``, so it is set to
    ``None`` for the send only; the connection is held by one command at a
    time, so no read runs while that value is set.
    """

    socket_timeout: float | None

    async def send_packed_command(
        self, command: Any, check_health: bool = True
    ) -> None:
        timeout = self.socket_timeout
        if timeout is None:
            await super().send_packed_command(command, check_health)  # type: ignore[misc]
            return
        self.socket_timeout = None
        try:
            async with asyncio.timeout(timeout):
                await super().send_packed_command(command, check_health)  # type: ignore[misc]
        except TimeoutError as exc:
            raise RedisTimeoutError("Timeout writing to socket") from exc
        finally:
            self.socket_timeout = timeout


class CancelSafeConnection(_CancelSafeSend, DriverConnection):
    """A plain TCP connection with :class:`_CancelSafeSend`."""


class CancelSafeSSLConnection(_CancelSafeSend, SSLConnection):
    """A TLS connection with :class:`_CancelSafeSend`."""


class WaitingPool(BlockingConnectionPool):
    """A pool that waits up to ``timeout`` for a free connection, then raises
    ``PoolTimeoutError`` naming the pool size (the driver's own error does not)."""

    async def get_connection(
        self, command_name: Any = None, *keys: Any, **options: Any
    ) -> Any:
        # asyncio.Condition keeps its waiting tasks in the private _waiters.
        if self.can_get_connection() and not self._condition._waiters:
            # Fast path: a connection is free and nobody waits for one, so the
            # condition and timeout of the waiting path would only cost time.
            try:
                return await ConnectionPool.get_connection(self)  # type: ignore[no-untyped-call]
            except MaxConnectionsError:
                pass  # taken while this task waited for the pool lock
        try:
            return await super().get_connection()  # type: ignore[no-untyped-call]
        except RedisConnectionError as exc:
            if isinstance(exc.__cause__, TimeoutError):
                raise pool_timeout_error(self.max_connections, self.timeout) from exc
            raise

    def usage(self) -> dict[str, int]:
        """Connections in use, idle and allowed."""
        return {
            "in_use": len(self._in_use_connections),
            "idle": len(self._available_connections),
            "max_connections": self.max_connections,
        }


def _retry(settings: RedisSettings) -> Retry:
    return Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), settings.retries)


def _tls_options(settings: RedisSettings) -> dict[str, Any]:
    tls = settings.tls
    if tls is None:
        return {}
    return {
        "ssl_ca_certs": tls.ca_file,
        "ssl_certfile": tls.cert_file,
        "ssl_keyfile": tls.key_file,
        "ssl_cert_reqs": "none" if tls.skip_verify else "required",
        "ssl_check_hostname": not tls.skip_verify,
    }


def _common_options(settings: RedisSettings) -> dict[str, Any]:
    return {
        "username": settings.username,
        "password": settings.password,
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": settings.connect_timeout,
        "client_name": settings.client_name,
        "health_check_interval": settings.health_check_interval,
        "retry": _retry(settings),
    }


def _build_single(settings: RedisSettings) -> Redis:
    host, port = settings.hosts[0]
    tls = _tls_options(settings)
    pool = WaitingPool(
        connection_class=CancelSafeSSLConnection if tls else CancelSafeConnection,
        max_connections=settings.max_connections,
        timeout=settings.pool_timeout,
        host=host,
        port=port,
        db=settings.db,
        **_common_options(settings),
        **tls,
    )
    # from_pool makes the client own the pool, so aclose() also closes the pool.
    return Redis.from_pool(pool)


def _build_cluster(settings: RedisSettings) -> RedisCluster:
    tls = _tls_options(settings)
    # NOTE: RedisCluster keeps one pool per node and has no waiting pool to
    # plug in, so a full node pool raises MaxConnectionsError at once.
    client = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in settings.hosts],
        max_connections=settings.max_connections,
        ssl=bool(tls),
        **_common_options(settings),
        **tls,
    )
    # RedisCluster has no connection_class argument. Its nodes copy the class
    # from this dict (shared with its NodesManager), and the startup nodes
    # have opened no connection yet, so swapping the class here covers all.
    safe_class = CancelSafeSSLConnection if tls else CancelSafeConnection
    client.connection_kwargs["connection_class"] = safe_class
    for node in client.startup_nodes:
        node.connection_class = safe_class
    return client


def build_client(settings: RedisSettings) -> RedisClient:
    """Create the driver client; no I/O happens until the first command."""
    if settings.cluster:
        return _build_cluster(settings)
    return _build_single(settings)
