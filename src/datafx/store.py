"""Key-value storage: ``Store`` and ``TransactionalStore``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import timedelta
from typing import Any, TypeVar, overload

from datafx._base import Translate, check_key, check_keys, require
from datafx.codec import Codec, default_codec
from datafx.connfx.behaviors import Behavior
from datafx.connfx.config import to_seconds
from datafx.connfx.connection import Connection
from datafx.connfx.errors import (
    ConnectionNotSupportedError,
    KeyNotFoundError,
    NestedTransactionError,
    TransactionFailedError,
    UnmarshalError,
)
from datafx.connfx.ports import (
    KeyScanPort,
    KeyValuePort,
    TransactionalPort,
    TransactionPort,
)

__all__ = ["Store", "Transaction", "TransactionalStore"]

T = TypeVar("T")
R = TypeVar("R")

_logger = logging.getLogger("datafx.store")

# (connection id, task id) of each transaction open in the current context.
_ACTIVE_TRANSACTIONS: ContextVar[frozenset[tuple[int, int]]] = ContextVar(
    "datafx_active_transactions", default=frozenset()
)

# The longest accepted TTL: 100 years. Longer lifetimes overflow the
# date types of some backends (MySQL DATETIME ends in 9999).
MAX_TTL_SECONDS = 100 * 365 * 24 * 3600


class Store:
    """Typed key-value operations on any connection with the key-value behavior.

    Values are encoded by ``codec`` (JSON by default); the ``*_raw`` methods
    store bytes as they are.
    """

    def __init__(self, conn: Connection, codec: Codec | None = None) -> None:
        port = require(conn, Behavior.KEY_VALUE, conn.key_value)
        self._bind(conn, port, codec)

    def _bind(self, conn: Connection, port: KeyValuePort, codec: Codec | None) -> None:
        self._conn = conn
        self._kv = port
        self._codec = codec or default_codec()
        self._t_get = Translate(conn, "get")
        self._t_set = Translate(conn, "set")
        self._t_update = Translate(conn, "update")
        self._t_remove = Translate(conn, "remove")
        self._t_exists = Translate(conn, "exists")
        self._t_batch = Translate(conn, "batch")
        self._t_scan = Translate(conn, "scan")

    @property
    def connection(self) -> Connection:
        return self._conn

    @property
    def codec(self) -> Codec:
        return self._codec

    def _decode(self, key: str, data: bytes, type_: Any) -> Any:
        try:
            return self._codec.decode(data, type_)
        except UnmarshalError as exc:
            name = "JSON" if type_ is None else getattr(type_, "__name__", repr(type_))
            error = UnmarshalError(
                f"cannot decode the value of key {key!r} into {name}: {exc}"
            )
            error.key = key
            raise error from exc

    def _check_open(self) -> None:
        self._conn.check_open()

    # -- reads -----------------------------------------------------------

    @overload
    async def get(self, key: str) -> Any: ...

    @overload
    async def get(self, key: str, type_: type[T]) -> T: ...

    async def get(self, key: str, type_: Any = None) -> Any:
        """Return the value of ``key`` decoded into ``type_``.

        Raises ``KeyNotFoundError`` for a missing or expired key and
        ``UnmarshalError`` when the stored bytes do not fit ``type_``.
        """
        data = await self.get_raw(key)
        return self._decode(key, data, type_)

    async def get_raw(self, key: str) -> bytes:
        """Return the stored bytes of ``key``; raises ``KeyNotFoundError``."""
        key = check_key(key)
        self._check_open()
        with self._t_get:
            data = await self._kv.get(key)
        if data is None:
            raise KeyNotFoundError(key)
        return data

    async def exists(self, key: str) -> bool:
        key = check_key(key)
        self._check_open()
        with self._t_exists:
            return await self._kv.exists(key)

    @overload
    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]: ...

    @overload
    async def get_many(self, keys: Iterable[str], type_: type[T]) -> dict[str, T]: ...

    async def get_many(self, keys: Iterable[str], type_: Any = None) -> dict[str, Any]:
        """Return the values of the keys that exist; missing keys are absent."""
        keys = check_keys(keys)
        if not keys:
            return {}
        self._check_open()
        with self._t_batch:
            found = await self._kv.get_many(keys)
        decode = self._codec.decode
        try:
            return {key: decode(data, type_) for key, data in found.items()}
        except UnmarshalError:
            # Decode again one by one, so that the error names the key.
            for key, data in found.items():
                self._decode(key, data, type_)
            raise

    async def scan_keys(self, prefix: str = "") -> AsyncIterator[str]:
        """Yield the keys that start with ``prefix``; every key for ``""``.

        Each key comes once, in an order the backend chooses (ascending on
        memory and SQLite). Keys written during the scan may or may not appear.
        Raises ``ConnectionNotSupportedError`` when the backend cannot list keys.
        """
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
        if not isinstance(self._kv, KeyScanPort):
            raise ConnectionNotSupportedError(self._conn.protocol, "key scan")
        self._check_open()
        keys = self._kv.scan(prefix)
        try:
            while True:
                with self._t_scan:
                    try:
                        key = await anext(keys)
                    except StopAsyncIteration:
                        return
                yield key
        finally:
            close = getattr(keys, "aclose", None)
            if close is not None:
                await close()

    # -- writes ----------------------------------------------------------

    async def set(self, key: str, value: Any) -> None:
        """Create or replace ``key``; any expiry it had is removed."""
        key = check_key(key)
        data = self._codec.encode(value)
        await self._set_bytes(key, data, None)

    async def set_raw(self, key: str, value: bytes) -> None:
        key = check_key(key)
        await self._set_bytes(key, _check_bytes(value), None)

    async def _set_bytes(self, key: str, data: bytes, ttl: float | None) -> None:
        self._check_open()
        with self._t_set:
            await self._kv.set(key, data, ttl)

    async def update(self, key: str, value: Any) -> None:
        """Replace the value of an existing key, keeping its expiry.

        Raises ``KeyNotFoundError`` (writing nothing) when the key is missing.
        """
        key = check_key(key)
        await self._update_bytes(key, self._codec.encode(value))

    async def update_raw(self, key: str, value: bytes) -> None:
        key = check_key(key)
        await self._update_bytes(key, _check_bytes(value))

    async def _update_bytes(self, key: str, data: bytes) -> None:
        self._check_open()
        with self._t_update:
            updated = await self._kv.update(key, data)
        if not updated:
            raise KeyNotFoundError(key)

    async def remove(self, key: str) -> None:
        """Delete ``key``; deleting a missing key is not an error."""
        key = check_key(key)
        self._check_open()
        with self._t_remove:
            await self._kv.remove(key)

    async def set_many(self, items: Mapping[str, Any]) -> None:
        """Create or replace several keys; every value is encoded before any write."""
        encoded = self._encode_many(items)
        if not encoded:
            return
        self._check_open()
        with self._t_batch:
            await self._kv.set_many(encoded, None)

    def _encode_many(self, items: Mapping[str, Any]) -> dict[str, bytes]:
        if not isinstance(items, Mapping):
            raise TypeError(
                f"items must be a mapping of key to value, not {type(items).__name__}"
            )
        encode = self._codec.encode
        return {check_key(key): encode(value) for key, value in items.items()}

    async def remove_many(self, keys: Iterable[str]) -> None:
        keys = check_keys(keys)
        if not keys:
            return
        self._check_open()
        with self._t_batch:
            await self._kv.remove_many(keys)


def _check_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise TypeError(
        f"raw values must be bytes, not {type(value).__name__}; "
        "use set() to store encoded values"
    )


def check_ttl(ttl: float | timedelta | None) -> float | None:
    """Return the TTL in seconds, or ``None``; zero or negative is a ``ValueError``."""
    if ttl is None:
        return None
    seconds = to_seconds(ttl, "ttl")
    if seconds > MAX_TTL_SECONDS:
        raise ValueError(
            f"ttl must be at most {MAX_TTL_SECONDS} seconds (100 years), got {ttl!r}; "
            "pass ttl=None for a key that never expires"
        )
    if seconds < 0.001:
        raise ValueError(
            f"ttl must be at least one millisecond, got {ttl!r}; "
            "pass ttl=None for a key that never expires"
        )
    return seconds


class Transaction(Store):
    """The ``Store`` API inside one transaction, with TTL helpers.

    Reads see the transaction's own writes; other connections see nothing
    until the commit.
    """

    def __init__(
        self, conn: Connection, port: TransactionPort, codec: Codec | None
    ) -> None:
        self._bind(conn, port, codec)
        self._tx = port
        self._t_ttl = Translate(conn, "ttl")

    async def set(
        self, key: str, value: Any, ttl: float | timedelta | None = None
    ) -> None:
        """Create or replace ``key``, with an optional TTL."""
        key = check_key(key)
        seconds = check_ttl(ttl)
        await self._set_bytes(key, self._codec.encode(value), seconds)

    async def get_ttl(self, key: str) -> timedelta | None:
        key = check_key(key)
        self._check_open()
        with self._t_ttl:
            seconds = await self._tx.get_ttl(key)
        return None if seconds is None else timedelta(seconds=seconds)

    async def expire(self, key: str, ttl: float | timedelta) -> None:
        key = check_key(key)
        seconds = check_ttl(ttl)
        if seconds is None:
            raise ValueError("ttl must be a positive duration, got None")
        self._check_open()
        with self._t_ttl:
            found = await self._tx.expire(key, seconds)
        if not found:
            raise KeyNotFoundError(key)


class TransactionalStore:
    """Runs groups of key-value operations atomically.

    ``async with tx_store.transaction() as tx:`` commits when the block ends
    and rolls back when it raises or is cancelled; the block's exception
    propagates unchanged. A failed commit raises ``TransactionFailedError``.
    """

    def __init__(self, conn: Connection, codec: Codec | None = None) -> None:
        self._port: TransactionalPort = require(
            conn, Behavior.TRANSACTIONAL, conn.transactional
        )
        self._conn = conn
        self._codec = codec
        self._t_begin = Translate(conn, "begin")
        self._t_commit = Translate(conn, "commit")

    @property
    def connection(self) -> Connection:
        return self._conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        self._conn.check_open()
        # Tasks created inside a transaction inherit this context variable,
        # so the entry also names the task: their own transactions are not nested.
        marker = (id(self._conn), id(asyncio.current_task()))
        active = _ACTIVE_TRANSACTIONS.get()
        if marker in active:
            raise NestedTransactionError(
                f"a transaction on connection {self._conn.name!r} is already open "
                "in this task; nested transactions are not supported, so use the "
                "outer transaction's object"
            )
        with self._t_begin:
            port = await self._port.begin()
        token = _ACTIVE_TRANSACTIONS.set(active | {marker})
        try:
            yield Transaction(self._conn, port, self._codec)
        except BaseException:
            await _rollback_quietly(port, self._conn)
            raise
        finally:
            _ACTIVE_TRANSACTIONS.reset(token)
        try:
            with self._t_commit:
                await port.commit()
        except TransactionFailedError:
            raise
        except asyncio.CancelledError:
            await _rollback_quietly(port, self._conn)
            raise
        except Exception as exc:
            await _rollback_quietly(port, self._conn)
            raise TransactionFailedError(f"commit failed: {exc}") from exc

    async def execute_transaction(
        self, fn: Callable[[Transaction], Awaitable[R]], *, retries: int = 0
    ) -> R:
        """Run ``fn(tx)`` in a transaction and return its result.

        When the commit fails with a retryable ``TransactionFailedError``
        (a conflict or a serialization failure), ``fn`` runs again, up to
        ``retries`` more times. So ``fn`` must have no side effects outside
        the transaction.
        """
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be an int of 0 or more, got {retries!r}")
        attempt = 0
        while True:
            try:
                async with self.transaction() as tx:
                    result = await fn(tx)
                return result
            except TransactionFailedError as exc:
                if not exc.retryable or attempt >= retries:
                    raise
                attempt += 1
                # Conflicts are expected under contention; only giving up
                # (the raise above) is worth a caller's attention.
                _logger.debug(
                    "transaction on %r conflicted, retrying (%d of %d)",
                    self._conn.name,
                    attempt,
                    retries,
                )


async def _rollback_quietly(port: TransactionPort, conn: Connection) -> None:
    """Roll back, shielded from cancellation, without hiding the original error."""
    try:
        await asyncio.shield(port.rollback())
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        _logger.warning(
            "rollback on connection %r failed: %s", conn.name, type(exc).__name__
        )
