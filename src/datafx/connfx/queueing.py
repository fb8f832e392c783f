"""Queue and consumer configuration, and the ports of queue and stream adapters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol, runtime_checkable

from datafx.connfx.config import to_seconds

__all__ = [
    "DEFAULT_GROUP",
    "DEFAULT_VISIBILITY_TIMEOUT",
    "OVERFLOW_DROP_HEAD",
    "OVERFLOW_REJECT_PUBLISH",
    "START_AT_BEGINNING",
    "START_AT_NEW",
    "ConsumerConfig",
    "GroupInfo",
    "QueueConfig",
    "QueueInfo",
    "QueuePort",
    "RawEntry",
    "RawMessage",
    "StreamPort",
]


OVERFLOW_DROP_HEAD = "drop-head"
OVERFLOW_REJECT_PUBLISH = "reject-publish"


@dataclass(slots=True)
class QueueConfig:
    """Settings of a queue declaration.

    ``max_length`` of 0 means unbounded; when a queue is full the oldest
    message is dropped, unless ``args={"overflow": "reject-publish"}``.
    ``message_ttl`` (seconds or ``timedelta``) drops messages not consumed in time.
    """

    durable: bool = False
    auto_delete: bool = False
    exclusive: bool = False
    max_length: int = 0
    message_ttl: float | timedelta | None = None
    args: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.max_length, bool) or not isinstance(self.max_length, int):
            raise TypeError(
                f"max_length must be an int, not {type(self.max_length).__name__}"
            )
        if self.max_length < 0:
            raise ValueError(
                f"max_length must be 0 (unbounded) or more, got {self.max_length}"
            )
        if self.message_ttl is not None:
            self.message_ttl = to_seconds(self.message_ttl, "message_ttl")
        overflow = self.args.get("overflow", OVERFLOW_DROP_HEAD)
        if overflow not in (OVERFLOW_DROP_HEAD, OVERFLOW_REJECT_PUBLISH):
            raise ValueError(
                f"args['overflow'] must be {OVERFLOW_DROP_HEAD!r} or "
                f"{OVERFLOW_REJECT_PUBLISH!r}, got {overflow!r}"
            )

    @property
    def overflow(self) -> str:
        """``"drop-head"`` (the default) or ``"reject-publish"``."""
        return str(self.args.get("overflow", OVERFLOW_DROP_HEAD))

    @property
    def message_ttl_seconds(self) -> float | None:
        return None if self.message_ttl is None else float(self.message_ttl)  # type: ignore[arg-type]


@dataclass(slots=True)
class ConsumerConfig:
    """Settings of a consumer: fetching, acknowledging and retrying messages.

    ``prefetch_count`` bounds unacked messages held by one consumer.
    ``block_timeout`` is how long one fetch waits for new messages.
    A message handled without success more than ``max_retries`` times goes
    to the dead-letter queue; each retry waits ``retry_delay``.
    """

    auto_ack: bool = False
    exclusive: bool = False
    no_local: bool = False
    no_wait: bool = False
    prefetch_count: int = 10
    block_timeout: float | timedelta = 5.0
    max_retries: int = 3
    retry_delay: float | timedelta = 1.0
    args: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("prefetch_count", "max_retries"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
        if self.prefetch_count < 1:
            raise ValueError(
                f"prefetch_count must be 1 or more, got {self.prefetch_count}"
            )
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {self.max_retries}")
        self.block_timeout = to_seconds(
            self.block_timeout, "block_timeout", allow_zero=True
        )
        self.retry_delay = to_seconds(self.retry_delay, "retry_delay", allow_zero=True)


# -- ports -------------------------------------------------------------------
#
# Queues and streams share one storage model, the one Redis Streams uses: an
# append-only log of messages, read by consumer groups. Each group has a cursor
# (its last delivered id) and a pending list of the messages it delivered but
# no consumer of it acknowledged yet. A plain queue is a log whose consumers
# without a group share the group ``DEFAULT_GROUP``, created with the queue.
#
# The portable layer (``datafx.Queue`` and ``datafx.QueueStream``) owns the
# policy: retry counting, retry delays, dead-lettering, prefetch, lease
# extension and releasing a cancelled consumer's messages. An adapter stores
# and hands out messages and never decides whether one is retried.

DEFAULT_GROUP = "default"
"""The group shared by every consumer of a queue that names no group."""

DEFAULT_VISIBILITY_TIMEOUT = 30.0
"""Seconds a fetched queue message stays leased to its consumer (30 s).

The consumer loop extends the lease while its handler runs, so only a
consumer that died or hung lets it lapse. Set it per consumer with
``ConsumerConfig(args={"visibility_timeout": seconds})``.
"""

START_AT_BEGINNING = "0"
START_AT_NEW = "$"


@dataclass(frozen=True, slots=True)
class RawMessage:
    """A message as a port returns it, before the portable layer decodes it.

    ``headers`` is the block the portable layer gave to ``publish``, returned
    unchanged (``b""`` when there were none). ``timestamp`` is the publish
    time in seconds since the Unix epoch, as the backend recorded it.
    ``delivery_count`` counts deliveries to the group, this one included, so
    it is 1 on the first delivery. ``receipt_handle`` identifies this pending
    message for ``ack``, ``release`` and ``extend`` within its group.
    """

    message_id: str
    body: bytes
    headers: bytes
    timestamp: float
    delivery_count: int
    receipt_handle: str


@dataclass(frozen=True, slots=True)
class RawEntry:
    """A stored message without delivery state, as ``info`` reports it."""

    message_id: str
    body: bytes
    headers: bytes
    timestamp: float


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """The state of one consumer group.

    ``consumers`` counts the consumers the group has seen. ``pending`` counts
    messages delivered and not yet acknowledged. ``lag`` counts stored
    messages after ``last_delivered_id`` (``None`` when the backend cannot
    tell). ``entries_read`` counts messages the group has read for the first
    time. ``last_delivered_id`` is ``"0"`` before the first delivery.
    """

    name: str
    consumers: int
    pending: int
    lag: int | None
    last_delivered_id: str
    entries_read: int


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """The state of one queue or stream.

    ``length`` counts stored messages that have not expired. For a queue,
    messages that every group has acknowledged are not counted. ``stream``
    is true for a log declared as a stream, which keeps acknowledged
    entries until it is trimmed.
    """

    name: str
    stream: bool
    length: int
    first_entry: RawEntry | None
    last_entry: RawEntry | None
    last_generated_id: str
    groups: list[GroupInfo]
    max_length: int = 0
    message_ttl: float | None = None


@runtime_checkable
class QueuePort(Protocol):
    """Durable messaging with consumer groups: the queue behavior.

    Every method may be called concurrently from many tasks of the event loop
    that opened the connection, and by other connections and processes using
    the same backend. The caller passes validated arguments: names are
    non-empty ``str``, ``count`` is 1 or more, durations are finite seconds
    of 0 or more, and ``headers`` is the portable layer's encoded block.

    An adapter must not retry failed operations, decode bodies or headers,
    or dead-letter anything. It raises
    :class:`~datafx.connfx.errors.QueueNotFoundError` when a method needs a
    queue (or a group) that was never declared, and lets other driver
    exceptions escape: the portable layer wraps them in ``BackendError``.
    ``asyncio.CancelledError`` must propagate, and a cancelled ``fetch`` or
    ``claim`` must not leave messages leased to a consumer that never
    received them (release them, or make the operation atomic).
    """

    async def declare(
        self, name: str, config: QueueConfig, *, stream: bool = False
    ) -> bool:
        """Create the queue (``stream=False``) or stream, if it does not exist yet.

        A queue is created with the group ``DEFAULT_GROUP`` starting at the
        beginning. A stream is created with no group. Returns ``True`` when
        this call created it. Declaring an existing name changes nothing and
        returns ``False``: the first declaration's settings stay.
        """
        ...

    async def exists(self, name: str) -> bool:
        """Return whether a queue or stream with this name was declared."""
        ...

    async def publish(self, name: str, body: bytes, headers: bytes) -> str:
        """Append one message and return its id.

        Ids increase with each publish to the same name. The adapter records
        the publish time. When ``max_length`` is set and the queue is full,
        the oldest message is removed first, or, with
        ``args={"overflow": "reject-publish"}``, nothing is stored and
        :class:`~datafx.connfx.errors.QueueFullError` is raised.
        Raises ``QueueNotFoundError`` for a name never declared. Waiting
        ``fetch`` calls of this process must wake at once.
        """
        ...

    async def fetch(
        self,
        name: str,
        group: str,
        consumer: str,
        count: int,
        *,
        visibility_timeout: float | None,
        block: float,
    ) -> list[RawMessage]:
        """Lease up to ``count`` messages of ``group`` to ``consumer``.

        Ready pending messages come first, in id order: those released with
        ``release`` whose delay has passed and, unless ``visibility_timeout``
        is ``None``, those whose lease expired. New messages after the
        group's last delivered id follow, and advance it. Each returned
        message gets ``delivery_count`` raised by one and a lease until now
        plus ``visibility_timeout`` seconds. With ``visibility_timeout=None``
        (streams) a leased message stays pending until it is acknowledged,
        released or claimed.

        Waits up to ``block`` seconds for the first message and returns an
        empty list when none came. Expired messages (``message_ttl``) and
        messages trimmed away are never returned. The group must exist.
        """
        ...

    async def ack(self, name: str, group: str, receipt_handles: Sequence[str]) -> int:
        """Remove messages from the group's pending list; return how many were pending.

        Unknown or already acknowledged handles are ignored. A queue message
        acknowledged by every group may then be deleted.
        """
        ...

    async def release(
        self, name: str, group: str, receipt_handles: Sequence[str], delay: float
    ) -> None:
        """Hand leased messages back; ``fetch`` returns them after ``delay`` seconds.

        They stay pending to the group, held by no consumer, and keep their
        delivery count, which the next delivery raises.
        """
        ...

    async def extend(
        self,
        name: str,
        group: str,
        consumer: str,
        receipt_handles: Sequence[str],
        visibility_timeout: float,
    ) -> list[str]:
        """Renew the leases ``consumer`` holds to now plus ``visibility_timeout``.

        Returns the handles that were still leased to ``consumer``; a message
        that is missing from the result was acknowledged, released or claimed
        by another consumer.
        """
        ...

    async def claim(
        self,
        name: str,
        group: str,
        consumer: str,
        min_idle: float,
        count: int,
        *,
        visibility_timeout: float | None,
    ) -> list[RawMessage]:
        """Move up to ``count`` messages idle for ``min_idle`` seconds to ``consumer``.

        A message is idle since its last delivery. Claimed messages get a
        new lease as in ``fetch`` (idle time reset, ``delivery_count`` raised
        by one), so repeated calls page through every idle message. Pending
        messages whose entry was trimmed or expired are dropped from the
        pending list and never returned.
        """
        ...

    async def create_group(self, name: str, group: str, start_id: str) -> bool:
        """Create a consumer group; return ``False`` when it already exists.

        ``start_id`` is ``"0"`` (every stored message), ``"$"`` (messages
        published from now on) or a message id (messages after it).
        """
        ...

    async def info(self, name: str) -> QueueInfo:
        """Return the length, first and last entries and group states."""
        ...


@runtime_checkable
class StreamPort(QueuePort, Protocol):
    """The streaming behavior: a queue port whose logs can be trimmed."""

    async def trim(self, name: str, max_len: int) -> int:
        """Keep the newest ``max_len`` entries and return how many were removed.

        Pending entries of removed messages leave the pending lists.
        """
        ...
