"""Errors raised by datafx, shared by the connection layer and the data layer.

Every error derives from :class:`DataError`::

    DataError
    ├── KeyNotFoundError            (also a KeyError)
    ├── ConnectionNotSupportedError
    ├── TransactionFailedError
    ├── NestedTransactionError      (also a RuntimeError)
    ├── QueueNotSupportedError
    ├── QueueNotFoundError
    ├── QueueFullError
    ├── MessageProcessingError
    ├── CodecError
    │   ├── MarshalError           (also a ValueError)
    │   └── UnmarshalError         (also a ValueError)
    ├── ConnectionClosedError
    ├── BackendError                a driver or server failure, chained with ``from``
    │   └── PoolTimeoutError        (also a TimeoutError)
    ├── ConnectionNotFoundError
    ├── ConnectionAlreadyExistsError
    ├── UnsupportedProtocolError
    └── InvalidConfigError          (also a ValueError)

The classes live in the connection layer so that adapters can raise them
without importing the data layer; ``datafx`` re-exports all of them.
Cancellation (``asyncio.CancelledError``) and Python's ``TimeoutError`` raised
by ``asyncio.timeout`` are never wrapped.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "CodecError",
    "ConnectionAlreadyExistsError",
    "ConnectionClosedError",
    "ConnectionNotFoundError",
    "ConnectionNotSupportedError",
    "DataError",
    "InvalidConfigError",
    "KeyNotFoundError",
    "MarshalError",
    "MessageProcessingError",
    "NestedTransactionError",
    "PoolTimeoutError",
    "QueueFullError",
    "QueueNotFoundError",
    "QueueNotSupportedError",
    "TransactionFailedError",
    "UnmarshalError",
    "UnsupportedProtocolError",
]


class DataError(Exception):
    """Base class of every error that datafx raises."""


class KeyNotFoundError(DataError, KeyError):
    """A key is missing or expired."""

    def __init__(self, key: str, message: str | None = None) -> None:
        self.key = key
        super().__init__(message or f"key not found: {key!r}")

    def __str__(self) -> str:
        # KeyError.__str__ would print the repr of the message.
        return str(self.args[0])


class ConnectionNotSupportedError(DataError):
    """A data type was given a connection that lacks the behavior it needs."""

    def __init__(self, protocol: str, behavior: str) -> None:
        self.protocol = protocol
        self.behavior = behavior
        super().__init__(
            f"connection with protocol {protocol!r} does not support the "
            f"{behavior!r} behavior; use a backend that lists it in conn.behaviors"
        )


class TransactionFailedError(DataError):
    """A commit failed or conflicted with another writer.

    ``retryable`` is true when running the same transaction again may
    succeed (a write conflict, a serialization failure or a deadlock).
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        self.retryable = retryable
        super().__init__(message)


class NestedTransactionError(DataError, RuntimeError):
    """A transaction was opened inside another one on the same connection.

    Backends disagree on what a nested transaction would mean: a savepoint,
    an independent commit, or a deadlock on SQLite's single writer. So datafx
    rejects it everywhere. Use the outer transaction's object instead.
    """


class QueueNotSupportedError(DataError):
    """The backend cannot offer the requested queue or stream operation."""


class QueueNotFoundError(DataError):
    """A queue or stream was used before it was declared or created."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"queue or stream not found: {name!r}; declare a queue with "
            "Queue.declare_queue() (datafx queue declare), or create a stream "
            "by sending to it or creating a consumer group on it"
        )


class QueueFullError(DataError):
    """A publish was rejected because the queue has ``max_length`` messages.

    Raised only by queues declared with ``args={"overflow": "reject-publish"}``;
    other full queues drop their oldest message instead.
    """

    def __init__(self, name: str, max_length: int) -> None:
        self.name = name
        self.max_length = max_length
        super().__init__(
            f"queue {name!r} is full ({max_length} messages) and rejects publishes; "
            "consume messages first, or declare it without overflow='reject-publish' "
            "to drop the oldest message instead"
        )


class MessageProcessingError(DataError):
    """A message could not be decoded or handled."""


class CodecError(DataError):
    """Base class of encoding and decoding errors."""


class MarshalError(CodecError, ValueError):
    """A value cannot be encoded; nothing was written."""


class UnmarshalError(CodecError, ValueError):
    """Stored bytes cannot be decoded into the requested type.

    ``key`` names the stored key when the bytes came from a store, else ``None``.
    """

    key: str | None = None


class ConnectionClosedError(DataError):
    """An operation was attempted on a closed connection."""


class BackendError(DataError):
    """A driver or server failure, with the driver's exception as ``__cause__``."""

    def __init__(
        self, message: str, *, protocol: str = "", operation: str = ""
    ) -> None:
        self.protocol = protocol
        self.operation = operation
        super().__init__(message)


class PoolTimeoutError(BackendError, TimeoutError):
    """No pooled connection became free within the configured timeout."""


class ConnectionNotFoundError(DataError):
    """No connection is registered under the requested name."""


class ConnectionAlreadyExistsError(DataError):
    """A connection with the same name is already registered."""


class UnsupportedProtocolError(DataError):
    """No factory is registered for a protocol, or its driver is not installed."""


class InvalidConfigError(DataError, ValueError):
    """A malformed DSN or configuration value. The message never contains a password."""
