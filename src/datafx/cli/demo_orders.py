"""The demo's order-processing walk-through: a queue, a worker group and a stream.

Orders are published with headers to the queue ``demo:orders``. Two workers
of the group ``fulfilment`` process them and append an event per order to
the stream ``demo:order-events``. One order is invalid: its handler raises,
so it is retried and then moved to ``demo:orders.dlq`` with the reason. At
the end an ``analytics`` group reads part of the stream, and the stream
info and the group's lag are printed. Queues and streams cannot be deleted
through the API, so each run starts by draining and trimming what an
earlier run left.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from datafx.cli.demo import DemoContext, DemoSection
from datafx.connfx.behaviors import Behavior
from datafx.connfx.queueing import ConsumerConfig, QueueConfig
from datafx.queue import Queue
from datafx.stream import QueueStream

__all__ = ["ORDERS_SECTION", "orders_section"]

ORDERS = "demo:orders"
DEAD_LETTERS = ORDERS + ".dlq"
EVENTS = "demo:order-events"
WORKERS = "fulfilment"
TIMEOUT = 15.0  # seconds the walk-through waits for the workers at most


@dataclass(slots=True)
class Order:
    """One order to fulfil."""

    id: int
    item: str
    quantity: int


ORDER_LIST = [
    Order(1001, "httpx t-shirt", 2),
    Order(1002, "msgspec mug", 1),
    Order(1003, "aiosqlite sticker pack", 10),
    Order(1004, "broken order", -1),
    Order(1005, "zipp notebook", 3),
]


async def _drain(queue: Queue, name: str) -> int:
    """Acknowledge whatever an earlier run left in ``name``; return the count."""
    config = ConsumerConfig(prefetch_count=100, block_timeout=0)
    drained = 0
    async with queue.consume(name, config) as messages:
        while True:
            try:
                async with asyncio.timeout(0.2):
                    message = await anext(messages)
            except TimeoutError:
                return drained
            await message.ack()
            drained += 1


async def orders_section(ctx: DemoContext) -> None:
    queue = Queue(ctx.conn)
    streams = QueueStream(ctx.conn)
    await queue.declare_queue(ORDERS, QueueConfig(durable=True))
    await queue.declare_queue(DEAD_LETTERS, QueueConfig(durable=True))
    await _drain(queue, ORDERS)
    await _drain(queue, DEAD_LETTERS)
    await streams.create_consumer_group(EVENTS, "analytics", "$")
    await streams.trim_stream(EVENTS, 0)
    ctx.step(f"await queue.declare_queue({ORDERS!r}, QueueConfig(durable=True))")

    fulfilled: list[int] = []
    attempts: dict[int, int] = {}

    async def fulfil(order: Order) -> bool:
        attempts[order.id] = attempts.get(order.id, 0) + 1
        if order.quantity <= 0:
            raise ValueError(f"order {order.id} has quantity {order.quantity}")
        await streams.send_message(
            EVENTS,
            {"order": order.id, "event": "fulfilled", "quantity": order.quantity},
            headers={"source": WORKERS},
        )
        fulfilled.append(order.id)
        return True

    config = ConsumerConfig(
        prefetch_count=2, block_timeout=0.2, max_retries=2, retry_delay=0.1
    )
    workers = [
        asyncio.create_task(
            queue.process_messages(ORDERS, fulfil, Order, config, WORKERS, name)
        )
        for name in ("worker-1", "worker-2")
    ]
    ctx.step(
        f"queue.process_messages({ORDERS!r}, fulfil, Order, config, "
        f"group={WORKERS!r}, consumer='worker-1' and 'worker-2')"
    )
    try:
        async with asyncio.timeout(TIMEOUT):
            # The group exists once its first consumer has started.
            while True:
                queue_info = await queue.stats(ORDERS)
                if WORKERS in [group.name for group in queue_info.groups]:
                    break
                await asyncio.sleep(0.02)
            for order in ORDER_LIST:
                await queue.publish(
                    ORDERS,
                    order,
                    headers={
                        "customer": f"c-{order.id % 7}",
                        "express": order.id % 2 == 0,
                    },
                )
            ctx.step(
                f"await queue.publish({ORDERS!r}, Order(...), "
                "headers={'customer': ..., 'express': ...})  # 5 orders"
            )
            while True:
                dead_count = (await queue.stats(DEAD_LETTERS)).length
                if len(fulfilled) >= 4 and dead_count >= 1:
                    break
                await asyncio.sleep(0.05)
    finally:
        for task in workers:
            task.cancel()
        for task in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
    ctx.say(f"fulfilled orders: {sorted(fulfilled)}")
    ctx.say(f"order 1004 was tried {attempts.get(1004, 0)} times (max_retries=2)")

    async with queue.consume(DEAD_LETTERS, ConsumerConfig(block_timeout=1.0)) as dead:
        async with asyncio.timeout(TIMEOUT):
            message = await anext(dead)
        await message.ack()
    ctx.step(f"async for message in queue.consume({DEAD_LETTERS!r})", message)
    ctx.say(f"reason: {message.headers['x-dead-letter-reason']}")
    ctx.say(f"headers kept: customer={message.headers['customer']!r}")

    read = 0
    read_config = ConsumerConfig(prefetch_count=2, block_timeout=1.0)
    async with streams.consume(EVENTS, "analytics", "report", read_config) as events:
        async with asyncio.timeout(TIMEOUT):
            while read < 2:
                event = await anext(events)
                await event.ack()
                read += 1
    ctx.step(f"analytics group read {read} of {len(fulfilled)} events")

    info = await streams.get_stream_info(EVENTS)
    first = info.first_entry.decode() if info.first_entry else None
    ctx.step(
        f"await stream.get_stream_info({EVENTS!r})",
        f"length={info.length}, groups={info.groups}, "
        f"last_generated_id={info.last_generated_id}, first_entry={first}",
    )
    for group in await streams.get_consumer_group_info(EVENTS):
        ctx.step(
            f"consumer group {group.name!r}",
            f"consumers={group.consumers}, pending={group.pending}, "
            f"lag={group.lag}, last_delivered_id={group.last_delivered_id}",
        )


ORDERS_SECTION = DemoSection(
    "Queue and QueueStream: order processing",
    orders_section,
    frozenset({Behavior.QUEUE, Behavior.STREAMING}),
)
