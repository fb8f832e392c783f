"""Behaviors, connection states and health reports."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = ["Behavior", "ConnectionState", "HealthStatus"]


class Behavior(enum.StrEnum):
    """A capability a connection offers; data types look connections up by it."""

    KEY_VALUE = "key-value"
    DOCUMENT = "document"
    RELATIONAL = "relational"
    TRANSACTIONAL = "transactional"
    CACHE = "cache"
    QUEUE = "queue"
    STREAMING = "streaming"
    STATEFUL = "stateful"
    STATELESS = "stateless"


class ConnectionState(enum.StrEnum):
    """Lifecycle state of a connection."""

    NOT_INITIALIZED = "not-initialized"
    CONNECTED = "connected"
    LIVE = "live"
    READY = "ready"
    DISCONNECTED = "disconnected"
    ERROR = "error"
    RECONNECTING = "reconnecting"


@dataclass(frozen=True, slots=True)
class HealthStatus:
    """Result of ``Connection.health_check()``.

    ``latency`` is the round trip of the check in seconds. ``error`` is the
    exception that made the check fail, or ``None``.
    """

    state: ConnectionState
    latency: float
    message: str = ""
    error: BaseException | None = None
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))
    details: dict[str, object] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return self.error is None and self.state in (
            ConnectionState.CONNECTED,
            ConnectionState.LIVE,
            ConnectionState.READY,
        )
