"""Queue and stream state from ``XINFO STREAM``, ``XINFO GROUPS`` and the meta hash."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from datafx.connfx.adapters.redis.scripts import RELEASED_CONSUMER
from datafx.connfx.errors import QueueNotFoundError
from datafx.connfx.queueing import GroupInfo, QueueInfo, RawEntry

if TYPE_CHECKING:
    from datafx.connfx.adapters.redis.queue import QueueKeys

__all__ = ["read_info"]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(flat: Any) -> dict[str, Any]:
    """Turn a flat ``[name, value, ...]`` reply (or a dict) into a str-keyed dict."""
    if isinstance(flat, dict):
        return {_text(key): value for key, value in flat.items()}
    return {_text(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}


def _entry(raw: Any) -> RawEntry | None:
    if not raw:
        return None
    entry_id = _text(raw[0])
    fields = _pairs(raw[1])
    return RawEntry(
        message_id=entry_id,
        body=fields.get("b", b""),
        headers=fields.get("h", b""),
        timestamp=int(entry_id.partition("-")[0]) / 1000,
    )


def _delivered_id(entry_id: str) -> str:
    # The port reports "0" before the first delivery; Redis reports "0-0".
    return "0" if entry_id == "0-0" else entry_id


def _group(raw: Any, placeholder_consumers: int) -> GroupInfo:
    fields = _pairs(raw)
    lag = fields.get("lag")
    return GroupInfo(
        name=_text(fields["name"]),
        consumers=int(fields["consumers"]) - placeholder_consumers,
        pending=int(fields["pending"]),
        # Redis 7.0 reports no lag when deleted entries make it unknown.
        lag=None if lag is None else int(lag),
        last_delivered_id=_delivered_id(_text(fields["last-delivered-id"])),
        entries_read=int(fields.get("entries-read") or 0),
    )


async def _placeholder_count(
    client: Redis | RedisCluster, stream: str, group: str
) -> int:
    consumers = await client.execute_command("XINFO", "CONSUMERS", stream, group)
    names = [_text(_pairs(consumer)["name"]) for consumer in consumers]
    return 1 if RELEASED_CONSUMER in names else 0


async def read_info(
    client: Redis | RedisCluster, name: str, keys: QueueKeys
) -> QueueInfo:
    """Return the state of queue or stream ``name``; raises ``QueueNotFoundError``."""
    meta = _pairs(await client.execute_command("HGETALL", keys.meta))
    if not meta:
        raise QueueNotFoundError(name)
    stream = _pairs(await client.execute_command("XINFO", "STREAM", keys.stream))
    raw_groups = await client.execute_command("XINFO", "GROUPS", keys.stream)
    groups = []
    for raw in raw_groups:
        group_name = _text(_pairs(raw)["name"])
        placeholders = await _placeholder_count(client, keys.stream, group_name)
        groups.append(_group(raw, placeholders))
    ttl_ms = int(meta.get("ttl_ms", 0))
    return QueueInfo(
        name=name,
        stream=_text(meta.get("stream", b"0")) == "1",
        length=int(stream["length"]),
        first_entry=_entry(stream.get("first-entry")),
        last_entry=_entry(stream.get("last-entry")),
        last_generated_id=_text(stream["last-generated-id"]),
        groups=groups,
        max_length=int(meta.get("max_length", 0)),
        message_ttl=ttl_ms / 1000 if ttl_ms else None,
    )
