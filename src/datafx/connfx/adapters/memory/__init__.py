"""The in-process memory backend (``memory://`` and ``memory://name``)."""

from datafx.connfx.adapters.memory.connection import (
    MemoryConnection,
    MemoryDatabase,
    MemoryFactory,
)

__all__ = ["MemoryConnection", "MemoryDatabase", "MemoryFactory", "factory"]

factory = MemoryFactory()
