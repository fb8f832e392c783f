"""Queues and streams kept in process memory.

Every queue and stream is a log of entries read by consumer groups, each
with a cursor and a pending list (the model of ``QueuePort``). The state
lives on ``MemoryDatabase.extensions``, so connections to the same
``memory://name`` share it. Waiting consumers wake at once on a publish or
a release, and sleep until the next lease expires otherwise.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from datafx.connfx.errors import QueueFullError, QueueNotFoundError
from datafx.connfx.queueing import (
    DEFAULT_GROUP,
    OVERFLOW_REJECT_PUBLISH,
    START_AT_BEGINNING,
    START_AT_NEW,
    GroupInfo,
    QueueConfig,
    QueueInfo,
    RawEntry,
    RawMessage,
)

__all__ = ["MemoryQueues"]

_EXTENSION = "queues"


@dataclass(slots=True)
class _Entry:
    id: int
    body: bytes
    headers: bytes
    timestamp: float
    expires_at: float


@dataclass(slots=True)
class _Pending:
    consumer: str | None
    delivered_at: float
    # When fetch may hand the entry out again. For a leased entry this is
    # the lease end (infinity for streams). For a released entry (consumer
    # None) it is the end of the retry delay.
    visible_at: float
    delivery_count: int


@dataclass(slots=True)
class _Group:
    last_id: int
    entries_read: int = 0
    pending: dict[int, _Pending] = field(default_factory=dict)
    consumers: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Log:
    name: str
    stream: bool
    max_length: int
    reject_when_full: bool
    message_ttl: float | None
    entries: dict[int, _Entry] = field(default_factory=dict)
    last_id: int = 0
    groups: dict[str, _Group] = field(default_factory=dict)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)

    def notify(self) -> None:
        self.wakeup.set()
        self.wakeup = asyncio.Event()


def _parse_id(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError(
            f"invalid message id {value!r}: memory message ids are integers"
        ) from None
    if number < 0:
        raise ValueError(f"invalid message id {value!r}: ids are 0 or more")
    return number


class MemoryQueues:
    """The queue and stream ports of the memory backend."""

    def __init__(self, extensions: dict[str, object]) -> None:
        logs = extensions.setdefault(_EXTENSION, {})
        assert isinstance(logs, dict)
        self._logs: dict[str, _Log] = logs

    def _log(self, name: str) -> _Log:
        log = self._logs.get(name)
        if log is None:
            raise QueueNotFoundError(name)
        return log

    def _group(self, log: _Log, group: str) -> _Group:
        state = log.groups.get(group)
        if state is None:
            raise QueueNotFoundError(log.name)
        return state

    # -- declaring ----------------------------------------------------------

    async def declare(
        self, name: str, config: QueueConfig, *, stream: bool = False
    ) -> bool:
        if name in self._logs:
            return False
        log = _Log(
            name=name,
            stream=stream,
            max_length=config.max_length,
            reject_when_full=config.overflow == OVERFLOW_REJECT_PUBLISH,
            message_ttl=config.message_ttl_seconds,
        )
        if not stream:
            log.groups[DEFAULT_GROUP] = _Group(last_id=0)
        self._logs[name] = log
        return True

    async def exists(self, name: str) -> bool:
        return name in self._logs

    async def create_group(self, name: str, group: str, start_id: str) -> bool:
        log = self._log(name)
        if group in log.groups:
            return False
        if start_id == START_AT_NEW:
            start = log.last_id
        elif start_id == START_AT_BEGINNING:
            start = 0
        else:
            start = _parse_id(start_id)
        log.groups[group] = _Group(last_id=start)
        return True

    # -- publishing ---------------------------------------------------------

    async def publish(self, name: str, body: bytes, headers: bytes) -> str:
        log = self._log(name)
        now = time.time()
        self._drop_expired(log, now)
        if log.max_length and len(log.entries) >= log.max_length:
            if log.reject_when_full:
                raise QueueFullError(name, log.max_length)
            while len(log.entries) >= log.max_length:
                self._remove(log, next(iter(log.entries)))
        log.last_id += 1
        expires_at = math.inf if log.message_ttl is None else now + log.message_ttl
        log.entries[log.last_id] = _Entry(log.last_id, body, headers, now, expires_at)
        log.notify()
        return str(log.last_id)

    # -- removing -----------------------------------------------------------

    def _remove(self, log: _Log, entry_id: int) -> None:
        log.entries.pop(entry_id, None)
        for group in log.groups.values():
            group.pending.pop(entry_id, None)

    def _drop_expired(self, log: _Log, now: float) -> None:
        if log.message_ttl is None:
            return
        while log.entries:
            first = next(iter(log.entries.values()))
            if first.expires_at > now:
                return
            self._remove(log, first.id)

    def _collect(self, log: _Log, entry_ids: Sequence[int]) -> None:
        """Delete queue entries that no group still needs."""
        if log.stream:
            return
        for entry_id in entry_ids:
            if all(
                entry_id <= g.last_id and entry_id not in g.pending
                for g in log.groups.values()
            ):
                log.entries.pop(entry_id, None)

    # -- consuming ----------------------------------------------------------

    def _deliver(
        self,
        log: _Log,
        group: _Group,
        entry: _Entry,
        consumer: str,
        visibility_timeout: float | None,
        now: float,
    ) -> RawMessage:
        previous = group.pending.get(entry.id)
        count = 1 if previous is None else previous.delivery_count + 1
        visible_at = (
            math.inf if visibility_timeout is None else now + visibility_timeout
        )
        group.pending[entry.id] = _Pending(consumer, now, visible_at, count)
        return RawMessage(
            message_id=str(entry.id),
            body=entry.body,
            headers=entry.headers,
            timestamp=entry.timestamp,
            delivery_count=count,
            receipt_handle=str(entry.id),
        )

    def _take(
        self,
        log: _Log,
        group: _Group,
        consumer: str,
        count: int,
        visibility_timeout: float | None,
        now: float,
    ) -> list[RawMessage]:
        taken: list[RawMessage] = []
        ready = [
            entry_id
            for entry_id, p in group.pending.items()
            if p.visible_at <= now
            and (p.consumer is None or visibility_timeout is not None)
        ]
        for entry_id in sorted(ready):
            if len(taken) >= count:
                break
            entry = log.entries.get(entry_id)
            if entry is None:
                del group.pending[entry_id]
                continue
            taken.append(
                self._deliver(log, group, entry, consumer, visibility_timeout, now)
            )
        entry_id = group.last_id
        while len(taken) < count and entry_id < log.last_id:
            entry_id += 1
            group.last_id = entry_id
            found = log.entries.get(entry_id)
            if found is None:
                continue
            taken.append(
                self._deliver(log, group, found, consumer, visibility_timeout, now)
            )
            group.entries_read += 1
        return taken

    def _next_ready(self, group: _Group, visibility_timeout: float | None) -> float:
        times = [
            p.visible_at
            for p in group.pending.values()
            if p.consumer is None or visibility_timeout is not None
        ]
        return min(times, default=math.inf)

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
        deadline = time.monotonic() + block
        while True:
            log = self._log(name)
            state = self._group(log, group)
            state.consumers.add(consumer)
            now = time.time()
            self._drop_expired(log, now)
            taken = self._take(log, state, consumer, count, visibility_timeout, now)
            remaining = deadline - time.monotonic()
            if taken or remaining <= 0:
                return taken
            wait = min(remaining, self._next_ready(state, visibility_timeout) - now)
            wakeup = log.wakeup
            try:
                async with asyncio.timeout(max(wait, 0.0)):
                    await wakeup.wait()
            except TimeoutError:
                pass

    async def ack(self, name: str, group: str, receipt_handles: Sequence[str]) -> int:
        log = self._log(name)
        state = self._group(log, group)
        ids = [int(h) for h in receipt_handles]
        acked = 0
        for entry_id in ids:
            if state.pending.pop(entry_id, None) is not None:
                acked += 1
        self._collect(log, ids)
        return acked

    async def release(
        self, name: str, group: str, receipt_handles: Sequence[str], delay: float
    ) -> None:
        log = self._log(name)
        state = self._group(log, group)
        ready_at = time.time() + delay
        for handle in receipt_handles:
            pending = state.pending.get(int(handle))
            if pending is not None:
                pending.consumer = None
                pending.visible_at = ready_at
        log.notify()

    async def extend(
        self,
        name: str,
        group: str,
        consumer: str,
        receipt_handles: Sequence[str],
        visibility_timeout: float,
    ) -> list[str]:
        log = self._log(name)
        state = self._group(log, group)
        now = time.time()
        kept: list[str] = []
        for handle in receipt_handles:
            pending = state.pending.get(int(handle))
            if pending is not None and pending.consumer == consumer:
                if pending.visible_at != math.inf:
                    pending.visible_at = now + visibility_timeout
                pending.delivered_at = now
                kept.append(handle)
        return kept

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
        log = self._log(name)
        state = self._group(log, group)
        state.consumers.add(consumer)
        now = time.time()
        self._drop_expired(log, now)
        idle_before = now - min_idle
        claimed: list[RawMessage] = []
        for entry_id in sorted(state.pending):
            if len(claimed) >= count:
                break
            pending = state.pending[entry_id]
            if pending.delivered_at > idle_before:
                continue
            if pending.consumer is None and pending.visible_at > now:
                continue
            entry = log.entries.get(entry_id)
            if entry is None:
                del state.pending[entry_id]
                continue
            claimed.append(
                self._deliver(log, state, entry, consumer, visibility_timeout, now)
            )
        return claimed

    # -- inspecting ---------------------------------------------------------

    async def info(self, name: str) -> QueueInfo:
        log = self._log(name)
        self._drop_expired(log, time.time())
        entries = log.entries
        first = next(iter(entries.values()), None)
        last = entries[next(reversed(entries))] if entries else None
        groups = [
            GroupInfo(
                name=group_name,
                consumers=len(state.consumers),
                pending=sum(1 for i in state.pending if i in entries),
                lag=sum(1 for i in entries if i > state.last_id),
                last_delivered_id=str(state.last_id),
                entries_read=state.entries_read,
            )
            for group_name, state in log.groups.items()
        ]
        return QueueInfo(
            name=name,
            stream=log.stream,
            length=len(entries),
            first_entry=_raw_entry(first),
            last_entry=_raw_entry(last),
            last_generated_id=str(log.last_id),
            groups=groups,
            max_length=log.max_length,
            message_ttl=log.message_ttl,
        )

    async def trim(self, name: str, max_len: int) -> int:
        log = self._log(name)
        removed = 0
        while len(log.entries) > max_len:
            self._remove(log, next(iter(log.entries)))
            removed += 1
        return removed


def _raw_entry(entry: _Entry | None) -> RawEntry | None:
    if entry is None:
        return None
    return RawEntry(str(entry.id), entry.body, entry.headers, entry.timestamp)
