"""``QueueStream``: append-only streams read by consumer groups.

A stream keeps its entries after they are acknowledged, until
``trim_stream`` removes them. An entry delivered to a consumer of a group
stays pending to that consumer until it is acknowledged, as in Redis
Streams: a consumer that dies or is cancelled leaves its entries pending,
and ``claim_pending_messages`` hands entries idle longer than ``min_idle``
to another consumer. Failed handlers follow the same retry and
dead-letter policy as :class:`datafx.Queue`, with ``<stream>.dlq`` as a
stream.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from datafx._base import Translate, require
from datafx.codec import Codec, default_codec
from datafx.connfx.behaviors import Behavior
from datafx.connfx.config import to_seconds
from datafx.connfx.connection import Connection
from datafx.connfx.queueing import (
    START_AT_BEGINNING,
    START_AT_NEW,
    ConsumerConfig,
    GroupInfo,
    QueueConfig,
    RawEntry,
    StreamPort,
)
from datafx.message import (
    HeaderValue,
    Message,
    StreamEntry,
    check_headers,
    decode_headers,
    encode_headers,
    encode_value,
    timestamp_to_datetime,
)
from datafx.queue import (
    Handler,
    Lease,
    Subscription,
    check_consumer_config,
    check_count,
    check_name,
    run_handler_loop,
)

__all__ = ["ConsumerGroupInfo", "QueueStream", "StreamInfo"]

ConsumerGroupInfo = GroupInfo
"""The state of one consumer group: consumers, pending, lag, last delivered id."""


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """The state of one stream.

    ``groups`` counts its consumer groups. ``first_entry`` and
    ``last_entry`` are ``None`` for an empty stream. ``last_generated_id``
    is the id of the newest entry ever added, trimmed or not (``"0"`` when
    none was).
    """

    name: str
    length: int
    groups: int
    last_generated_id: str
    first_entry: StreamEntry | None
    last_entry: StreamEntry | None


class QueueStream:
    """Streams with consumer groups on any connection with the streaming behavior."""

    def __init__(self, conn: Connection, codec: Codec | None = None) -> None:
        self._port: StreamPort = require(conn, Behavior.STREAMING, conn.stream)
        self._conn = conn
        self._codec = codec or default_codec()
        self._created: set[str] = set()
        self._t_create = Translate(conn, "create stream")
        self._t_send = Translate(conn, "send message")
        self._t_group = Translate(conn, "create consumer group")
        self._t_info = Translate(conn, "stream info")
        self._t_trim = Translate(conn, "trim stream")

    @property
    def connection(self) -> Connection:
        return self._conn

    async def _ensure_stream(self, stream_name: str) -> None:
        if stream_name in self._created:
            return
        self._conn.check_open()
        with self._t_create:
            await self._port.declare(
                stream_name, QueueConfig(durable=True), stream=True
            )
        self._created.add(stream_name)

    async def create_consumer_group(
        self, stream_name: str, group: str, start_id: str = START_AT_BEGINNING
    ) -> bool:
        """Create ``group``; return ``False`` when it already existed.

        ``start_id="0"`` delivers every stored entry, ``"$"`` only entries
        sent from now on; an entry id delivers the entries after it. The
        stream is created when it does not exist.
        """
        stream_name = check_name(stream_name, "stream name")
        group = check_name(group, "group")
        if not isinstance(start_id, str) or not start_id:
            raise TypeError(
                f"start_id must be '0', '$' or an entry id (str), got {start_id!r}"
            )
        _check_start_id(start_id)
        await self._ensure_stream(stream_name)
        with self._t_group:
            return await self._port.create_group(stream_name, group, start_id)

    async def send_message(
        self,
        stream_name: str,
        value: Any,
        headers: Mapping[str, HeaderValue] | None = None,
    ) -> str:
        """Append ``value`` and return its entry id; ids always increase.

        Raises ``MarshalError`` (sending nothing) when the value cannot be encoded.
        """
        stream_name = check_name(stream_name, "stream name")
        header_block = encode_headers(check_headers(headers))
        body = encode_value(self._codec, value)
        await self._ensure_stream(stream_name)
        with self._t_send:
            return await self._port.publish(stream_name, body, header_block)

    async def send_dead_letter(self, target: str, body: bytes, headers: bytes) -> None:
        await self._ensure_stream(target)
        await self._port.publish(target, body, headers)

    def _lease(
        self, stream_name: str, group: str, consumer: str, config: ConsumerConfig
    ) -> Lease:
        return Lease(
            conn=self._conn,
            port=self._port,
            sink=self,
            codec=self._codec,
            name=stream_name,
            group=group,
            consumer=consumer,
            config=config,
            visibility=None,
            public_group=group,
        )

    def consume(
        self,
        stream_name: str,
        group: str,
        consumer: str,
        config: ConsumerConfig | None = None,
    ) -> Subscription:
        """Return an async iterator over the entries ``group`` delivers to ``consumer``.

        The group is created at ``"$"`` when it does not exist. Raises
        ``QueueNotFoundError`` on the first iteration when the stream does not exist.
        """
        stream_name = check_name(stream_name, "stream name")
        group = check_name(group, "group")
        consumer = check_name(consumer, "consumer")
        config = check_consumer_config(config)
        self._conn.check_open()
        lease = self._lease(stream_name, group, consumer, config)
        return Subscription(lease, create_group=START_AT_NEW, release_on_close=False)

    async def process_messages_from_group(
        self,
        stream_name: str,
        group: str,
        consumer: str,
        handler: Handler,
        message_type: Any = None,
        config: ConsumerConfig | None = None,
    ) -> None:
        """Run ``handler`` on each entry delivered to ``consumer`` until cancelled.

        The handler contract is that of :meth:`datafx.Queue.process_messages`.
        Entries left unsettled when the loop is cancelled stay pending.
        """
        subscription = self.consume(stream_name, group, consumer, config)
        await run_handler_loop(subscription, handler, message_type)

    async def claim_pending_messages(
        self,
        stream_name: str,
        group: str,
        consumer: str,
        min_idle: float | timedelta,
        count: int,
    ) -> list[Message]:
        """Hand up to ``count`` entries idle longer than ``min_idle`` to ``consumer``.

        Repeated calls page through every idle entry. Entries trimmed while
        pending are dropped from the pending list, never returned.
        """
        stream_name = check_name(stream_name, "stream name")
        group = check_name(group, "group")
        consumer = check_name(consumer, "consumer")
        idle = to_seconds(min_idle, "min_idle", allow_zero=True)
        count = check_count(count)
        self._conn.check_open()
        lease = self._lease(stream_name, group, consumer, ConsumerConfig())
        return await lease.claim(idle, count)

    def _entry(self, raw: RawEntry | None) -> StreamEntry | None:
        if raw is None:
            return None
        return StreamEntry(
            raw.message_id,
            raw.body,
            decode_headers(raw.headers),
            timestamp_to_datetime(raw.timestamp),
            self._codec,
        )

    async def get_stream_info(self, stream_name: str) -> StreamInfo:
        """Return length, first and last entries, group count and last id.

        Raises ``QueueNotFoundError`` when the stream does not exist.
        """
        stream_name = check_name(stream_name, "stream name")
        self._conn.check_open()
        with self._t_info:
            info = await self._port.info(stream_name)
        return StreamInfo(
            name=info.name,
            length=info.length,
            groups=len(info.groups),
            last_generated_id=info.last_generated_id,
            first_entry=self._entry(info.first_entry),
            last_entry=self._entry(info.last_entry),
        )

    async def get_consumer_group_info(
        self, stream_name: str
    ) -> list[ConsumerGroupInfo]:
        """Return every group's consumers, pending count, lag and last delivered id."""
        stream_name = check_name(stream_name, "stream name")
        self._conn.check_open()
        with self._t_info:
            info = await self._port.info(stream_name)
        return list(info.groups)

    async def trim_stream(self, stream_name: str, max_len: int) -> int:
        """Keep the newest ``max_len`` entries; return how many were removed."""
        stream_name = check_name(stream_name, "stream name")
        if isinstance(max_len, bool) or not isinstance(max_len, int):
            raise TypeError(f"max_len must be an int, not {type(max_len).__name__}")
        if max_len < 0:
            raise ValueError(f"max_len must be 0 or more, got {max_len}")
        self._conn.check_open()
        with self._t_trim:
            return await self._port.trim(stream_name, max_len)


# An entry id: one number (tables, memory) or two joined by "-" (Redis).
_ENTRY_ID = re.compile(r"[0-9]{1,19}(-[0-9]{1,19})?")


def _check_start_id(start_id: str) -> None:
    """Reject a start id that no backend could mean, before any I/O.

    A well-formed id of another backend's format (``"5-0"`` on a table
    backend) is left to the backend, which raises ``BackendError``.
    """
    if start_id in (START_AT_BEGINNING, "$"):
        return
    parts = start_id.split("-") if _ENTRY_ID.fullmatch(start_id) else []
    if not parts or any(int(part) >= 2**63 for part in parts):
        raise ValueError(
            f"start_id must be '0', '$' or an entry id such as one returned by "
            f"send_message(), got {start_id!r}"
        )
