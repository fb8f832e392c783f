"""datafx: store, cache, queue and stream data through one asyncio API.

The data types (``Store``, ``TransactionalStore``, ``Cache``, ``Queue``,
``QueueStream``) work on any connection from :mod:`datafx.connfx` that offers
the behavior they need, so the same code runs on memory, SQLite, Redis,
PostgreSQL or MySQL.
"""

from datafx import connfx
from datafx.cache import Cache
from datafx.codec import Codec, JsonCodec
from datafx.connfx.errors import (
    BackendError,
    CodecError,
    ConnectionClosedError,
    ConnectionNotSupportedError,
    DataError,
    KeyNotFoundError,
    MarshalError,
    MessageProcessingError,
    NestedTransactionError,
    PoolTimeoutError,
    QueueFullError,
    QueueNotFoundError,
    QueueNotSupportedError,
    TransactionFailedError,
    UnmarshalError,
)
from datafx.message import Message, StreamEntry
from datafx.queue import Queue, Subscription
from datafx.store import Store, Transaction, TransactionalStore
from datafx.stream import ConsumerGroupInfo, QueueStream, StreamInfo

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "Cache",
    "Codec",
    "CodecError",
    "ConnectionClosedError",
    "ConnectionNotSupportedError",
    "ConsumerGroupInfo",
    "DataError",
    "JsonCodec",
    "KeyNotFoundError",
    "MarshalError",
    "Message",
    "MessageProcessingError",
    "NestedTransactionError",
    "PoolTimeoutError",
    "Queue",
    "QueueFullError",
    "QueueNotFoundError",
    "QueueNotSupportedError",
    "QueueStream",
    "Store",
    "StreamEntry",
    "StreamInfo",
    "Subscription",
    "Transaction",
    "TransactionFailedError",
    "TransactionalStore",
    "UnmarshalError",
    "connfx",
]
