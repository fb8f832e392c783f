"""``Queue``: publish messages and consume them with retries and dead-lettering.

The retry policy lives here, once, for every backend. A message's retry count
is its ``delivery_count``, which the backend stores with the message, so
``max_retries`` applies across consumers, processes and restarts:

- a handler that returns ``True`` acknowledges the message;
- ``False`` or an exception hands it back, to be delivered again after
  ``retry_delay``, until it has been delivered ``max_retries + 1`` times;
  the next failure moves it to the dead-letter queue (``<name>.dlq``);
- a message delivered more than ``max_retries + 1`` times without being
  settled (its consumers died while handling it) goes to the dead-letter
  queue before any handler sees it;
- a body that cannot be decoded into the handler's type goes to the
  dead-letter queue at once.

Dead-lettered messages keep their body and headers and gain the headers
``x-dead-letter-reason``, ``x-original-queue``, ``x-original-message-id``,
``x-original-group`` and ``x-delivery-count``. They are published before the
original is acknowledged, so a crash in between leaves a duplicate, never a
loss.

A queue consumer leases the messages it fetches for a visibility timeout
(``ConsumerConfig(args={"visibility_timeout": seconds})``, 30 s by default)
and renews the lease every third of it while it holds them. A consumer that
is cancelled or closed hands its unsettled messages back at once; one that
dies lets its lease lapse, and the messages then go to the next consumer.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import socket
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from datetime import timedelta
from typing import Any, Protocol

from datafx._base import Translate, require
from datafx.codec import Codec, default_codec
from datafx.connfx.behaviors import Behavior
from datafx.connfx.config import to_seconds
from datafx.connfx.connection import Connection
from datafx.connfx.errors import BackendError, UnmarshalError
from datafx.connfx.queueing import (
    DEFAULT_GROUP,
    DEFAULT_VISIBILITY_TIMEOUT,
    START_AT_NEW,
    ConsumerConfig,
    QueueConfig,
    QueueInfo,
    QueuePort,
    RawMessage,
)
from datafx.message import (
    HeaderValue,
    Message,
    check_bytes,
    check_headers,
    decode_headers,
    encode_headers,
    encode_value,
)

__all__ = ["Handler", "Lease", "Queue", "Subscription", "default_consumer_name"]

_logger = logging.getLogger("datafx.queue")

Handler = Callable[[Any], bool | Awaitable[bool]]
"""A message handler: returns (or resolves to) ``True`` to acknowledge."""

DEAD_LETTER_SUFFIX = ".dlq"
# Close tasks of subscriptions dropped without aclose(); kept until they finish.
_CLOSING: set[asyncio.Task[None]] = set()
_MAX_BACKOFF = 5.0
_MIN_POLL = 0.01


def default_consumer_name() -> str:
    """Return a consumer name unique to this process: host, pid and a random part."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def visibility_timeout(config: ConsumerConfig) -> float:
    """Return ``config.args["visibility_timeout"]`` in seconds (30 s by default)."""
    value = config.args.get("visibility_timeout", DEFAULT_VISIBILITY_TIMEOUT)
    return to_seconds(value, "visibility_timeout")


def check_consumer_config(config: ConsumerConfig | None) -> ConsumerConfig:
    if config is None:
        return ConsumerConfig()
    if not isinstance(config, ConsumerConfig):
        raise TypeError(f"config must be a ConsumerConfig, not {type(config).__name__}")
    visibility_timeout(config)
    dead_letter = config.args.get("dead_letter_queue")
    if dead_letter is not None:
        check_name(dead_letter, "args['dead_letter_queue']")
    return config


def check_name(name: Any, what: str = "queue name") -> str:
    if isinstance(name, str) and name:
        return name
    if isinstance(name, str):
        raise ValueError(f"{what} must be a non-empty str, got ''")
    raise TypeError(f"{what} must be a non-empty str, not {type(name).__name__}")


class _DeadLetterSink(Protocol):
    async def send_dead_letter(
        self, target: str, body: bytes, headers: bytes
    ) -> None: ...


class Lease:
    """The messages one consumer holds, and the policy that settles them.

    ``visibility`` is the lease length in seconds for queues, ``None`` for
    streams, whose entries stay pending to the consumer until acknowledged
    or claimed.
    """

    def __init__(
        self,
        *,
        conn: Connection,
        port: QueuePort,
        sink: _DeadLetterSink,
        codec: Codec,
        name: str,
        group: str,
        consumer: str,
        config: ConsumerConfig,
        visibility: float | None,
        public_group: str | None,
    ) -> None:
        self.port = port
        self.name = name
        self.group = group
        self.consumer = consumer
        self.config = config
        self.visibility = visibility
        self.held: dict[str, Message] = {}
        self.changed = asyncio.Event()
        self._sink = sink
        self._codec = codec
        self._public_group = public_group
        self._conn = conn
        self._dead_letter_target = str(
            config.args.get("dead_letter_queue") or name + DEAD_LETTER_SUFFIX
        )
        if self._dead_letter_target == name:
            raise ValueError(
                f"args['dead_letter_queue'] must differ from the queue it serves, "
                f"got {name!r}; dead-lettering into the same queue would redeliver "
                "failed messages forever"
            )
        self._t_fetch = Translate(conn, "fetch")
        self._t_ack = Translate(conn, "ack")
        self._t_release = Translate(conn, "release")
        self._t_extend = Translate(conn, "extend lease")
        self._t_dead_letter = Translate(conn, "dead-letter")

    # -- receiving ---------------------------------------------------------

    def wrap(self, raw: RawMessage) -> Message:
        message = Message(
            body=raw.body,
            headers=decode_headers(raw.headers) if raw.headers else {},
            message_id=raw.message_id,
            published_at=raw.timestamp,
            delivery_count=raw.delivery_count,
            receipt_handle=raw.receipt_handle,
            consumer_group=self._public_group,
            stream_name=self.name,
            codec=self._codec,
            lease=self,
        )
        self.held[raw.receipt_handle] = message
        return message

    async def fetch(self, count: int, block: float) -> list[Message]:
        """Fetch up to ``count`` messages, dead-lettering those past their retries."""
        with self._t_fetch:
            raws = await self.port.fetch(
                self.name,
                self.group,
                self.consumer,
                count,
                visibility_timeout=self.visibility,
                block=block,
            )
        return await self._admit(raws)

    async def claim(self, min_idle: float, count: int) -> list[Message]:
        with self._t_fetch:
            raws = await self.port.claim(
                self.name,
                self.group,
                self.consumer,
                min_idle,
                count,
                visibility_timeout=self.visibility,
            )
        return await self._admit(raws)

    async def _admit(self, raws: list[RawMessage]) -> list[Message]:
        messages = [self.wrap(raw) for raw in raws]
        limit = self.config.max_retries + 1
        admitted: list[Message] = []
        for message in messages:
            if message.delivery_count > limit:
                message.settled = True
                await self.dead_letter(
                    message,
                    f"delivered {message.delivery_count} times without being "
                    f"acknowledged (max_retries={self.config.max_retries})",
                )
            else:
                admitted.append(message)
        if self.config.auto_ack and admitted:
            for message in admitted:
                message.settled = True
            await self.ack(admitted)
        return admitted

    # -- settling ----------------------------------------------------------

    def _forget(self, messages: Sequence[Message]) -> None:
        for message in messages:
            self.held.pop(message.receipt_handle, None)
        self.changed.set()

    async def ack(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        handles = [m.receipt_handle for m in messages]
        with self._t_ack:
            await self.port.ack(self.name, self.group, handles)
        self._forget(messages)

    async def retry(self, message: Message, reason: str) -> None:
        """Hand a failed message back, or dead-letter it when its retries are spent."""
        if message.delivery_count > self.config.max_retries:
            await self.dead_letter(
                message,
                f"{reason}; delivered {message.delivery_count} times "
                f"(max_retries={self.config.max_retries})",
            )
            return
        delay = float(self.config.retry_delay)  # type: ignore[arg-type]
        with self._t_release:
            await self.port.release(
                self.name, self.group, [message.receipt_handle], delay
            )
        self._forget([message])

    async def dead_letter(self, message: Message, reason: str) -> None:
        """Publish the message to the dead-letter queue, then acknowledge it."""
        headers: dict[str, HeaderValue] = dict(message.headers)
        headers["x-dead-letter-reason"] = reason
        headers["x-original-queue"] = self.name
        headers["x-original-message-id"] = message.message_id
        headers["x-original-group"] = self._public_group or DEFAULT_GROUP
        headers["x-delivery-count"] = message.delivery_count
        with self._t_dead_letter:
            await self._sink.send_dead_letter(
                self._dead_letter_target, message.body, encode_headers(headers)
            )
        _logger.warning(
            "moved message %s of %r to %r: %s",
            message.message_id,
            self.name,
            self._dead_letter_target,
            reason,
        )
        with self._t_ack:
            await self.port.ack(self.name, self.group, [message.receipt_handle])
        self._forget([message])

    async def release_held(self) -> None:
        """Hand every unsettled message back for immediate redelivery."""
        messages = [m for m in self.held.values() if not m.settled]
        self.held.clear()
        if not messages:
            return
        with self._t_release:
            await self.port.release(
                self.name, self.group, [m.receipt_handle for m in messages], 0.0
            )
        _logger.debug("released %d unsettled messages of %r", len(messages), self.name)

    async def extend_held(self) -> None:
        """Renew the lease of every held message; forget those this consumer lost."""
        if self.visibility is None or not self.held:
            return
        handles = list(self.held)
        with self._t_extend:
            kept = set(
                await self.port.extend(
                    self.name, self.group, self.consumer, handles, self.visibility
                )
            )
        lost = [self.held[h] for h in handles if h not in kept and h in self.held]
        for message in lost:
            if not message.settled:
                _logger.warning(
                    "lease of message %s of %r expired before it was settled; "
                    "another consumer may receive it (raise visibility_timeout)",
                    message.message_id,
                    self.name,
                )
        if lost:
            self._forget(lost)

    async def keep_alive(self) -> None:
        """Renew leases every third of the visibility timeout until cancelled."""
        assert self.visibility is not None
        interval = self.visibility / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await self.extend_held()
            except BackendError as exc:
                _logger.warning("renewing leases on %r failed: %s", self.name, exc)


class Subscription:
    """An async iterator over the messages of one consumer.

    Use it as ``async for message in queue.consume(name): ...``, or as
    ``async with queue.consume(name) as messages:`` to hand unsettled
    messages back as soon as the block ends. Closing (or cancelling) a queue
    consumer releases its unsettled messages for immediate redelivery; a
    stream consumer leaves them pending, to be claimed.
    """

    def __init__(
        self, lease: Lease, *, create_group: str | None, release_on_close: bool
    ):
        self.lease = lease
        self._create_group = create_group
        self._release_on_close = release_on_close
        self._buffer: deque[Message] = deque()
        self._started = False
        self._closed = False
        self._keep_alive: asyncio.Task[None] | None = None
        self._t_group = Translate(lease._conn, "create group")

    async def _start(self) -> None:
        if self._started:
            return
        lease = self.lease
        if self._create_group is not None:
            with self._t_group:
                await lease.port.create_group(
                    lease.name, lease.group, self._create_group
                )
        if lease.visibility is not None:
            self._keep_alive = asyncio.create_task(
                lease.keep_alive(), name=f"datafx-lease-{lease.name}"
            )
        self._started = True

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Message:
        while not self._buffer:
            if self._closed:
                raise StopAsyncIteration
            batch = await self.next_batch()
            self._buffer.extend(batch)
        return self._buffer.popleft()

    async def next_batch(self) -> list[Message]:
        """Fetch the next batch; first wait while ``prefetch_count`` are unsettled."""
        await self._start()
        lease = self.lease
        config = lease.config
        block = float(config.block_timeout)  # type: ignore[arg-type]
        while True:
            room = config.prefetch_count - len(lease.held)
            if room <= 0:
                lease.changed.clear()
                await lease.changed.wait()
                continue
            batch = await lease.fetch(room, block)
            if batch:
                return batch
            if block < _MIN_POLL:
                # A fetch that does not block may return without yielding to
                # the event loop; pause so the loop neither spins nor starves.
                await asyncio.sleep(_MIN_POLL)

    async def _shielded_close(self) -> None:
        """Close in a task that a cancellation of the caller does not stop.

        A cancelled caller returns at once, and the close (handing messages
        back) goes on in the background.
        """
        task = asyncio.ensure_future(self.aclose())
        _CLOSING.add(task)
        task.add_done_callback(_CLOSING.discard)
        await asyncio.shield(task)

    async def aclose(self) -> None:
        """Stop renewing leases and, for queues, hand back unsettled messages."""
        if self._closed:
            return
        self._closed = True
        self._buffer.clear()
        if self._keep_alive is not None:
            self._keep_alive.cancel()
            try:
                await self._keep_alive
            except asyncio.CancelledError:
                pass
        if self._release_on_close:
            try:
                await self.lease.release_held()
            except BackendError as exc:
                _logger.warning(
                    "could not hand back messages of %r (they return after the "
                    "visibility timeout): %s",
                    self.lease.name,
                    exc,
                )

    def __del__(self) -> None:
        # An ``async for`` loop that ends by cancellation or ``break`` drops the
        # subscription without closing it; hand its messages back from a task.
        if self._closed or not self._started:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self.aclose())
        _CLOSING.add(task)
        task.add_done_callback(_CLOSING.discard)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._shielded_close()


async def run_handler_loop(
    subscription: Subscription,
    handler: Handler,
    message_type: Any,
) -> None:
    """Feed every message to ``handler`` until cancelled, settling each one."""
    if not callable(handler):
        raise TypeError(f"handler must be callable, not {type(handler).__name__}")
    lease = subscription.lease
    backoff = 0.1
    async with subscription:
        while True:
            try:
                batch = await subscription.next_batch()
                await _handle_batch(lease, batch, handler, message_type)
            except BackendError as exc:
                # The backend is unreachable or failed: messages not settled
                # return after their lease, and the loop tries again.
                _logger.warning(
                    "consuming from %r failed, retrying in %.1f s: %s",
                    lease.name,
                    backoff,
                    exc,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
                continue
            backoff = 0.1


async def _handle_batch(
    lease: Lease, batch: list[Message], handler: Handler, message_type: Any
) -> None:
    done: list[Message] = []
    try:
        for message in batch:
            if await _handle_one(lease, message, handler, message_type):
                done.append(message)
    finally:
        if done:
            await _finish(_ack_quietly(lease, done))


async def _ack_quietly(lease: Lease, messages: list[Message]) -> None:
    try:
        await lease.ack(messages)
    except BackendError as exc:
        _logger.warning(
            "acknowledging %d messages of %r failed (they will be delivered again): %s",
            len(messages),
            lease.name,
            exc,
        )


async def _handle_one(
    lease: Lease, message: Message, handler: Handler, message_type: Any
) -> bool:
    """Run the handler on one message; return ``True`` to acknowledge it."""
    if message_type is Message:
        value: Any = message
    else:
        try:
            value = message.decode(message_type)
        except UnmarshalError as exc:
            message.settled = True
            await _finish(lease.dead_letter(message, f"cannot decode the body: {exc}"))
            return False
    try:
        result = handler(value)
        # Checking for a bool first skips the slower awaitable test for
        # sync handlers.
        if result is not True and result is not False and inspect.isawaitable(result):
            result = await result
    except Exception as exc:
        _logger.warning(
            "handler failed on message %s of %r (delivery %d): %s: %s",
            message.message_id,
            lease.name,
            message.delivery_count,
            type(exc).__name__,
            exc,
        )
        result = False
    if message.settled:
        # The handler received the Message and settled it itself,
        # or auto-ack settled it on delivery.
        if result is not True and lease.config.auto_ack:
            await _finish(
                lease.dead_letter(message, "the handler failed and auto_ack is on")
            )
        return False
    if result is True:
        message.settled = True
        return True
    if result is not False:
        _logger.warning(
            "handler returned %r for message %s of %r; return True to "
            "acknowledge, False to retry (treated as False)",
            type(result).__name__,
            message.message_id,
            lease.name,
        )
    message.settled = True
    await _finish(lease.retry(message, "the handler failed"))
    return False


async def _finish(step: Coroutine[Any, Any, None]) -> None:
    """Run a settle step to its end even when the loop is cancelled meanwhile.

    Once a handler has returned, its outcome (a retry or a dead letter) is
    recorded before the cancellation propagates, so a stopped consumer
    never leaves a message half-settled.
    """
    task = asyncio.ensure_future(step)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        if not task.cancelled() and task.exception() is not None:
            _logger.warning(
                "settling a message after cancellation failed: %s", task.exception()
            )
        raise


class Queue:
    """Point-to-point messaging on any connection with the queue behavior.

    Consumers that name no group share the queue's default group, so each
    message goes to one of them. Consumers that name a group share that
    group, and every group receives every message published after it was
    created (by its first consumer).
    """

    def __init__(self, conn: Connection, codec: Codec | None = None) -> None:
        self._port: QueuePort = require(conn, Behavior.QUEUE, conn.queue)
        self._conn = conn
        self._codec = codec or default_codec()
        self._declared_dead_letters: set[str] = set()
        self._t_declare = Translate(conn, "declare queue")
        self._t_publish = Translate(conn, "publish")
        self._t_info = Translate(conn, "queue info")

    @property
    def connection(self) -> Connection:
        return self._conn

    @property
    def codec(self) -> Codec:
        return self._codec

    def is_stream_supported(self) -> bool:
        """Return whether the connection also offers streams (``QueueStream``)."""
        return (
            Behavior.STREAMING in self._conn.behaviors and self._conn.stream is not None
        )

    async def declare_queue(self, name: str, config: QueueConfig | None = None) -> str:
        """Create the queue if it does not exist and return its name.

        Declaring an existing queue changes nothing: its first settings stay.
        """
        name = check_name(name)
        if config is None:
            config = QueueConfig()
        elif not isinstance(config, QueueConfig):
            raise TypeError(
                f"config must be a QueueConfig, not {type(config).__name__}"
            )
        self._conn.check_open()
        with self._t_declare:
            await self._port.declare(name, config)
        return name

    async def exists(self, name: str) -> bool:
        name = check_name(name)
        self._conn.check_open()
        with self._t_info:
            return await self._port.exists(name)

    async def publish(
        self, name: str, value: Any, headers: Mapping[str, HeaderValue] | None = None
    ) -> str:
        """Encode ``value`` and publish it; return the message id.

        Raises ``MarshalError`` (sending nothing) when the codec cannot encode
        the value, and ``QueueNotFoundError`` when the queue was not declared.
        """
        name = check_name(name)
        header_block = encode_headers(check_headers(headers))
        body = encode_value(self._codec, value)
        return await self._publish(name, body, header_block)

    async def publish_raw(
        self, name: str, body: bytes, headers: Mapping[str, HeaderValue] | None = None
    ) -> str:
        """Publish ``body`` as it is; return the message id."""
        name = check_name(name)
        header_block = encode_headers(check_headers(headers))
        return await self._publish(name, check_bytes(body), header_block)

    async def _publish(self, name: str, body: bytes, headers: bytes) -> str:
        self._conn.check_open()
        with self._t_publish:
            return await self._port.publish(name, body, headers)

    async def send_dead_letter(self, target: str, body: bytes, headers: bytes) -> None:
        if target not in self._declared_dead_letters:
            await self._port.declare(target, QueueConfig(durable=True))
            self._declared_dead_letters.add(target)
        await self._port.publish(target, body, headers)

    def _lease(
        self,
        name: str,
        config: ConsumerConfig,
        group: str | None,
        consumer: str | None,
    ) -> Lease:
        if group is not None:
            check_name(group, "group")
        if consumer is not None:
            check_name(consumer, "consumer")
        return Lease(
            conn=self._conn,
            port=self._port,
            sink=self,
            codec=self._codec,
            name=name,
            group=group or DEFAULT_GROUP,
            consumer=consumer or default_consumer_name(),
            config=config,
            visibility=visibility_timeout(config),
            public_group=group,
        )

    def consume(
        self,
        name: str,
        config: ConsumerConfig | None = None,
        group: str | None = None,
        consumer: str | None = None,
    ) -> Subscription:
        """Return an async iterator over the messages of ``name``.

        Acknowledge each message with ``await message.ack()`` (unless
        ``config.auto_ack``). Raises ``QueueNotFoundError`` on the first
        iteration when the queue was not declared.
        """
        name = check_name(name)
        config = check_consumer_config(config)
        self._conn.check_open()
        lease = self._lease(name, config, group, consumer)
        return Subscription(
            lease,
            create_group=START_AT_NEW if group is not None else None,
            release_on_close=True,
        )

    async def process_messages(
        self,
        name: str,
        handler: Handler,
        message_type: Any = None,
        config: ConsumerConfig | None = None,
        group: str | None = None,
        consumer: str | None = None,
    ) -> None:
        """Run ``handler`` on every message until cancelled.

        ``handler(value)`` may be sync or async: ``True`` acknowledges the
        message, ``False`` retries it, and an exception counts as ``False``
        and is logged. ``value`` is the body decoded into ``message_type``
        (plain JSON values when ``None``; pass ``datafx.Message`` to receive
        the message itself). A sync handler runs on the event loop, so it
        must not block for long.
        """
        subscription = self.consume(name, config, group, consumer)
        await run_handler_loop(subscription, handler, message_type)

    async def claim_pending_messages(
        self,
        name: str,
        group: str,
        consumer: str,
        min_idle: float | timedelta,
        count: int,
    ) -> list[Message]:
        """Take over up to ``count`` messages of ``group`` idle for ``min_idle``.

        The messages are leased to ``consumer`` (for the default visibility
        timeout); settle each with ``ack`` or ``nack``.
        """
        name = check_name(name)
        group = check_name(group, "group")
        consumer = check_name(consumer, "consumer")
        idle = to_seconds(min_idle, "min_idle", allow_zero=True)
        count = check_count(count)
        self._conn.check_open()
        lease = self._lease(name, ConsumerConfig(), group, consumer)
        return await lease.claim(idle, count)

    async def stats(self, name: str) -> QueueInfo:
        """Return the queue's ``QueueInfo``: length, groups, pending and lag."""
        name = check_name(name)
        self._conn.check_open()
        with self._t_info:
            return await self._port.info(name)


def check_count(count: Any) -> int:
    if isinstance(count, bool) or not isinstance(count, int):
        raise TypeError(f"count must be an int, not {type(count).__name__}")
    if count < 1:
        raise ValueError(f"count must be 1 or more, got {count}")
    return count
