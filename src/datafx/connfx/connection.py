"""The ``Connection`` base class that every adapter extends."""

from __future__ import annotations

import logging
import time
from typing import Any

from datafx.connfx.behaviors import Behavior, ConnectionState, HealthStatus
from datafx.connfx.config import ConfigTarget
from datafx.connfx.errors import ConnectionClosedError
from datafx.connfx.ports import (
    CachePort,
    KeyValuePort,
    QueryPort,
    TransactionalPort,
)

__all__ = ["Connection"]


class Connection:
    """An open connection to one backend.

    Subclasses set ``behaviors`` and fill the port attributes they offer
    (``key_value``, ``cache``, ``transactional``, ``queue``, ``stream``,
    ``relational``); a port left as ``None`` is not offered. They implement
    :meth:`ping` and :meth:`_close`, and may override :meth:`health_details`.
    """

    protocol: str = ""
    behaviors: frozenset[Behavior] = frozenset()

    def __init__(
        self,
        name: str,
        target: ConfigTarget,
        logger: logging.Logger | None = None,
    ) -> None:
        self.name = name
        self.target = target
        self.logger = logger or logging.getLogger(
            f"datafx.connfx.{self.protocol or 'connection'}"
        )
        self.state = ConnectionState.NOT_INITIALIZED
        self.key_value: KeyValuePort | None = None
        self.cache: CachePort | None = None
        self.transactional: TransactionalPort | None = None
        self.relational: QueryPort | None = None
        # Queue and stream ports; typed as Any here because their protocols
        # live in the queue modules.
        self.queue: Any = None
        self.stream: Any = None

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} name={self.name!r} "
            f"location={self.target.masked_location()!r} state={self.state.value}>"
        )

    @property
    def raw(self) -> Any:
        """The driver's own client or pool."""
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        return self.state is ConnectionState.DISCONNECTED

    def check_open(self) -> None:
        """Raise ``ConnectionClosedError`` when the connection has been closed."""
        if self.state is ConnectionState.DISCONNECTED:
            raise ConnectionClosedError(
                f"connection {self.name!r} ({self.protocol}) is closed; "
                "open a new one with Registry.add_connection"
            )

    async def ping(self) -> None:
        """Make one round trip to the backend; raise when it fails."""
        raise NotImplementedError

    def health_details(self) -> dict[str, object]:
        """Extra facts for the health report, such as pool usage."""
        return {}

    async def health_check(self) -> HealthStatus:
        """Ping the backend and report state and latency; never raises."""
        if self.closed:
            return HealthStatus(
                state=self.state, latency=0.0, message="connection is closed"
            )
        started = time.perf_counter()
        try:
            await self.ping()
        except Exception as exc:
            latency = time.perf_counter() - started
            self.state = ConnectionState.ERROR
            self.logger.warning(
                "health check of connection %r failed: %s",
                self.name,
                type(exc).__name__,
            )
            return HealthStatus(
                state=self.state,
                latency=latency,
                message=f"health check failed: {type(exc).__name__}",
                error=exc,
                details=self.health_details(),
            )
        latency = time.perf_counter() - started
        if self.state in (ConnectionState.ERROR, ConnectionState.RECONNECTING):
            self.state = ConnectionState.READY
        return HealthStatus(
            state=self.state,
            latency=latency,
            message="ok",
            details=self.health_details(),
        )

    async def close(self) -> None:
        """Release every resource; closing twice is harmless."""
        if self.state is ConnectionState.DISCONNECTED:
            return
        self.state = ConnectionState.DISCONNECTED
        await self._close()
        self.logger.info("closed connection %r (%s)", self.name, self.protocol)

    async def _close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
