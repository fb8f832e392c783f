"""Key-values with expiry kept in a Python dict."""

from __future__ import annotations

import heapq
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

from datafx.connfx.errors import KeyNotFoundError, TransactionFailedError

__all__ = ["Entry", "MemoryKeyValue", "MemoryTransaction", "MemoryTransactional"]


@dataclass(slots=True, eq=False)
class Entry:
    """One stored value. Every write makes a new ``Entry``, so identity is a version."""

    value: bytes
    expires_at: float | None  # time.monotonic() deadline, None for no expiry


class KeySpace:
    """The data of one memory database: entries plus a heap of expiry deadlines."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self._deadlines: list[tuple[float, str]] = []

    def live(self, key: str, now: float | None = None) -> Entry | None:
        entry = self.entries.get(key)
        if entry is None or entry.expires_at is None:
            return entry
        if entry.expires_at > (time.monotonic() if now is None else now):
            return entry
        del self.entries[key]
        return None

    def put(self, key: str, entry: Entry) -> None:
        self.entries[key] = entry
        if entry.expires_at is not None:
            heapq.heappush(self._deadlines, (entry.expires_at, key))
        self.sweep()

    def delete(self, key: str) -> None:
        self.entries.pop(key, None)

    def sweep(self, limit: int = 64) -> None:
        """Drop up to ``limit`` expired entries whose deadline has passed."""
        deadlines = self._deadlines
        if not deadlines:
            return
        now = time.monotonic()
        while deadlines and limit and deadlines[0][0] <= now:
            deadline, key = heapq.heappop(deadlines)
            entry = self.entries.get(key)
            if entry is not None and entry.expires_at == deadline:
                del self.entries[key]
            limit -= 1


def _deadline(ttl: float | None) -> float | None:
    return None if ttl is None else time.monotonic() + ttl


class MemoryKeyValue:
    """Key-value and cache ports over a :class:`KeySpace`."""

    def __init__(self, space: KeySpace) -> None:
        self._space = space

    async def get(self, key: str) -> bytes | None:
        entry = self._space.live(key)
        return None if entry is None else entry.value

    async def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        now = time.monotonic()
        live = self._space.live
        found: dict[str, bytes] = {}
        for key in keys:
            entry = live(key, now)
            if entry is not None:
                found[key] = entry.value
        return found

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self._space.put(key, Entry(value, _deadline(ttl)))

    async def set_many(
        self, items: Mapping[str, bytes], ttl: float | None = None
    ) -> None:
        deadline = _deadline(ttl)
        for key, value in items.items():
            self._space.put(key, Entry(value, deadline))

    async def update(self, key: str, value: bytes) -> bool:
        entry = self._space.live(key)
        if entry is None:
            return False
        self._space.put(key, Entry(value, entry.expires_at))
        return True

    async def remove(self, key: str) -> None:
        self._space.delete(key)

    async def remove_many(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._space.delete(key)

    async def exists(self, key: str) -> bool:
        return self._space.live(key) is not None

    async def get_ttl(self, key: str) -> float | None:
        entry = self._space.live(key)
        if entry is None:
            raise KeyNotFoundError(key)
        if entry.expires_at is None:
            return None
        return max(entry.expires_at - time.monotonic(), 0.001)

    async def expire(self, key: str, ttl: float) -> bool:
        entry = self._space.live(key)
        if entry is None:
            return False
        self._space.put(key, Entry(entry.value, _deadline(ttl)))
        return True

    async def scan(self, prefix: str = "") -> AsyncIterator[str]:
        """Yield the live keys starting with ``prefix`` in ascending order.

        The matching keys are copied and sorted first, so writes during the
        scan never break the iteration.
        """
        keys = sorted(key for key in self._space.entries if key.startswith(prefix))
        for key in keys:
            if self._space.live(key) is not None:
                yield key


_DELETED = Entry(b"", None)


class MemoryTransaction:
    """Optimistic transaction: writes are buffered, reads are remembered.

    At commit, every key the transaction read must still hold the same entry
    (compared by identity), or the commit raises a retryable
    ``TransactionFailedError``; the writes are then applied with no await in
    between, so other tasks see all of them or none.
    """

    def __init__(self, space: KeySpace) -> None:
        self._space = space
        self._reads: dict[str, Entry | None] = {}
        self._writes: dict[str, Entry] = {}
        self._done = False

    def _read(self, key: str) -> Entry | None:
        written = self._writes.get(key)
        if written is not None:
            if written is _DELETED:
                return None
            expires_at = written.expires_at
            if expires_at is not None and expires_at <= time.monotonic():
                return None
            return written
        entry = self._space.live(key)
        self._reads.setdefault(key, entry)
        return entry

    def _check_active(self) -> None:
        if self._done:
            raise TransactionFailedError("the transaction has already ended")

    async def get(self, key: str) -> bytes | None:
        entry = self._read(key)
        return None if entry is None else entry.value

    async def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        found = {}
        for key in keys:
            entry = self._read(key)
            if entry is not None:
                found[key] = entry.value
        return found

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self._check_active()
        self._writes[key] = Entry(value, _deadline(ttl))

    async def set_many(
        self, items: Mapping[str, bytes], ttl: float | None = None
    ) -> None:
        self._check_active()
        deadline = _deadline(ttl)
        for key, value in items.items():
            self._writes[key] = Entry(value, deadline)

    async def update(self, key: str, value: bytes) -> bool:
        self._check_active()
        entry = self._read(key)
        if entry is None:
            return False
        self._writes[key] = Entry(value, entry.expires_at)
        return True

    async def remove(self, key: str) -> None:
        self._check_active()
        self._writes[key] = _DELETED

    async def remove_many(self, keys: Sequence[str]) -> None:
        self._check_active()
        for key in keys:
            self._writes[key] = _DELETED

    async def exists(self, key: str) -> bool:
        return self._read(key) is not None

    async def get_ttl(self, key: str) -> float | None:
        entry = self._read(key)
        if entry is None:
            raise KeyNotFoundError(key)
        if entry.expires_at is None:
            return None
        return max(entry.expires_at - time.monotonic(), 0.001)

    async def expire(self, key: str, ttl: float) -> bool:
        self._check_active()
        entry = self._read(key)
        if entry is None:
            return False
        self._writes[key] = Entry(entry.value, _deadline(ttl))
        return True

    async def commit(self) -> None:
        self._check_active()
        self._done = True
        space = self._space
        now = time.monotonic()
        for key, read in self._reads.items():
            if space.live(key, now) is not read:
                raise TransactionFailedError(
                    f"transaction conflict: key {key!r} was changed by another "
                    "writer after this transaction read it",
                    retryable=True,
                )
        for key, entry in self._writes.items():
            if entry is _DELETED:
                space.delete(key)
            else:
                space.put(key, entry)

    async def rollback(self) -> None:
        self._done = True
        self._writes.clear()


class MemoryTransactional:
    """Opens :class:`MemoryTransaction` objects on one key space."""

    def __init__(self, space: KeySpace) -> None:
        self._space = space

    async def begin(self) -> MemoryTransaction:
        return MemoryTransaction(self._space)
