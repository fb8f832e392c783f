"""Redis Streams details behind the queue and stream ports."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import datafx
from datafx.connfx import QueueConfig
from datafx.connfx.adapters.redis import RedisConnection
from datafx.connfx.adapters.redis.queue import QueueKeys
from datafx.connfx.queueing import DEFAULT_GROUP, RawMessage

Connect = Callable[..., Awaitable[RedisConnection]]


async def test_declare_keeps_leftover_group(connect: Connect, prefix: str) -> None:
    conn = await connect()
    keys = QueueKeys(prefix + "q")
    # A group left behind by an earlier queue of the same name (BUSYGROUP).
    await conn.raw.xgroup_create(keys.stream, DEFAULT_GROUP, "0", mkstream=True)
    queue = datafx.Queue(conn)
    name = await queue.declare_queue(prefix + "q", QueueConfig())
    await queue.publish(name, "after")
    port = conn.queue
    [message] = await port.fetch(
        name, DEFAULT_GROUP, "c", 1, visibility_timeout=5.0, block=1.0
    )
    assert message.body == b'"after"'
    await conn.raw.delete(keys.stream, keys.meta)


async def test_deleted_pending_entries_are_skipped(
    connect: Connect, prefix: str
) -> None:
    conn = await connect()
    queue = datafx.Queue(conn)
    name = await queue.declare_queue(prefix + "q", QueueConfig())
    for i in range(3):
        await queue.publish(name, i)
    port = conn.queue
    taken = await port.fetch(
        name, DEFAULT_GROUP, "dead", 3, visibility_timeout=None, block=1.0
    )
    assert len(taken) == 3
    # Another client deletes the middle entry while it is pending.
    await conn.raw.xdel(QueueKeys(name).stream, taken[1].message_id)
    await asyncio.sleep(0.05)
    claimed = await port.claim(
        name, DEFAULT_GROUP, "rescuer", 0.01, 10, visibility_timeout=None
    )
    assert [m.message_id for m in claimed] == [taken[0].message_id, taken[2].message_id]
    assert all(m.body for m in claimed)
    assert all(m.delivery_count == 2 for m in claimed)
    info = await queue.stats(name)
    [group] = [g for g in info.groups if g.name == DEFAULT_GROUP]
    assert group.pending == 2


async def test_released_messages_keep_count(connect: Connect, prefix: str) -> None:
    conn = await connect()
    queue = datafx.Queue(conn)
    name = await queue.declare_queue(prefix + "q", QueueConfig())
    await queue.publish(name, "x")
    port = conn.queue
    [first] = await port.fetch(
        name, DEFAULT_GROUP, "a", 1, visibility_timeout=5.0, block=1.0
    )
    await port.release(name, DEFAULT_GROUP, [first.receipt_handle], 0.2)
    early = await port.fetch(
        name, DEFAULT_GROUP, "b", 1, visibility_timeout=5.0, block=0.0
    )
    assert early == []
    [again] = await port.fetch(
        name, DEFAULT_GROUP, "b", 1, visibility_timeout=5.0, block=2.0
    )
    assert again.message_id == first.message_id
    assert again.delivery_count == 2
    info = await queue.stats(name)
    [group] = info.groups
    # The placeholder owner of released messages is not a consumer.
    assert group.consumers == 2


async def test_extend_only_for_holder(connect: Connect, prefix: str) -> None:
    conn = await connect()
    queue = datafx.Queue(conn)
    name = await queue.declare_queue(prefix + "q", QueueConfig())
    await queue.publish(name, "x")
    port = conn.queue
    [message] = await port.fetch(
        name, DEFAULT_GROUP, "a", 1, visibility_timeout=0.3, block=1.0
    )
    handle = message.receipt_handle
    assert await port.extend(name, DEFAULT_GROUP, "other", [handle], 0.3) == []
    await asyncio.sleep(0.2)
    assert await port.extend(name, DEFAULT_GROUP, "a", [handle], 0.3) == [handle]
    await asyncio.sleep(0.2)
    # Renewed 0.2 s ago, so the 0.3 s lease has not lapsed yet.
    stolen = await port.fetch(
        name, DEFAULT_GROUP, "b", 1, visibility_timeout=0.3, block=0.0
    )
    assert stolen == []


async def test_queue_keys_share_one_slot() -> None:
    from redis.crc import key_slot

    keys = QueueKeys("orders:eu")
    slots = {
        key_slot(keys.stream.encode()),
        key_slot(keys.meta.encode()),
        key_slot(keys.delayed("g").encode()),
    }
    assert len(slots) == 1


async def test_stale_consumers_are_removed(connect: Connect, prefix: str) -> None:
    conn = await connect(stale_consumer_timeout=0.1)
    queue = datafx.Queue(conn)
    name = await queue.declare_queue(prefix + "q", QueueConfig())
    await queue.publish(name, "x")
    await queue.publish(name, "y")
    port = conn.queue

    async def fetch(consumer: str, block: float = 0.0) -> list[RawMessage]:
        messages: list[RawMessage] = await port.fetch(
            name, DEFAULT_GROUP, consumer, 1, visibility_timeout=5.0, block=block
        )
        return messages

    [done] = await fetch("gone")
    await port.ack(name, DEFAULT_GROUP, [done.receipt_handle])
    assert len(await fetch("live")) == 1
    await asyncio.sleep(0.3)
    # This fetch finds nothing and waits, so it first removes consumers idle
    # for 0.1 s that hold nothing: "gone", but not "live", which holds a message.
    assert await fetch("live", block=0.1) == []
    [group] = (await queue.stats(name)).groups
    assert group.consumers == 1
    assert group.pending == 1


async def test_release_seen_by_other_connection(connect: Connect, prefix: str) -> None:
    holder_conn = await connect()
    waiter_conn = await connect()
    queue = datafx.Queue(holder_conn)
    name = await queue.declare_queue(prefix + "q", QueueConfig())
    await queue.publish(name, "x")
    holder, waiter = holder_conn.queue, waiter_conn.queue
    [held] = await holder.fetch(
        name, DEFAULT_GROUP, "holder", 1, visibility_timeout=60.0, block=1.0
    )
    # The waiter's empty fetch makes it skip the pending search for a while.
    assert (
        await waiter.fetch(
            name, DEFAULT_GROUP, "waiter", 1, visibility_timeout=60.0, block=0.0
        )
        == []
    )
    await holder.release(name, DEFAULT_GROUP, [held.receipt_handle], 0.0)
    async with asyncio.timeout(2):
        [again] = await waiter.fetch(
            name, DEFAULT_GROUP, "waiter", 1, visibility_timeout=60.0, block=1.0
        )
    assert again.message_id == held.message_id
    assert again.delivery_count == 2
