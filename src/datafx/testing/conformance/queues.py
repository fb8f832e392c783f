"""Conformance tests for queues through ``datafx.Queue``.

Every test takes the ``backend`` fixture (a :class:`datafx.testing.Backend`),
uses short block, retry and visibility timeouts so the suite stays fast, and
bounds every wait with ``asyncio.timeout`` so that a bug fails instead of
hanging. A test that simulates a consumer which dies after fetching uses the
connection's queue port directly, because a live ``datafx`` consumer always
renews or hands back what it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

import datafx
from datafx.connfx import ConsumerConfig, QueueConfig
from datafx.connfx.queueing import DEFAULT_GROUP
from datafx.message import HeaderValue
from datafx.testing.fixtures import Backend

T = TypeVar("T")

WAIT = 5.0  # Upper bound of every wait; a correct backend needs far less.


async def poll(done: Callable[[], bool]) -> None:
    """Wait until ``done()`` holds, checking every 10 ms, for at most ``WAIT``."""
    async with asyncio.timeout(WAIT):
        while True:
            if done():
                return
            await asyncio.sleep(0.01)


async def bounded(call: Awaitable[T]) -> T:
    """Await a direct port call for at most ``WAIT`` seconds."""
    async with asyncio.timeout(WAIT):
        return await call


async def stop(task: asyncio.Task[Any]) -> None:
    """Cancel a consumer loop; fail when it does not stop within ``WAIT`` seconds."""
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=WAIT)
    if not done:
        pytest.fail(f"a cancelled consumer loop did not stop within {WAIT} s")
    with contextlib.suppress(asyncio.CancelledError):
        task.result()


@dataclasses.dataclass
class Order:
    id: int
    item: str


def fast_config(
    *, visibility: float = 2.0, retry_delay: float = 0.05, **kwargs: Any
) -> ConsumerConfig:
    """Return a consumer config with short timeouts, for tests."""
    return ConsumerConfig(
        block_timeout=0.1,
        retry_delay=retry_delay,
        args={"visibility_timeout": visibility},
        **kwargs,
    )


async def _queue(
    backend: Backend, name: str = "q", **config: Any
) -> tuple[datafx.Queue, str]:
    if not backend.capabilities.queues:
        pytest.skip(f"{backend.spec.id} has no queue behavior")
    queue = datafx.Queue(backend.conn)
    declared = await queue.declare_queue(backend.key(name), QueueConfig(**config))
    return queue, declared


async def receive(
    queue: datafx.Queue,
    name: str,
    count: int,
    *,
    config: ConsumerConfig | None = None,
    group: str | None = None,
    consumer: str | None = None,
    ack: bool = True,
) -> list[datafx.Message]:
    """Consume ``count`` messages (acknowledging them unless ``ack=False``)."""
    received: list[datafx.Message] = []
    async with asyncio.timeout(WAIT):
        async with queue.consume(
            name, config or fast_config(), group, consumer
        ) as messages:
            async for message in messages:
                received.append(message)
                if ack:
                    await message.ack()
                if len(received) >= count:
                    break
    return received


async def receive_nothing(
    queue: datafx.Queue,
    name: str,
    *,
    wait: float = 0.3,
    group: str | None = None,
    config: ConsumerConfig | None = None,
) -> datafx.Message | None:
    """Return the message that arrives within ``wait`` seconds, or ``None``."""
    async with asyncio.timeout(WAIT):
        async with queue.consume(name, config or fast_config(), group) as messages:
            try:
                async with asyncio.timeout(wait):
                    return await anext(messages)
            except TimeoutError:
                return None


async def run_until(
    coro: Coroutine[Any, Any, None], done: Callable[[], bool], wait: float = WAIT
) -> None:
    """Run a consumer loop until ``done()`` holds, then cancel it.

    Fails when the loop ends on its own (an error) or ``done()`` never holds.
    """
    task = asyncio.create_task(coro)
    try:
        async with asyncio.timeout(wait):
            while not done():
                if task.done():
                    task.result()
                    pytest.fail(
                        "the consumer loop returned; it must run until cancelled"
                    )
                await asyncio.sleep(0.01)
    finally:
        await stop(task)


def _recorder(calls: list[Any]) -> Callable[[Any], bool]:
    """Return a handler that records each value and acknowledges it."""

    def record(value: Any) -> bool:
        calls.append(value)
        return True

    return record


# -- behavior ---------------------------------------------------------------


async def test_queue_behavior_matches_capabilities(backend: Backend) -> None:
    if backend.capabilities.queues:
        assert datafx.Queue(backend.conn).is_stream_supported() is (
            backend.capabilities.streams
        )
        return
    with pytest.raises(datafx.ConnectionNotSupportedError):
        datafx.Queue(backend.conn)


# -- publishing and consuming ------------------------------------------------


async def test_publish_consume_round_trip(backend: Backend) -> None:
    queue, name = await _queue(backend)
    headers: dict[str, HeaderValue] = {
        "kind": "order",
        "count": 3,
        "weight": 1.5,
        "urgent": True,
    }
    before = datetime.now(UTC) - timedelta(seconds=5)
    message_id = await queue.publish(name, {"id": 1, "item": "book"}, headers=headers)
    [message] = await receive(queue, name, 1)
    assert message.message_id == message_id
    assert message.decode() == {"id": 1, "item": "book"}
    assert message.decode(Order) == Order(1, "book")
    assert message.headers == headers
    assert type(message.headers["count"]) is int
    assert type(message.headers["weight"]) is float
    assert type(message.headers["urgent"]) is bool
    assert type(message.delivery_count) is int
    assert message.delivery_count == 1
    assert message.timestamp.tzinfo is not None
    assert before <= message.timestamp <= datetime.now(UTC) + timedelta(seconds=5)
    assert message.receipt_handle
    assert message.stream_name == name


async def test_publish_raw_round_trip(backend: Backend) -> None:
    queue, name = await _queue(backend)
    await queue.publish_raw(name, b"\x00\xffraw bytes")
    [message] = await receive(queue, name, 1)
    assert message.body == b"\x00\xffraw bytes"
    assert message.headers == {}


async def test_one_consumer_sees_fifo_order(backend: Backend) -> None:
    queue, name = await _queue(backend)
    for i in range(25):
        await queue.publish(name, i)
    messages = await receive(queue, name, 25, config=fast_config(prefetch_count=4))
    assert [m.decode(int) for m in messages] == list(range(25))


async def test_message_ids_are_unique(backend: Backend) -> None:
    queue, name = await _queue(backend)
    ids = [await queue.publish(name, i) for i in range(20)]
    assert len(set(ids)) == 20
    messages = await receive(queue, name, 20)
    assert len({m.message_id for m in messages}) == 20


async def test_typed_records_round_trip(backend: Backend) -> None:
    from datafx.testing.fixtures import load_sample_records

    queue, name = await _queue(backend)
    records = load_sample_records(50)
    for record in records:
        await queue.publish(name, record)
    messages = await receive(queue, name, len(records))
    assert [m.decode() for m in messages] == records


async def test_declare_returns_name_and_keeps_first_settings(backend: Backend) -> None:
    queue, name = await _queue(backend, max_length=2)
    assert await queue.declare_queue(name, QueueConfig(max_length=100)) == name
    for i in range(4):
        await queue.publish(name, i)
    messages = await receive(queue, name, 2)
    assert [m.decode() for m in messages] == [2, 3]


async def test_shared_between_connections(backend: Backend) -> None:
    if not backend.capabilities.shared_between_connections:
        pytest.skip(f"{backend.spec.id}: each connection has its own data")
    queue, name = await _queue(backend)
    other = datafx.Queue(await backend.connect())
    await other.publish(name, "from another connection")
    [message] = await receive(queue, name, 1)
    assert message.decode() == "from another connection"


# -- failures ----------------------------------------------------------------


async def test_publish_to_undeclared_queue_raises(backend: Backend) -> None:
    if not backend.capabilities.queues:
        pytest.skip(f"{backend.spec.id} has no queue behavior")
    queue = datafx.Queue(backend.conn)
    with pytest.raises(datafx.QueueNotFoundError):
        await queue.publish(backend.key("never-declared"), 1)


async def test_consume_undeclared_queue_raises(backend: Backend) -> None:
    if not backend.capabilities.queues:
        pytest.skip(f"{backend.spec.id} has no queue behavior")
    queue = datafx.Queue(backend.conn)
    name = backend.key("never-declared")
    async with asyncio.timeout(WAIT):
        with pytest.raises(datafx.QueueNotFoundError):
            async with queue.consume(name, fast_config()) as messages:
                await anext(messages)
        with pytest.raises(datafx.QueueNotFoundError):
            await queue.process_messages(name, lambda value: True, config=fast_config())


async def test_unencodable_value_publishes_nothing(backend: Backend) -> None:
    queue, name = await _queue(backend)
    with pytest.raises(datafx.MarshalError):
        await queue.publish(name, object())
    with pytest.raises(datafx.MarshalError):
        await queue.publish(name, {"score": math.nan})
    assert await receive_nothing(queue, name) is None


async def test_invalid_headers_are_rejected(backend: Backend) -> None:
    queue, name = await _queue(backend)
    with pytest.raises(TypeError, match="header 'when'"):
        await queue.publish(name, 1, headers={"when": datetime.now(UTC)})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="header 'tags'"):
        await queue.publish(name, 1, headers={"tags": ["a"]})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        await queue.publish(name, 1, headers={1: "x"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="non-finite"):
        await queue.publish(name, 1, headers={"x": math.inf})
    assert await receive_nothing(queue, name) is None


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: QueueConfig(max_length=-1), "max_length"),
        (lambda: QueueConfig(message_ttl=-1), "message_ttl"),
        (lambda: QueueConfig(args={"overflow": "explode"}), "overflow"),
        (lambda: ConsumerConfig(prefetch_count=-1), "prefetch_count"),
        (lambda: ConsumerConfig(prefetch_count=0), "prefetch_count"),
        (lambda: ConsumerConfig(retry_delay=-1), "retry_delay"),
        (lambda: ConsumerConfig(block_timeout=-0.5), "block_timeout"),
        (lambda: ConsumerConfig(max_retries=-1), "max_retries"),
    ],
)
async def test_invalid_config_names_field(
    backend: Backend, make: Callable[[], object], field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        make()


async def test_invalid_visibility_timeout_names_field(backend: Backend) -> None:
    queue, name = await _queue(backend)
    config = ConsumerConfig(args={"visibility_timeout": -1})
    with pytest.raises(ValueError, match="visibility_timeout"):
        queue.consume(name, config)


# -- acknowledgement, retries and dead letters --------------------------------


async def test_ack_removes_message(backend: Backend) -> None:
    queue, name = await _queue(backend)
    await queue.publish(name, "once")
    [message] = await receive(queue, name, 1)
    await message.ack()  # a second ack does nothing
    assert await receive_nothing(queue, name) is None


async def test_nack_requeue_redelivers_after_retry_delay(backend: Backend) -> None:
    queue, name = await _queue(backend)
    await queue.publish(name, "again")
    config = fast_config(retry_delay=0.3)
    [first] = await receive(queue, name, 1, config=config, ack=False)
    nacked_at = time.monotonic()
    await first.nack(requeue=True)
    [second] = await receive(queue, name, 1, config=config)
    assert time.monotonic() - nacked_at >= 0.25
    assert second.message_id == first.message_id
    assert second.delivery_count == 2


async def test_nack_without_requeue_dead_letters(backend: Backend) -> None:
    queue, name = await _queue(backend)
    await queue.publish(name, {"id": 7}, headers={"tenant": "acme", "n": 1})
    [message] = await receive(queue, name, 1, ack=False)
    await message.nack(requeue=False)
    assert await receive_nothing(queue, name) is None
    [dead] = await receive(queue, name + ".dlq", 1)
    assert dead.decode() == {"id": 7}
    assert dead.headers["tenant"] == "acme"
    assert dead.headers["n"] == 1
    assert "rejected" in str(dead.headers["x-dead-letter-reason"])
    assert dead.headers["x-original-queue"] == name
    assert dead.headers["x-original-message-id"] == message.message_id


async def test_max_retries_then_dead_letter(backend: Backend) -> None:
    queue, name = await _queue(backend)
    await queue.publish(name, "poison", headers={"trace": "t-1"})
    counts: list[int] = []

    async def handler(message: datafx.Message) -> bool:
        counts.append(message.delivery_count)
        return False

    config = fast_config(max_retries=2)
    dlq = name + ".dlq"
    loop = queue.process_messages(name, handler, datafx.Message, config)
    await run_until(loop, lambda: len(counts) >= 3)
    [dead] = await receive(queue, dlq, 1)
    assert counts == [1, 2, 3]
    assert dead.decode() == "poison"
    assert dead.headers["trace"] == "t-1"
    assert dead.headers["x-delivery-count"] == 3
    assert "max_retries=2" in str(dead.headers["x-dead-letter-reason"])
    assert await receive_nothing(queue, name) is None


async def test_max_retries_hold_across_consumers(backend: Backend) -> None:
    queue, name = await _queue(backend)
    await queue.publish(name, "poison")
    calls: list[int] = []

    async def handler(message: datafx.Message) -> bool:
        calls.append(message.delivery_count)
        return False

    config = fast_config(max_retries=2)
    # Three consumers in turn, as if the process restarted between failures.
    for attempt in range(1, 4):
        loop = queue.process_messages(name, handler, datafx.Message, config)
        await run_until(loop, lambda attempt=attempt: len(calls) >= attempt)  # type: ignore[misc]
    [dead] = await receive(queue, name + ".dlq", 1)
    assert calls == [1, 2, 3]
    assert dead.headers["x-delivery-count"] == 3


async def test_handler_exception_counts_as_failure(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    queue, name = await _queue(backend)
    await queue.publish(name, 1)
    calls: list[int] = []

    def handler(value: int) -> bool:
        calls.append(value)
        if len(calls) == 1:
            raise RuntimeError("handler broke")
        return True

    caplog.set_level(logging.WARNING, logger="datafx.queue")
    await run_until(
        queue.process_messages(name, handler, int, fast_config()),
        lambda: len(calls) >= 2,
    )
    assert calls == [1, 1]
    assert any("RuntimeError" in r.getMessage() for r in caplog.records)
    assert await receive_nothing(queue, name) is None


async def test_sync_and_async_handlers(backend: Backend) -> None:
    queue, name = await _queue(backend)
    for i in range(3):
        await queue.publish(name, {"id": i, "item": f"item-{i}"})
    seen: list[Order] = []

    def sync_handler(order: Order) -> bool:
        seen.append(order)
        return True

    await run_until(
        queue.process_messages(name, sync_handler, Order, fast_config()),
        lambda: len(seen) >= 3,
    )
    assert [o.id for o in seen] == [0, 1, 2]

    await queue.publish(name, {"id": 9, "item": "async"})
    async_seen: list[Order] = []

    async def async_handler(order: Order) -> bool:
        await asyncio.sleep(0)
        async_seen.append(order)
        return True

    await run_until(
        queue.process_messages(name, async_handler, Order, fast_config()),
        lambda: len(async_seen) >= 1,
    )
    assert async_seen == [Order(9, "async")]
    assert await receive_nothing(queue, name) is None


async def test_undecodable_body_is_dead_lettered(backend: Backend) -> None:
    queue, name = await _queue(backend)
    await queue.publish_raw(name, b"not json", headers={"source": "legacy"})
    await queue.publish(name, {"id": 2, "item": "fine"})
    seen: list[Order] = []

    def handler(order: Order) -> bool:
        seen.append(order)
        return True

    await run_until(
        queue.process_messages(name, handler, Order, fast_config()),
        lambda: len(seen) >= 1,
    )
    [dead] = await receive(queue, name + ".dlq", 1)
    assert seen == [Order(2, "fine")]
    assert dead.body == b"not json"
    assert dead.headers["source"] == "legacy"
    assert "decode" in str(dead.headers["x-dead-letter-reason"])
    assert await receive_nothing(queue, name) is None


async def test_wrong_shape_is_dead_lettered(backend: Backend) -> None:
    queue, name = await _queue(backend)
    await queue.publish(name, {"id": "not a number"})
    calls: list[Any] = []
    loop = queue.process_messages(name, _recorder(calls), Order, fast_config())
    dlq = await queue.declare_queue(name + ".dlq")

    async def dead_lettered() -> list[datafx.Message]:
        return await receive(queue, dlq, 1)

    task = asyncio.create_task(loop)
    try:
        [dead] = await dead_lettered()
    finally:
        await stop(task)
    assert calls == []
    assert dead.decode() == {"id": "not a number"}


async def test_handler_receives_message_when_asked(backend: Backend) -> None:
    queue, name = await _queue(backend)
    await queue.publish(name, "x", headers={"h": "v"})
    seen: list[datafx.Message] = []

    def handler(message: datafx.Message) -> bool:
        seen.append(message)
        return True

    await run_until(
        queue.process_messages(name, handler, datafx.Message, fast_config()),
        lambda: bool(seen),
    )
    assert seen[0].headers == {"h": "v"}
    assert seen[0].decode() == "x"


# -- leases, cancellation and redelivery --------------------------------------


async def test_dead_consumer_message_returns_after_visibility(backend: Backend) -> None:
    queue, name = await _queue(backend)
    await queue.publish(name, "lost")
    port = backend.conn.queue
    taken = await bounded(
        port.fetch(name, DEFAULT_GROUP, "dead", 1, visibility_timeout=0.3, block=1.0)
    )
    assert len(taken) == 1
    started = time.monotonic()
    [message] = await receive(queue, name, 1)
    assert time.monotonic() - started >= 0.2
    assert message.decode() == "lost"
    assert message.delivery_count == 2


async def test_crash_loop_message_is_dead_lettered(backend: Backend) -> None:
    queue, name = await _queue(backend)
    await queue.publish(name, "kills consumers")
    port = backend.conn.queue
    for _ in range(3):  # three consumers die while handling it
        taken = await bounded(
            port.fetch(
                name, DEFAULT_GROUP, "dead", 1, visibility_timeout=0.05, block=1.0
            )
        )
        assert len(taken) == 1
        await asyncio.sleep(0.08)
    calls: list[Any] = []
    await queue.declare_queue(name + ".dlq")
    loop = queue.process_messages(
        name, _recorder(calls), config=fast_config(max_retries=1)
    )
    task = asyncio.create_task(loop)
    try:
        [dead] = await receive(queue, name + ".dlq", 1)
    finally:
        await stop(task)
    assert calls == []
    assert "without being acknowledged" in str(dead.headers["x-dead-letter-reason"])


async def test_cancelled_consumer_releases_at_once(backend: Backend) -> None:
    queue, name = await _queue(backend)
    await queue.publish(name, "held")
    started = asyncio.Event()

    async def stuck(value: Any) -> bool:
        started.set()
        await asyncio.Event().wait()
        return True

    config = fast_config(visibility=30.0)
    task = asyncio.create_task(queue.process_messages(name, stuck, config=config))
    async with asyncio.timeout(WAIT):
        await started.wait()
    await stop(task)
    async with asyncio.timeout(2.0):
        [message] = await receive(queue, name, 1, config=config)
    assert message.decode() == "held"
    assert message.delivery_count == 2


async def test_closed_subscription_releases_unacked(backend: Backend) -> None:
    queue, name = await _queue(backend)
    for i in range(3):
        await queue.publish(name, i)
    config = fast_config(visibility=30.0)
    first = await receive(queue, name, 1, config=config, ack=False)
    assert first[0].decode() == 0
    again = await receive(queue, name, 3, config=config)
    assert [m.decode() for m in again] == [0, 1, 2]
    assert again[0].delivery_count == 2


async def test_lease_extended_while_handler_runs(backend: Backend) -> None:
    queue, name = await _queue(backend)
    await queue.publish(name, "slow")
    config = fast_config(visibility=0.3)
    finished: list[int] = []

    async def slow(message: datafx.Message) -> bool:
        await asyncio.sleep(1.0)
        finished.append(message.delivery_count)
        return True

    task = asyncio.create_task(
        queue.process_messages(name, slow, datafx.Message, config)
    )
    try:
        await asyncio.sleep(0.05)
        assert await receive_nothing(queue, name, wait=0.8, config=config) is None
        await poll(lambda: bool(finished))
    finally:
        await stop(task)
    assert finished == [1]
    assert await receive_nothing(queue, name, config=config) is None


async def test_prefetch_bounds_unacked_messages(backend: Backend) -> None:
    queue, name = await _queue(backend)
    for i in range(6):
        await queue.publish(name, i)
    config = fast_config(prefetch_count=3)
    async with asyncio.timeout(WAIT), queue.consume(name, config) as messages:
        held = []
        async with asyncio.timeout(WAIT):
            for _ in range(3):
                held.append(await anext(messages))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await anext(messages)
        await held[0].ack()
        async with asyncio.timeout(WAIT):
            fourth = await anext(messages)
        assert fourth.decode() == 3
        for message in [*held[1:], fourth]:
            await message.ack()


async def test_auto_ack_settles_on_delivery(backend: Backend) -> None:
    queue, name = await _queue(backend)
    await queue.publish(name, "auto")
    [message] = await receive(
        queue, name, 1, config=fast_config(auto_ack=True), ack=False
    )
    assert message.decode() == "auto"
    assert await receive_nothing(queue, name) is None


# -- length and expiry --------------------------------------------------------


async def test_max_length_drops_oldest(backend: Backend) -> None:
    queue, name = await _queue(backend, max_length=3)
    for i in range(5):
        await queue.publish(name, i)
    messages = await receive(queue, name, 3)
    assert [m.decode() for m in messages] == [2, 3, 4]
    assert await receive_nothing(queue, name) is None


async def test_max_length_reject_publish(backend: Backend) -> None:
    queue, name = await _queue(
        backend, max_length=2, args={"overflow": "reject-publish"}
    )
    await queue.publish(name, 0)
    await queue.publish(name, 1)
    with pytest.raises(datafx.QueueFullError, match="reject"):
        await queue.publish(name, 2)
    messages = await receive(queue, name, 2)
    assert [m.decode() for m in messages] == [0, 1]
    await queue.publish(name, 3)
    [last] = await receive(queue, name, 1)
    assert last.decode() == 3


async def test_message_ttl_drops_stale_messages(backend: Backend) -> None:
    queue, name = await _queue(backend, message_ttl=timedelta(milliseconds=200))
    await queue.publish(name, "stale")
    await asyncio.sleep(0.4)
    await queue.publish(name, "fresh")
    [message] = await receive(queue, name, 1)
    assert message.decode() == "fresh"
    assert await receive_nothing(queue, name) is None


# -- consumer groups ----------------------------------------------------------


async def test_each_group_receives_every_message(backend: Backend) -> None:
    if not backend.capabilities.consumer_groups:
        pytest.skip(f"{backend.spec.id} has no consumer groups")
    queue, name = await _queue(backend)
    await queue.publish(name, "before any group")
    # The first consumer of a group creates it, and the group receives only
    # messages published after that.
    assert await receive_nothing(queue, name, group="billing", wait=0.1) is None
    assert await receive_nothing(queue, name, group="shipping", wait=0.1) is None
    for i in range(4):
        await queue.publish(name, i)
    billing = await receive(queue, name, 4, group="billing")
    shipping = await receive(queue, name, 4, group="shipping")
    assert [m.decode() for m in billing] == [0, 1, 2, 3]
    assert [m.decode() for m in shipping] == [0, 1, 2, 3]
    assert {m.consumer_group for m in billing} == {"billing"}


async def test_consumers_in_group_share(backend: Backend) -> None:
    if not backend.capabilities.consumer_groups:
        pytest.skip(f"{backend.spec.id} has no consumer groups")
    queue, name = await _queue(backend)
    assert await receive_nothing(queue, name, group="workers", wait=0.1) is None
    for i in range(20):
        await queue.publish(name, i)
    seen: dict[str, list[int]] = {"a": [], "b": []}

    def worker(label: str) -> Callable[[int], Awaitable[bool]]:
        async def handle(value: int) -> bool:
            await asyncio.sleep(0.005)
            # Recorded after the await: a handler cancelled by the test's
            # stop() was never done, and its message is redelivered.
            seen[label].append(value)
            return True

        return handle

    config = fast_config(prefetch_count=2)
    loops = [
        asyncio.create_task(
            queue.process_messages(name, worker(label), int, config, "workers", label)
        )
        for label in seen
    ]
    try:
        await poll(lambda: len(seen["a"]) + len(seen["b"]) >= 20)
    finally:
        for task in loops:
            await stop(task)
    assert sorted(seen["a"] + seen["b"]) == list(range(20))
    assert seen["a"]
    assert seen["b"]


async def test_claim_idle_pending_messages(backend: Backend) -> None:
    if not backend.capabilities.consumer_groups:
        pytest.skip(f"{backend.spec.id} has no consumer groups")
    queue, name = await _queue(backend)
    assert await receive_nothing(queue, name, group="g", wait=0.1) is None
    for i in range(3):
        await queue.publish(name, i)
    port = backend.conn.queue
    taken = await bounded(
        port.fetch(name, "g", "dead", 3, visibility_timeout=30.0, block=1.0)
    )
    assert len(taken) == 3
    assert (
        await bounded(queue.claim_pending_messages(name, "g", "rescuer", 10.0, 10))
        == []
    )
    await asyncio.sleep(0.2)
    first = await bounded(queue.claim_pending_messages(name, "g", "rescuer", 0.1, 2))
    second = await bounded(queue.claim_pending_messages(name, "g", "rescuer", 0.1, 2))
    assert [m.decode() for m in first] == [0, 1]
    assert [m.decode() for m in second] == [2]
    assert all(m.delivery_count == 2 for m in first + second)
    for message in first + second:
        await message.ack()
    assert (
        await bounded(queue.claim_pending_messages(name, "g", "rescuer", 0.0, 10)) == []
    )


async def test_stats_report_length_and_groups(backend: Backend) -> None:
    queue, name = await _queue(backend)
    for i in range(3):
        await queue.publish(name, i)
    info = await queue.stats(name)
    assert info.length == 3
    assert info.stream is False
    assert DEFAULT_GROUP in [g.name for g in info.groups]
    await receive(queue, name, 3)
    info = await queue.stats(name)
    assert info.length == 0


async def test_non_blocking_consumer_yields(backend: Backend) -> None:
    queue, name = await _queue(backend)
    config = ConsumerConfig(block_timeout=0)
    async with asyncio.timeout(WAIT), queue.consume(name, config) as messages:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await anext(messages)
