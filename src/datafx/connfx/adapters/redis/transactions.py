"""Optimistic transactions on Redis: WATCH on read, MULTI/EXEC on commit.

A transaction holds one pooled connection from its first read until it ends.
Every key it reads is WATCHed first, so a write by anyone else to that key
before EXEC makes the commit fail with a retryable ``TransactionFailedError``.
Writes are buffered in the transaction and sent in one MULTI/EXEC block.
Reads of a key the transaction wrote come from the buffer.

On a cluster every key of one transaction must be in one hash slot, because
MULTI/EXEC runs on one node; keys with the same hash tag (``{order:7}:total``)
share a slot.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import WatchError

from datafx.connfx.adapters.redis.errors import EventLoopGuard
from datafx.connfx.adapters.redis.keyvalue import pttl_to_seconds, to_milliseconds
from datafx.connfx.errors import KeyNotFoundError, TransactionFailedError

__all__ = ["RedisTransaction", "RedisTransactional"]


class TtlMode(enum.Enum):
    """Effect of a buffered write on the key's expiry."""

    PERSIST = "persist"  # no expiry (plain SET)
    DEADLINE = "deadline"  # expires at BufferedEntry.deadline
    KEEP = "keep"  # keeps whatever expiry the server has (SET KEEPTTL)


@dataclass(slots=True)
class BufferedEntry:
    """The value a key will have after the commit; ``value=None`` deletes it."""

    value: bytes | None
    mode: TtlMode = TtlMode.PERSIST
    deadline: float = 0.0  # time.monotonic() value, used with TtlMode.DEADLINE

    def live_value(self, now: float) -> bytes | None:
        if self.mode is TtlMode.DEADLINE and self.deadline <= now:
            return None
        return self.value


class RedisTransaction:
    """``TransactionPort`` on a redis.asyncio pipeline in WATCH mode."""

    def __init__(self, client: Redis | RedisCluster, guard: EventLoopGuard) -> None:
        self._guard = guard
        self._cluster = isinstance(client, RedisCluster)
        self._pipe: Any = client.pipeline(transaction=True)
        self._watched: set[str] = set()
        self._writes: dict[str, BufferedEntry] = {}
        self._slot: int | None = None
        self._slot_key = ""
        self._done = False

    # -- helpers ---------------------------------------------------------

    def _check(self, keys: Sequence[str]) -> None:
        self._guard.check()
        if self._done:
            raise TransactionFailedError(
                "the transaction has already ended; start a new one"
            )
        if self._cluster:
            for key in keys:
                self._check_slot(key)

    def _check_slot(self, key: str) -> None:
        slot = key_slot(key.encode())
        if self._slot is None:
            self._slot, self._slot_key = slot, key
        elif slot != self._slot:
            raise TransactionFailedError(
                f"keys {self._slot_key!r} and {key!r} are in different Redis Cluster "
                f"hash slots ({self._slot} and {slot}), and one transaction runs on "
                "one slot; give them a common hash tag such as '{order:7}:total'"
            )

    async def _watch(self, keys: Sequence[str]) -> None:
        new = [key for key in keys if key not in self._watched]
        if new:
            await self._pipe.watch(*new)
            self._watched.update(new)

    async def _read(self, key: str) -> bytes | None:
        entry = self._writes.get(key)
        if entry is not None:
            return entry.live_value(time.monotonic())
        await self._watch([key])
        value: bytes | None = await self._pipe.get(key)
        return value

    # -- reads -----------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        self._check([key])
        return await self._read(key)

    async def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        self._check(keys)
        now = time.monotonic()
        found: dict[str, bytes] = {}
        remote = [key for key in keys if key not in self._writes]
        if remote:
            await self._watch(remote)
            values = await self._pipe.mget(remote)
            found.update(
                (key, value)
                for key, value in zip(remote, values, strict=True)
                if value is not None
            )
        for key in keys:
            entry = self._writes.get(key)
            value = entry.live_value(now) if entry is not None else None
            if value is not None:
                found[key] = value
        return {key: found[key] for key in keys if key in found}

    async def exists(self, key: str) -> bool:
        self._check([key])
        return await self._read(key) is not None

    async def get_ttl(self, key: str) -> float | None:
        self._check([key])
        entry = self._writes.get(key)
        if entry is None or entry.mode is TtlMode.KEEP:
            if entry is None and await self._read(key) is None:
                raise KeyNotFoundError(key)
            if entry is not None and entry.value is None:
                raise KeyNotFoundError(key)
            milliseconds: int = await self._pipe.pttl(key)
            return pttl_to_seconds(key, milliseconds)
        if entry.value is None:
            raise KeyNotFoundError(key)
        if entry.mode is TtlMode.PERSIST:
            return None
        remaining = entry.deadline - time.monotonic()
        if remaining <= 0:
            raise KeyNotFoundError(key)
        return max(remaining, 0.001)

    # -- writes ----------------------------------------------------------

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self._check([key])
        self._writes[key] = _new_entry(value, ttl)

    async def set_many(
        self, items: Mapping[str, bytes], ttl: float | None = None
    ) -> None:
        self._check(list(items))
        for key, value in items.items():
            self._writes[key] = _new_entry(value, ttl)

    async def update(self, key: str, value: bytes) -> bool:
        self._check([key])
        entry = self._writes.get(key)
        if entry is not None:
            if entry.live_value(time.monotonic()) is None:
                return False
            self._writes[key] = BufferedEntry(value, entry.mode, entry.deadline)
            return True
        if await self._read(key) is None:
            return False
        self._writes[key] = BufferedEntry(value, TtlMode.KEEP)
        return True

    async def remove(self, key: str) -> None:
        self._check([key])
        self._writes[key] = BufferedEntry(None)

    async def remove_many(self, keys: Sequence[str]) -> None:
        self._check(keys)
        for key in keys:
            self._writes[key] = BufferedEntry(None)

    async def expire(self, key: str, ttl: float) -> bool:
        self._check([key])
        value = await self._read(key)
        if value is None:
            return False
        self._writes[key] = _new_entry(value, ttl)
        return True

    # -- end -------------------------------------------------------------

    async def commit(self) -> None:
        self._check([])
        self._done = True
        try:
            if self._writes or self._watched:
                await self._execute()
        finally:
            await _reset(self._pipe)

    async def _execute(self) -> None:
        pipe = self._pipe
        pipe.multi()
        now = time.monotonic()
        for key, entry in self._writes.items():
            _queue_write(pipe, key, entry, now)
        try:
            # With no writes this is an empty MULTI/EXEC: it still fails when a
            # watched key changed, so a read-only transaction also saw one state.
            await pipe.execute()
        except WatchError as exc:
            keys = ", ".join(repr(key) for key in sorted(self._watched)[:5])
            raise TransactionFailedError(
                f"transaction conflict: another client wrote one of the keys this "
                f"transaction read ({keys}) before it committed; run it again",
                retryable=True,
            ) from exc

    async def rollback(self) -> None:
        self._done = True
        self._writes.clear()
        await _reset(self._pipe)


def _new_entry(value: bytes, ttl: float | None) -> BufferedEntry:
    if ttl is None:
        return BufferedEntry(value, TtlMode.PERSIST)
    return BufferedEntry(value, TtlMode.DEADLINE, time.monotonic() + ttl)


def _queue_write(pipe: Any, key: str, entry: BufferedEntry, now: float) -> None:
    if entry.value is None:
        pipe.execute_command("DEL", key)
    elif entry.mode is TtlMode.PERSIST:
        pipe.execute_command("SET", key, entry.value)
    elif entry.mode is TtlMode.KEEP:
        pipe.execute_command("SET", key, entry.value, "XX", "KEEPTTL")
    elif entry.deadline > now:
        pipe.execute_command(
            "SET", key, entry.value, "PX", to_milliseconds(entry.deadline - now)
        )
    else:
        # The TTL ran out before the commit: the key ends up missing.
        pipe.execute_command("DEL", key)


async def _reset(pipe: Any) -> None:
    """Send UNWATCH and give the connection back to the pool, even when cancelled.

    The reset runs in its own task, so a cancellation of the caller cannot
    stop it half-way and leave WATCHed keys on a pooled connection.
    """
    task = asyncio.ensure_future(pipe.reset())
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        raise


class RedisTransactional:
    """``TransactionalPort``: each ``begin`` creates a :class:`RedisTransaction`."""

    def __init__(self, client: Redis | RedisCluster, guard: EventLoopGuard) -> None:
        self._client = client
        self._guard = guard

    async def begin(self) -> RedisTransaction:
        self._guard.check()
        return RedisTransaction(self._client, self._guard)
