"""MySQL queues: hostile names, name limits and concurrent consumers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

import datafx
from datafx.connfx import ConsumerConfig, QueueConfig
from datafx.connfx.adapters.mysql import MySqlConnection
from datafx.connfx.adapters.sqlbase.limits import KeyTooLongError

pytestmark = pytest.mark.server

OpenConnection = Callable[..., Awaitable[MySqlConnection]]


async def test_hostile_queue_names_are_data(open_connection: OpenConnection) -> None:
    conn = await open_connection()
    queue = datafx.Queue(conn)
    names = ["q'; DELETE FROM mysql.user; --", "q`x", "очередь 🔔", "q%_\\", "n" * 500]
    for index, name in enumerate(names):
        await queue.declare_queue(name)
        await queue.publish(name, index)
    config = ConsumerConfig(block_timeout=0.5)
    for index, name in enumerate(names):
        async with queue.consume(name, config) as messages:
            message = await anext(messages)
            assert message.decode() == index
            await message.ack()


async def test_overlong_queue_name_names_the_limit(
    open_connection: OpenConnection,
) -> None:
    queue = datafx.Queue(await open_connection())
    with pytest.raises(KeyTooLongError, match="1024 bytes"):
        await queue.declare_queue("q" * 1025)


async def test_publish_wakes_local_consumer_at_once(
    open_connection: OpenConnection,
) -> None:
    conn = await open_connection()
    port = conn.queue
    await port.declare("wake", QueueConfig())
    waiting = asyncio.create_task(
        port.fetch("wake", "default", "c1", 1, visibility_timeout=30.0, block=5.0)
    )
    await asyncio.sleep(0.1)
    await port.publish("wake", b"1", b"")
    [message] = await asyncio.wait_for(waiting, 1.0)
    assert message.body == b"1"


async def test_consumers_share_without_duplicates(
    open_connection: OpenConnection,
) -> None:
    conns = [await open_connection() for _ in range(3)]
    port0 = conns[0].queue
    await port0.declare("work", QueueConfig())
    for index in range(300):
        await port0.publish("work", str(index).encode(), b"")
    seen: list[int] = []

    async def drain(conn: MySqlConnection, consumer: str) -> None:
        port = conn.queue
        while True:
            batch = await port.fetch(
                "work", "default", consumer, 7, visibility_timeout=30.0, block=0.2
            )
            if not batch:
                return
            seen.extend(int(m.body) for m in batch)
            await port.ack("work", "default", [m.receipt_handle for m in batch])

    await asyncio.gather(*(drain(c, f"c{i}") for i, c in enumerate(conns)))
    assert sorted(seen) == list(range(300))
    info = await port0.info("work")
    assert info.length == 0
    assert info.groups[0].pending == 0
