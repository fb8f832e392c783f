"""PostgreSQL queues: LISTEN/NOTIFY wake-ups, hostile names, concurrent consumers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

import datafx
from datafx.connfx import ConsumerConfig, QueueConfig
from datafx.connfx.adapters.postgres import PostgresConnection

pytestmark = pytest.mark.server

OpenConnection = Callable[..., Awaitable[PostgresConnection]]


async def test_notify_wakes_consumer_of_other_connection(
    open_connection: OpenConnection,
) -> None:
    consumer_conn = await open_connection()
    publisher_conn = await open_connection()
    port = consumer_conn.queue
    await port.declare("wake", QueueConfig())
    waiting = asyncio.create_task(
        port.fetch("wake", "default", "c1", 1, visibility_timeout=30.0, block=5.0)
    )
    await asyncio.sleep(0.3)  # the fetch is now blocked on its LISTEN connection
    started = time.perf_counter()
    await datafx.Queue(publisher_conn).publish("wake", "hello")
    [message] = await waiting
    latency = time.perf_counter() - started
    assert message.body == b'"hello"'
    # Without the notification the fetch would poll once per second.
    assert latency < 0.2, f"woke after {latency:.3f}s"


async def test_hostile_queue_names_are_data(open_connection: OpenConnection) -> None:
    conn = await open_connection()
    queue = datafx.Queue(conn)
    names = ["q'; DELETE FROM pg_class; --", 'q"x', "очередь 🔔", "q%_\\", "n" * 500]
    for index, name in enumerate(names):
        await queue.declare_queue(name)
        await queue.publish(name, index)
    config = ConsumerConfig(block_timeout=0.5)
    for index, name in enumerate(names):
        async with queue.consume(name, config) as messages:
            message = await anext(messages)
            assert message.decode() == index
            await message.ack()


async def test_consumers_share_without_duplicates(
    open_connection: OpenConnection,
) -> None:
    conns = [await open_connection() for _ in range(3)]
    queue = datafx.Queue(conns[0])
    await queue.declare_queue("work")
    for index in range(300):
        await queue.publish("work", index)
    seen: list[int] = []

    async def drain(conn: PostgresConnection, consumer: str) -> None:
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
    info = await conns[0].queue.info("work")
    assert info.length == 0
    assert info.groups[0].pending == 0


async def test_cancelled_fetch_leaves_nothing_leased(
    open_connection: OpenConnection,
) -> None:
    conn = await open_connection()
    port = conn.queue
    await port.declare("c", QueueConfig())
    await port.publish("c", b"1", b"")
    for _ in range(20):
        task = asyncio.create_task(
            port.fetch("c", "default", "x", 1, visibility_timeout=60.0, block=1.0)
        )
        await asyncio.sleep(0.001)
        task.cancel()
        try:
            taken = await task
        except asyncio.CancelledError:
            taken = None
        if taken:
            await port.release("c", "default", [m.receipt_handle for m in taken], 0.0)
    await asyncio.sleep(0.2)  # releases scheduled by cancelled fetches
    [message] = await port.fetch(
        "c", "default", "y", 1, visibility_timeout=60.0, block=1.0
    )
    assert message.body == b"1"
