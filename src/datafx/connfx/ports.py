"""Ports: the small interfaces an adapter implements for each behavior.

Ports speak bytes and seconds. The data layer (``datafx.Store``, ``Cache``,
``TransactionalStore``...) validates arguments, encodes values, converts
durations and wraps errors before it calls a port, so an adapter may assume:

- keys are non-empty ``str`` and key lists are non-empty;
- values are ``bytes``;
- ``ttl`` is ``None`` (no expiry) or a finite number of seconds greater than zero;
- the connection is open.

An adapter must not retry, encode values or apply policy. It raises
:class:`~datafx.connfx.errors.KeyNotFoundError` where a method says so, and may
let driver exceptions escape: the data layer wraps every exception that is not
a ``DataError`` into ``BackendError`` with the driver's exception as its cause.
``asyncio.CancelledError`` must always propagate. Port methods may be called
concurrently from many tasks of the event loop that opened the connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "CachePort",
    "KeyScanPort",
    "KeyValuePort",
    "QueryPort",
    "TransactionPort",
    "TransactionalPort",
]


@runtime_checkable
class KeyValuePort(Protocol):
    """Key-value storage of bytes. Expired keys must behave as missing."""

    async def get(self, key: str) -> bytes | None:
        """Return the value, or ``None`` when the key is missing or expired."""
        ...

    async def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        """Return the values of the keys that exist, in one round trip if possible."""
        ...

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Create or replace a key. ``ttl=None`` removes any expiry the key had."""
        ...

    async def set_many(
        self, items: Mapping[str, bytes], ttl: float | None = None
    ) -> None:
        """Create or replace several keys atomically where the backend allows it."""
        ...

    async def update(self, key: str, value: bytes) -> bool:
        """Replace the value of an existing key, keeping its expiry.

        Returns ``False``, writing nothing, when the key is missing or expired.
        Must be atomic: no other writer may create or delete the key between
        the existence check and the write.
        """
        ...

    async def remove(self, key: str) -> None:
        """Delete a key; a missing key is not an error."""
        ...

    async def remove_many(self, keys: Sequence[str]) -> None:
        """Delete several keys; missing keys are ignored."""
        ...

    async def exists(self, key: str) -> bool:
        """Return whether the key exists and has not expired."""
        ...


@runtime_checkable
class KeyScanPort(Protocol):
    """Key listing, an optional capability of a :class:`KeyValuePort`.

    A key-value port that can list its keys also implements ``scan``; the data
    layer checks for it with ``isinstance(port, KeyScanPort)``.
    """

    def scan(self, prefix: str = "") -> AsyncIterator[str]:
        """Yield every live key that starts with ``prefix`` (all keys for ``""``).

        Each key is yielded once; the order is the adapter's own. Keys written
        or removed while the scan runs may or may not appear. The caller may
        stop early, so an adapter must not hold a lock between two keys.
        ``prefix`` is a plain string: ``%``, ``_``, ``*`` and ``?`` in it
        match only themselves.
        """
        ...


@runtime_checkable
class CachePort(Protocol):
    """Expiry management on top of :class:`KeyValuePort` (``set`` takes ``ttl``)."""

    async def get_ttl(self, key: str) -> float | None:
        """Return the remaining lifetime in seconds, or ``None`` for no expiry.

        Raises ``KeyNotFoundError`` for a missing or expired key. Never returns
        zero, a negative number or a backend's sentinel code.
        """
        ...

    async def expire(self, key: str, ttl: float) -> bool:
        """Set a new lifetime; returns ``False`` when the key is missing or expired."""
        ...


class TransactionPort(KeyValuePort, CachePort, Protocol):
    """An open transaction. Its reads see its writes; others see them after commit."""

    async def commit(self) -> None:
        """Make every write visible atomically.

        Raises ``TransactionFailedError`` (``retryable=True`` for a conflict,
        serialization failure or deadlock) when the commit cannot happen; the
        transaction is then rolled back.
        """
        ...

    async def rollback(self) -> None:
        """Discard every write. Safe to call after a failed commit or twice."""
        ...


@runtime_checkable
class TransactionalPort(Protocol):
    """Opens transactions."""

    async def begin(self) -> TransactionPort:
        """Start a transaction. The caller ends it with ``commit`` or ``rollback``."""
        ...


@runtime_checkable
class QueryPort(Protocol):
    """SQL on the connection's own pool, with parameters always bound."""

    async def query(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        """Run a statement that returns rows; each row is a column -> value dict."""
        ...

    async def execute(self, sql: str, *args: Any) -> int:
        """Run a statement and return the number of affected rows (-1 if unknown)."""
        ...
