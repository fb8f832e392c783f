"""Cancellation under load: no reply reaches the wrong caller, nothing stays leased."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import datafx
from datafx.connfx import QueueConfig
from datafx.connfx.adapters.redis import RedisConnection
from datafx.connfx.queueing import DEFAULT_GROUP, RawMessage

Connect = Callable[..., Awaitable[RedisConnection]]


async def test_cancelled_calls_never_leak_replies(
    connect: Connect, prefix: str
) -> None:
    conn = await connect(max_connections=8)
    store = datafx.Store(conn)
    keys = [f"{prefix}k{i}" for i in range(64)]
    await store.set_many({key: key for key in keys})
    rng = random.Random(7)
    completed = 0
    cancelled = 0

    async def worker(key: str) -> None:
        nonlocal completed, cancelled
        for _ in range(60):
            call = asyncio.create_task(store.get(key))
            await asyncio.sleep(rng.choice([0, 0, 0.0001, 0.0005, 0.001]))
            if rng.random() < 0.5:
                call.cancel()
            try:
                value = await call
            except asyncio.CancelledError:
                cancelled += 1
                continue
            assert value == key, f"reply for {value!r} reached the caller of {key!r}"
            completed += 1

    async with asyncio.timeout(60):
        await asyncio.gather(*(worker(key) for key in keys))
    assert cancelled > 100
    assert completed > 100
    assert await store.get_many(keys) == {key: key for key in keys}


async def test_cancelled_transaction_leaves_no_watch(
    connect: Connect, prefix: str
) -> None:
    # One pooled connection, so the next transaction reuses the cancelled one's.
    conn = await connect(max_connections=1)
    other = datafx.Store(await connect())
    tx_store = datafx.TransactionalStore(conn)
    watched = prefix + "watched"
    await other.set(watched, 0)
    inside = asyncio.Event()

    async def slow() -> None:
        async with tx_store.transaction() as tx:
            await tx.get(watched)
            inside.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(slow())
    await inside.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await other.set(watched, 1)  # would abort the next EXEC if WATCH had stayed
    async with tx_store.transaction() as tx:
        await tx.set(prefix + "after", "committed")
    assert await other.get(prefix + "after") == "committed"


async def test_cancelled_fetches_leave_nothing_leased(
    connect: Connect, prefix: str
) -> None:
    conn = await connect()
    queue = datafx.Queue(conn)
    name = await queue.declare_queue(prefix + "q", QueueConfig())
    total = 200
    for i in range(total):
        await queue.publish(name, i)
    port = conn.queue
    rng = random.Random(11)
    received: set[str] = set()

    async def fetch(consumer: str, block: float) -> list[RawMessage]:
        messages: list[RawMessage] = await port.fetch(
            name, DEFAULT_GROUP, consumer, 5, visibility_timeout=60.0, block=block
        )
        return messages

    async def settle(messages: list[RawMessage]) -> int:
        if messages:
            await port.ack(name, DEFAULT_GROUP, [m.receipt_handle for m in messages])
            received.update(m.message_id for m in messages)
        return len(messages)

    cancelled = 0
    for attempt in range(150):
        call = asyncio.create_task(fetch(f"c{attempt}", 0.0))
        await asyncio.sleep(rng.choice([0, 0.0002, 0.0005, 0.001]))
        call.cancel()
        try:
            await settle(await call)
        except asyncio.CancelledError:
            cancelled += 1
    assert cancelled > 20
    # The visibility timeout is 60 s, so a message leased by a cancelled fetch
    # and not released would not come back within this loop.
    async with asyncio.timeout(20):
        while await settle(await fetch("finisher", 0.2)):
            pass
    assert len(received) == total
