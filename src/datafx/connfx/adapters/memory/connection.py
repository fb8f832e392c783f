"""The memory connection and its factory."""

from __future__ import annotations

import logging
from typing import Any

from datafx.connfx.adapters.memory.kv import (
    KeySpace,
    MemoryKeyValue,
    MemoryTransactional,
)
from datafx.connfx.adapters.memory.queue import MemoryQueues
from datafx.connfx.behaviors import Behavior, ConnectionState
from datafx.connfx.config import ConfigTarget
from datafx.connfx.connection import Connection

__all__ = ["MemoryConnection", "MemoryDatabase", "MemoryFactory"]


class MemoryDatabase:
    """Everything one memory backend stores, queue and stream state included."""

    def __init__(self, name: str | None) -> None:
        self.name = name
        self.keys = KeySpace()
        self.extensions: dict[str, Any] = {}
        self.references = 0


# Databases opened as memory://name, shared by the connections of this process.
_SHARED: dict[str, MemoryDatabase] = {}


def _acquire(name: str | None) -> MemoryDatabase:
    if name is None:
        database = MemoryDatabase(None)
    else:
        database = _SHARED.setdefault(name, MemoryDatabase(name))
    database.references += 1
    return database


def _release(database: MemoryDatabase) -> None:
    database.references -= 1
    if database.references <= 0 and database.name is not None:
        _SHARED.pop(database.name, None)


class MemoryConnection(Connection):
    """A process-local backend: ``memory://`` is private, ``memory://name`` is shared.

    A shared database lives while at least one connection to it is open.
    """

    protocol = "memory"
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
        self, name: str, target: ConfigTarget, logger: logging.Logger | None = None
    ) -> None:
        super().__init__(name, target, logger)
        self.database = _acquire(target.parsed().host)
        kv = MemoryKeyValue(self.database.keys)
        self.key_value = kv
        self.cache = kv
        self.transactional = MemoryTransactional(self.database.keys)
        queues = MemoryQueues(self.database.extensions)
        self.queue = queues
        self.stream = queues
        self.state = ConnectionState.READY

    @property
    def raw(self) -> MemoryDatabase:
        return self.database

    async def ping(self) -> None:
        self.check_open()

    def health_details(self) -> dict[str, object]:
        return {"keys": len(self.database.keys.entries)}

    async def _close(self) -> None:
        _release(self.database)


class MemoryFactory:
    protocol = "memory"

    async def create(
        self, name: str, target: ConfigTarget, logger: logging.Logger | None
    ) -> MemoryConnection:
        return MemoryConnection(name, target, logger)
