"""``Cache``: key-values with expiry."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar, overload

from datafx._base import Translate, check_key, require
from datafx.codec import Codec
from datafx.connfx.behaviors import Behavior
from datafx.connfx.connection import Connection
from datafx.connfx.errors import KeyNotFoundError
from datafx.connfx.ports import CachePort
from datafx.store import Store, _check_bytes, check_ttl

__all__ = ["Cache"]

T = TypeVar("T")


class Cache:
    """Values with an optional time to live.

    ``ttl`` is a ``timedelta`` or seconds, at least one millisecond; zero or
    negative raises ``ValueError``. ``set`` without a TTL stores a key that
    never expires (removing an old TTL). An expired key behaves as missing
    on every backend, whenever the backend's own sweep runs.
    """

    def __init__(self, conn: Connection, codec: Codec | None = None) -> None:
        self._ttl_port: CachePort = require(conn, Behavior.CACHE, conn.cache)
        self._store = Store(conn, codec)
        self._conn = conn
        self._t_ttl = Translate(conn, "ttl")

    @property
    def connection(self) -> Connection:
        return self._conn

    async def set(
        self, key: str, value: Any, ttl: float | timedelta | None = None
    ) -> None:
        key = check_key(key)
        seconds = check_ttl(ttl)
        await self._store._set_bytes(key, self._store.codec.encode(value), seconds)

    async def set_raw(
        self, key: str, value: bytes, ttl: float | timedelta | None = None
    ) -> None:
        key = check_key(key)
        seconds = check_ttl(ttl)
        await self._store._set_bytes(key, _check_bytes(value), seconds)

    @overload
    async def get(self, key: str) -> Any: ...

    @overload
    async def get(self, key: str, type_: type[T]) -> T: ...

    async def get(self, key: str, type_: Any = None) -> Any:
        """Return the value decoded into ``type_``; raises ``KeyNotFoundError``."""
        return await self._store.get(key, type_)

    async def get_raw(self, key: str) -> bytes:
        return await self._store.get_raw(key)

    async def get_ttl(self, key: str) -> timedelta | None:
        """Return the remaining time to live, or ``None`` for a key without expiry.

        Raises ``KeyNotFoundError`` for a missing or expired key.
        """
        key = check_key(key)
        self._conn.check_open()
        with self._t_ttl:
            seconds = await self._ttl_port.get_ttl(key)
        return None if seconds is None else timedelta(seconds=seconds)

    async def expire(self, key: str, ttl: float | timedelta) -> None:
        """Give an existing key a new time to live; raises ``KeyNotFoundError``."""
        key = check_key(key)
        seconds = check_ttl(ttl)
        if seconds is None:
            raise ValueError(
                "ttl must be a positive duration, got None; "
                "use set() without ttl to make a key permanent"
            )
        self._conn.check_open()
        with self._t_ttl:
            found = await self._ttl_port.expire(key, seconds)
        if not found:
            raise KeyNotFoundError(key)

    async def delete(self, key: str) -> None:
        """Delete ``key``; deleting a missing key is not an error."""
        await self._store.remove(key)

    async def exists(self, key: str) -> bool:
        return await self._store.exists(key)
