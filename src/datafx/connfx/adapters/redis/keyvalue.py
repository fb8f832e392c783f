"""Key-value and cache ports on Redis strings.

TTLs are sent in milliseconds (``SET ... PX``, ``PEXPIRE``, ``PTTL``). On a
cluster, batch operations are split per hash slot: each slot's part is atomic
and the parts run concurrently, one round trip per slot. Keys that share a
hash tag (``{user:1}:name``, ``{user:1}:email``) share a slot.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from datafx.connfx.adapters.redis.errors import EventLoopGuard
from datafx.connfx.errors import KeyNotFoundError

__all__ = ["RedisKeyValue", "group_by_slot", "to_milliseconds"]


def to_milliseconds(seconds: float) -> int:
    """Convert a TTL to whole milliseconds, at least 1 (Redis rejects PX 0)."""
    return max(1, round(seconds * 1000))


def group_by_slot(keys: Sequence[str]) -> dict[int, list[str]]:
    """Group keys by their Redis Cluster hash slot, keeping their order."""
    groups: dict[int, list[str]] = defaultdict(list)
    for key in keys:
        groups[key_slot(key.encode())].append(key)
    return groups


def pttl_to_seconds(key: str, milliseconds: int) -> float | None:
    """Map a PTTL reply to the port contract: -2 is missing, -1 is no expiry."""
    if milliseconds == -2:
        raise KeyNotFoundError(key)
    if milliseconds == -1:
        return None
    # PTTL returns 0 for a key in its last millisecond; the contract forbids 0.
    return max(milliseconds, 1) / 1000


class RedisKeyValue:
    """``KeyValuePort`` and ``CachePort`` on one redis.asyncio client."""

    def __init__(self, client: Redis | RedisCluster, guard: EventLoopGuard) -> None:
        self._client = client
        self._guard = guard
        self._cluster = isinstance(client, RedisCluster)

    async def get(self, key: str) -> bytes | None:
        self._guard.check()
        value: bytes | None = await self._client.execute_command("GET", key)
        return value

    async def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        self._guard.check()
        if self._cluster:
            values = await self._client.mget_nonatomic(keys)  # type: ignore[union-attr]
        else:
            values = await self._client.execute_command("MGET", *keys)
        return {
            key: value
            for key, value in zip(keys, values, strict=True)
            if value is not None
        }

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self._guard.check()
        # A plain SET drops any TTL the key had, as the port requires.
        if ttl is None:
            await self._client.execute_command("SET", key, value)
        else:
            await self._client.execute_command(
                "SET", key, value, "PX", to_milliseconds(ttl)
            )

    async def set_many(
        self, items: Mapping[str, bytes], ttl: float | None = None
    ) -> None:
        self._guard.check()
        if not self._cluster:
            await self._set_slot(dict(items), ttl)
            return
        groups = group_by_slot(list(items))
        await asyncio.gather(
            *(
                self._set_slot({key: items[key] for key in keys}, ttl)
                for keys in groups.values()
            )
        )

    async def _set_slot(self, items: dict[str, bytes], ttl: float | None) -> None:
        """Write keys of one slot atomically: MSET, plus PEXPIRE in the same MULTI."""
        if ttl is None:
            await self._client.execute_command("MSET", *_flatten(items))
            return
        milliseconds = to_milliseconds(ttl)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.execute_command("MSET", *_flatten(items))
            for key in items:
                pipe.execute_command("PEXPIRE", key, milliseconds)
            await pipe.execute()

    async def update(self, key: str, value: bytes) -> bool:
        self._guard.check()
        # XX writes only an existing key and KEEPTTL keeps its expiry, in one
        # atomic command.
        reply = await self._client.execute_command("SET", key, value, "XX", "KEEPTTL")
        return reply is not None and reply is not False

    async def remove(self, key: str) -> None:
        self._guard.check()
        await self._client.execute_command("DEL", key)

    async def remove_many(self, keys: Sequence[str]) -> None:
        self._guard.check()
        # The cluster client splits a multi-key DEL per slot by itself.
        await self._client.delete(*keys)

    async def exists(self, key: str) -> bool:
        self._guard.check()
        count: int = await self._client.execute_command("EXISTS", key)
        return count > 0

    async def scan(self, prefix: str = "") -> AsyncIterator[str]:
        """Yield keys starting with ``prefix`` with SCAN MATCH (all nodes of a cluster).

        SCAN may return a key twice when the keyspace is rehashed during the
        scan, so keys already yielded are remembered and skipped.
        """
        self._guard.check()
        seen: set[bytes] = set()
        pattern = _glob_escape(prefix) + "*"
        async for key in self._client.scan_iter(match=pattern, count=1000):
            if key not in seen:
                seen.add(key)
                yield key.decode()

    async def get_ttl(self, key: str) -> float | None:
        self._guard.check()
        milliseconds: int = await self._client.execute_command("PTTL", key)
        return pttl_to_seconds(key, milliseconds)

    async def expire(self, key: str, ttl: float) -> bool:
        self._guard.check()
        done = await self._client.execute_command("PEXPIRE", key, to_milliseconds(ttl))
        return bool(done)


def _glob_escape(text: str) -> str:
    """Escape the glob characters of SCAN MATCH so they match only themselves."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


def _flatten(items: Mapping[str, bytes]) -> list[str | bytes]:
    flat: list[str | bytes] = []
    for key, value in items.items():
        flat.append(key)
        flat.append(value)
    return flat
