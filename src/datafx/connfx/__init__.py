"""Connections: configuration, DSN parsing, the registry, ports and adapters.

This layer never imports the portable data layer (``datafx.Store`` and friends).
"""

from datafx.connfx.behaviors import Behavior, ConnectionState, HealthStatus
from datafx.connfx.config import ConfigTarget, to_seconds
from datafx.connfx.connection import Connection
from datafx.connfx.dsn import ParsedDSN, mask_dsn, parse_dsn
from datafx.connfx.errors import (
    ConnectionAlreadyExistsError,
    ConnectionNotFoundError,
    InvalidConfigError,
    UnsupportedProtocolError,
)
from datafx.connfx.ports import (
    CachePort,
    KeyScanPort,
    KeyValuePort,
    QueryPort,
    TransactionalPort,
    TransactionPort,
)
from datafx.connfx.queueing import ConsumerConfig, QueueConfig
from datafx.connfx.registry import (
    DEFAULT_CONNECTION,
    ConnectionFactory,
    LazyFactory,
    Registry,
)

__all__ = [
    "DEFAULT_CONNECTION",
    "Behavior",
    "CachePort",
    "ConfigTarget",
    "Connection",
    "ConnectionAlreadyExistsError",
    "ConnectionFactory",
    "ConnectionNotFoundError",
    "ConnectionState",
    "ConsumerConfig",
    "HealthStatus",
    "InvalidConfigError",
    "KeyScanPort",
    "KeyValuePort",
    "LazyFactory",
    "ParsedDSN",
    "QueryPort",
    "QueueConfig",
    "Registry",
    "TransactionPort",
    "TransactionalPort",
    "UnsupportedProtocolError",
    "mask_dsn",
    "parse_dsn",
    "to_seconds",
]
