"""Queue and stream ports on Redis Streams, one consumer group per queue.

Each operation is one Lua script (see ``scripts``), so concurrent consumers
on any number of connections see consistent pending lists. A fetch is the
exception: its script hands out ready pending messages, and a plain
``XREADGROUP`` then reads new ones, each step atomic on its own. Delivery counts
come from the pending entries list. Leases use its idle time: a message
fetched with a visibility timeout is handed out again once it has been idle
that long, and ``extend`` resets the idle time with ``XCLAIM ... JUSTID``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError

from datafx.connfx.adapters.redis import scripts
from datafx.connfx.adapters.redis.errors import EventLoopGuard
from datafx.connfx.errors import QueueFullError, QueueNotFoundError
from datafx.connfx.queueing import (
    DEFAULT_GROUP,
    QueueConfig,
    QueueInfo,
    RawMessage,
)

__all__ = ["QueueKeys", "RedisQueues"]

_logger = logging.getLogger("datafx.connfx.redis.queue")

# Upper bound of one blocking XREAD. A wait may end early when a released
# message becomes ready, so the wait is cut into pieces of at most this size.
_MAX_WAIT_PIECE = 0.5

# Seconds during which fetches skip the search for ready pending messages
# after a search found none (see RedisQueues._lease).
_PENDING_CHECK_INTERVAL = 0.05


class QueueKeys:
    """The Redis keys of one queue; the hash tag keeps them in one cluster slot."""

    __slots__ = ("meta", "stream")

    def __init__(self, name: str) -> None:
        # NOTE: a name that starts with "}" makes the hash tag empty, so on a
        # cluster its keys may land in different slots and scripts fail there.
        self.stream = f"datafx:queue:{{{name}}}"
        self.meta = f"{self.stream}:meta"

    def delayed(self, group: str) -> str:
        return f"{self.stream}:delayed:{group}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _timestamp(message_id: str) -> float:
    return int(message_id.partition("-")[0]) / 1000


def _message(raw: Sequence[Any]) -> RawMessage:
    """Build a message from a script's ``[id, [field, value, ...], count]`` entry.

    This runs once per delivered message, so it reads the fields without
    building a dict.
    """
    message_id = _text(raw[0])
    fields = raw[1]
    body = headers = b""
    for index in range(0, len(fields), 2):
        name = fields[index]
        if name == b"b":
            body = fields[index + 1]
        elif name == b"h":
            headers = fields[index + 1]
    return RawMessage(
        message_id=message_id,
        body=body,
        headers=headers,
        timestamp=_timestamp(message_id),
        delivery_count=int(raw[2]),
        receipt_handle=message_id,
    )


def _new_message(entry: Sequence[Any]) -> RawMessage:
    """Build a first delivery from an XREADGROUP entry ``(id, {field: value})``."""
    message_id = _text(entry[0])
    fields = entry[1]
    return RawMessage(
        message_id=message_id,
        body=fields.get(b"b", b""),
        headers=fields.get(b"h", b""),
        timestamp=_timestamp(message_id),
        delivery_count=1,
        receipt_handle=message_id,
    )


def _milliseconds(seconds: float) -> int:
    return round(seconds * 1000)


class RedisQueues:
    """``QueuePort`` and ``StreamPort`` on one redis.asyncio client."""

    def __init__(
        self,
        client: Redis | RedisCluster,
        guard: EventLoopGuard,
        socket_timeout: float | None,
        stale_consumer_timeout: float = 3600.0,
    ) -> None:
        self._client = client
        # A consumer with no pending messages that has not read for this many
        # ms is removed from its group by the next fetch that finds nothing
        # and waits.
        self._stale_consumer_ms = _milliseconds(stale_consumer_timeout)
        # (queue, group) -> time.monotonic() until which fetches skip the
        # FETCH script because its last run found no ready pending message.
        self._skip_pending_until: dict[tuple[str, str], float] = {}
        self._guard = guard
        self._socket_timeout = socket_timeout
        self._scripts: dict[str, AsyncScript] = {
            name: client.register_script(getattr(scripts, name))
            for name in scripts.__all__
            if name != "RELEASED_CONSUMER"
        }

    async def _run(
        self, script: str, name: str, keys: list[str], args: list[Any]
    ) -> Any:
        """Run a script and turn its queue errors into datafx errors."""
        self._guard.check()
        try:
            return await self._scripts[script](keys=keys, args=args)
        except ResponseError as exc:
            text = str(exc)
            if "DATAFX_NOQUEUE" in text or "NOGROUP" in text:
                raise QueueNotFoundError(name) from exc
            if "DATAFX_FULL" in text:
                limit = int(text.split("DATAFX_FULL", 1)[1].split()[0])
                raise QueueFullError(name, limit) from exc
            raise

    # -- declaring -------------------------------------------------------

    async def declare(
        self, name: str, config: QueueConfig, *, stream: bool = False
    ) -> bool:
        keys = QueueKeys(name)
        ttl = config.message_ttl_seconds
        overflow = config.overflow if config.max_length else ""
        created = await self._run(
            "DECLARE",
            name,
            [keys.stream, keys.meta],
            [
                "1" if stream else "0",
                config.max_length,
                overflow,
                0 if ttl is None else max(1, _milliseconds(ttl)),
                DEFAULT_GROUP,
            ],
        )
        return bool(created)

    async def exists(self, name: str) -> bool:
        self._guard.check()
        return bool(await self._client.exists(QueueKeys(name).meta))

    async def create_group(self, name: str, group: str, start_id: str) -> bool:
        keys = QueueKeys(name)
        created = await self._run(
            "CREATE_GROUP", name, [keys.stream, keys.meta], [group, start_id]
        )
        return bool(created)

    # -- publishing and consuming ---------------------------------------

    async def publish(self, name: str, body: bytes, headers: bytes) -> str:
        keys = QueueKeys(name)
        message_id = await self._run(
            "PUBLISH", name, [keys.stream, keys.meta], [body, headers]
        )
        return _text(message_id)

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
        keys = QueueKeys(name)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + block
        visibility = (
            -1 if visibility_timeout is None else _milliseconds(visibility_timeout)
        )
        while True:
            messages = await self._take(name, keys, group, consumer, count, visibility)
            if messages:
                return messages
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            last_id, wait_ms = await self._run(
                "WAIT_HINT",
                name,
                [keys.stream, keys.meta, keys.delayed(group)],
                [group, consumer, visibility, self._stale_consumer_ms],
            )
            wait_ms = int(wait_ms)
            wait = remaining if wait_ms < 0 else min(remaining, wait_ms / 1000)
            await self._wait_for_publish(keys.stream, _text(last_id), wait)
            if wait_ms >= 0:
                # A pending message may be ready now: search for it.
                self._skip_pending_until.pop((name, group), None)

    async def _take(
        self,
        name: str,
        keys: QueueKeys,
        group: str,
        consumer: str,
        count: int,
        visibility: int,
    ) -> list[RawMessage]:
        """Lease messages so that a cancellation cannot lose them.

        The leasing runs in its own task, which a cancellation of the caller
        does not stop. When the cancellation arrives while replies are on
        their way, the leased messages are released at once, so no consumer
        holds messages it never received.
        """
        task = asyncio.ensure_future(
            self._lease(name, keys, group, consumer, count, visibility)
        )
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            await self._release_after_cancel(name, group, task)
            raise

    async def _lease(
        self,
        name: str,
        keys: QueueKeys,
        group: str,
        consumer: str,
        count: int,
        visibility: int,
    ) -> list[RawMessage]:
        """Take ready pending messages with the FETCH script, then new ones.

        When the script found no ready pending message, the next fetches for
        ``_PENDING_CHECK_INTERVAL`` read only new messages, which saves one
        round trip per batch. Messages released by another connection, and
        leases that ran out, then wait up to that long. A queue with a
        message TTL runs the script every time, because it deletes expired
        messages before they can be read.
        """
        messages: list[RawMessage] = []
        now = time.monotonic()
        if now >= self._skip_pending_until.get((name, group), 0.0):
            raw_messages, has_ttl = await self._run(
                "FETCH",
                name,
                [keys.stream, keys.meta, keys.delayed(group)],
                [group, consumer, count, visibility],
            )
            messages = [_message(raw) for raw in raw_messages]
            if messages or has_ttl:
                self._skip_pending_until.pop((name, group), None)
            else:
                self._skip_pending_until[(name, group)] = now + _PENDING_CHECK_INTERVAL
        if len(messages) >= count:
            return messages
        try:
            reply = await self._client.execute_command(
                "XREADGROUP",
                "GROUP",
                group,
                consumer,
                "COUNT",
                count - len(messages),
                "STREAMS",
                keys.stream,
                ">",
            )
        except BaseException as exc:
            # Hand back what the script leased; the caller never sees it.
            handles = [message.receipt_handle for message in messages]
            if handles:
                await asyncio.shield(self.release(name, group, handles, 0.0))
            if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
                raise QueueNotFoundError(name) from exc
            raise
        if reply:
            # The client speaks RESP2, so the reply is [[stream, entries]].
            messages.extend(_new_message(entry) for entry in reply[0][1])
        return messages

    async def _release_after_cancel(
        self, name: str, group: str, task: asyncio.Future[list[RawMessage]]
    ) -> None:
        await asyncio.wait([task])
        if task.cancelled() or task.exception() is not None:
            return
        handles = [message.receipt_handle for message in task.result()]
        if handles:
            await asyncio.shield(self.release(name, group, handles, 0.0))

    async def _wait_for_publish(self, stream: str, last_id: str, wait: float) -> None:
        """Block until an entry after ``last_id`` is added, or ``wait`` seconds pass."""
        piece = min(wait, _MAX_WAIT_PIECE)
        if self._socket_timeout is not None:
            piece = min(piece, self._socket_timeout / 2)
        milliseconds = max(1, _milliseconds(piece))
        # XREAD moves no group state, so a cancellation here loses nothing.
        await self._client.execute_command(
            "XREAD",
            "COUNT",
            1,
            "BLOCK",
            milliseconds,
            "STREAMS",
            stream,
            last_id or "$",
        )

    async def ack(self, name: str, group: str, receipt_handles: Sequence[str]) -> int:
        keys = QueueKeys(name)
        acked = await self._run(
            "ACK",
            name,
            [keys.stream, keys.meta, keys.delayed(group)],
            [group, *receipt_handles],
        )
        return int(acked)

    async def release(
        self, name: str, group: str, receipt_handles: Sequence[str], delay: float
    ) -> None:
        # The next fetch on this connection looks for the released messages.
        self._skip_pending_until.pop((name, group), None)
        keys = QueueKeys(name)
        await self._run(
            "RELEASE",
            name,
            [keys.stream, keys.meta, keys.delayed(group)],
            [group, _milliseconds(delay), *receipt_handles],
        )

    async def extend(
        self,
        name: str,
        group: str,
        consumer: str,
        receipt_handles: Sequence[str],
        visibility_timeout: float,
    ) -> list[str]:
        keys = QueueKeys(name)
        kept = await self._run(
            "EXTEND", name, [keys.stream], [group, consumer, *receipt_handles]
        )
        return [_text(handle) for handle in kept]

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
        keys = QueueKeys(name)
        raw_messages = await self._run(
            "CLAIM",
            name,
            [keys.stream, keys.meta, keys.delayed(group)],
            [group, consumer, _milliseconds(min_idle), count],
        )
        return [_message(raw) for raw in raw_messages]

    # -- inspecting (stream port) ----------------------------------------

    async def info(self, name: str) -> QueueInfo:
        from datafx.connfx.adapters.redis.stream import read_info

        keys = QueueKeys(name)
        await self._run("SWEEP", name, [keys.stream, keys.meta], [])
        return await read_info(self._client, name, keys)

    async def trim(self, name: str, max_len: int) -> int:
        keys = QueueKeys(name)
        removed = await self._run("TRIM", name, [keys.stream, keys.meta], [max_len])
        return int(removed)
