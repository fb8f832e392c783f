"""Benchmark of the Redis adapter beside raw redis.asyncio, same run, same server.

Each case runs datafx and then raw redis.asyncio doing the same work: both
encode and decode the same ~200-byte record with msgspec JSON (the datafx
default codec), so the ratio shows what the datafx layers cost. Keys use a
random prefix in database 0 and are deleted at the end; nothing is flushed.

    .venv/bin/python benchmarks/redis_bench.py
    .venv/bin/python benchmarks/redis_bench.py --seconds 2 --messages 10000

Cases:

- ``set`` and ``get``, one awaited call at a time;
- the same with 64 tasks on a 64-connection pool;
- ``get_many`` of 100 keys (one MGET);
- queue publish of ``--messages`` messages one at a time, then consume and
  ack all of them. datafx runs ``Queue.process_messages`` with prefetch 100,
  which acks once per fetched batch. Raw redis.asyncio runs XREADGROUP
  COUNT 100, then one XACK and one XDEL per batch (the datafx queue also
  deletes acknowledged messages).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from statistics import median
from typing import Any

import msgspec
from redis.asyncio import Redis

import datafx
from datafx.connfx import ConfigTarget, ConsumerConfig, QueueConfig, Registry

HOST, PORT = "127.0.0.1", 6379
CONCURRENCY = 64
BATCH = 100


def make_record(i: int) -> dict[str, Any]:
    """Build the stored record, about 200 bytes once encoded as JSON."""
    return {
        "id": 1_000_000 + i,
        "name": f"Ergonomic brushed stainless steel widget, model X-{i:06d}, (EU)",
        "email": f"customer.account.{i:06d}@widgets-and-gadgets-shop.example.org",
        "price": 1234.56 + (i % 100) / 100,
    }


async def timed(
    operation: Callable[[int], Awaitable[object]], limit: int, seconds: float
) -> float:
    """Run ``operation(i)`` one call at a time, up to ``limit`` calls or ``seconds``.

    Returns calls per second.
    """
    started = time.perf_counter()
    deadline = started + seconds
    done = 0
    while done < limit and time.perf_counter() < deadline:
        await operation(done)
        done += 1
    return done / (time.perf_counter() - started)


async def timed_concurrent(
    operation: Callable[[int], Awaitable[object]], limit: int, seconds: float
) -> float:
    """Run ``operation`` from ``CONCURRENCY`` tasks until ``limit`` or ``seconds``."""
    started = time.perf_counter()
    deadline = started + seconds
    counter = 0

    async def worker() -> None:
        nonlocal counter
        while counter < limit and time.perf_counter() < deadline:
            counter += 1
            await operation(counter)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return counter / (time.perf_counter() - started)


def report(
    case: str,
    ours: float,
    raw: float,
    ratio: float,
    unit: str = "ops/s",
    cpu: tuple[float, float] | None = None,
) -> None:
    line = (
        f"{case:<24} datafx {ours:>10,.0f} {unit:<6} raw {raw:>10,.0f} {unit:<6} "
        f"ratio {ratio:5.2f}"
    )
    if cpu is not None:
        line += f"   client CPU/call datafx {cpu[0]:6.1f} us  raw {cpu[1]:6.1f} us"
    print(line)


Runner = Callable[[Callable[[int], Awaitable[object]], int, float], Awaitable[float]]


async def measure(
    runner: Runner, operation: Callable[[int], Awaitable[object]], seconds: float
) -> tuple[float, float]:
    """Return (calls per second, client CPU seconds per call) of one run."""
    wall, cpu = time.perf_counter(), time.process_time()
    rate = await runner(operation, 10**9, seconds)
    calls = rate * (time.perf_counter() - wall)
    return rate, (time.process_time() - cpu) / max(calls, 1)


async def compare(
    case: str,
    runner: Runner,
    ours: Callable[[int], Awaitable[object]],
    theirs: Callable[[int], Awaitable[object]],
    seconds: float,
    rounds: int,
    scale: int = 1,
    unit: str = "ops/s",
) -> None:
    """Alternate datafx and raw for ``rounds`` rounds; print medians.

    The ratio is the median of the per-round ratios, so a burst of load from
    other processes during one round moves it less than a ratio of totals.
    Client CPU time per call is printed too: on a shared machine it varies
    less than throughput, and it is what the datafx layers add.
    """
    await runner(ours, 200, seconds)
    await runner(theirs, 200, seconds)
    ours_rates, raw_rates, ratios, ours_cpu, raw_cpu = [], [], [], [], []
    for _ in range(rounds):
        ours_rate, ours_cost = await measure(runner, ours, seconds)
        raw_rate, raw_cost = await measure(runner, theirs, seconds)
        ours_rates.append(ours_rate * scale)
        raw_rates.append(raw_rate * scale)
        ratios.append(ours_rate / raw_rate)
        ours_cpu.append(ours_cost * 1e6)
        raw_cpu.append(raw_cost * 1e6)
    report(
        case,
        median(ours_rates),
        median(raw_rates),
        median(ratios),
        unit,
        (median(ours_cpu), median(raw_cpu)),
    )


async def bench_kv(
    store: datafx.Store, raw: Redis, prefix: str, seconds: float, rounds: int
) -> None:
    record = make_record(1)
    keys = [f"{prefix}k{i}" for i in range(1000)]
    encode, decode = msgspec.json.encode, msgspec.json.decode

    async def ours_set(i: int) -> None:
        await store.set(keys[i % 1000], record)

    async def raw_set(i: int) -> None:
        await raw.set(keys[i % 1000], encode(record))

    async def ours_get(i: int) -> None:
        await store.get(keys[i % 1000])

    async def raw_get(i: int) -> None:
        decode(await raw.get(keys[i % 1000]))

    batch = keys[:BATCH]

    async def ours_many(i: int) -> None:
        found = await store.get_many(batch)
        assert len(found) == BATCH

    async def raw_many(i: int) -> None:
        values = await raw.mget(batch)
        [decode(v) for v in values]

    await compare("set sequential", timed, ours_set, raw_set, seconds, rounds)
    await compare("get sequential", timed, ours_get, raw_get, seconds, rounds)
    tasks = f"{CONCURRENCY} tasks"
    await compare(f"set {tasks}", timed_concurrent, ours_set, raw_set, seconds, rounds)
    await compare(f"get {tasks}", timed_concurrent, ours_get, raw_get, seconds, rounds)
    await compare(
        f"get_many {BATCH} keys", timed, ours_many, raw_many, seconds, rounds,
        scale=BATCH, unit="keys/s",
    )  # fmt: skip
    await raw.delete(*keys)


class Clock:
    """Wall and client CPU time since ``start()``."""

    def start(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def rates(self, count: int) -> tuple[float, float]:
        """Return (items per second, client CPU microseconds per item)."""
        wall = time.perf_counter() - self.wall
        cpu = time.process_time() - self.cpu
        return count / wall, cpu / count * 1e6


# (publish msg/s, publish CPU us/msg, consume msg/s, consume CPU us/msg)
QueueFigures = tuple[float, float, float, float]


async def bench_queue_ours(queue: datafx.Queue, name: str, count: int) -> QueueFigures:
    record = make_record(1)
    clock = Clock()
    clock.start()
    for _ in range(count):
        await queue.publish(name, record)
    publish = clock.rates(count)
    received = 0
    finished = asyncio.Event()

    def handler(value: Any) -> bool:
        nonlocal received
        received += 1
        if received >= count:
            finished.set()
        return True

    config = ConsumerConfig(prefetch_count=BATCH, block_timeout=0.5)
    clock.start()
    consumer = asyncio.create_task(queue.process_messages(name, handler, None, config))
    await finished.wait()
    consume = clock.rates(count)
    consumer.cancel()
    await asyncio.gather(consumer, return_exceptions=True)
    info = await queue.stats(name)
    assert info.length == 0, f"{info.length} messages left in {name}"
    return (*publish, *consume)


async def bench_queue_raw(raw: Redis, stream: str, count: int) -> QueueFigures:
    record = make_record(1)
    encode, decode = msgspec.json.encode, msgspec.json.decode
    await raw.xgroup_create(stream, "g", "0", mkstream=True)
    clock = Clock()
    clock.start()
    for _ in range(count):
        await raw.xadd(stream, {"b": encode(record), "h": b""})
    publish = clock.rates(count)
    received = 0
    clock.start()
    while received < count:
        reply = await raw.xreadgroup("g", "c", {stream: ">"}, count=BATCH, block=500)
        entries = reply[0][1] if reply else []
        for _, fields in entries:
            decode(fields[b"b"])
        if entries:
            await raw.xack(stream, "g", *[entry_id for entry_id, _ in entries])
            await raw.xdel(stream, *[entry_id for entry_id, _ in entries])
        received += len(entries)
    consume = clock.rates(count)
    await raw.delete(stream)
    return (*publish, *consume)


async def bench_queue(
    queue: datafx.Queue, raw: Redis, prefix: str, count: int, rounds: int
) -> None:
    """Run the queue case ``rounds`` times, alternating which side goes first."""
    ours: list[QueueFigures] = []
    theirs: list[QueueFigures] = []
    for round_number in range(rounds):
        name = await queue.declare_queue(f"{prefix}queue{round_number}", QueueConfig())
        stream = f"{prefix}raw-stream{round_number}"
        if round_number % 2 == 0:
            ours.append(await bench_queue_ours(queue, name, count))
            theirs.append(await bench_queue_raw(raw, stream, count))
        else:
            theirs.append(await bench_queue_raw(raw, stream, count))
            ours.append(await bench_queue_ours(queue, name, count))
    for case, rate, cost in (
        (f"publish {count}", 0, 1),
        (f"consume+ack {count}", 2, 3),
    ):
        ratios = [o[rate] / t[rate] for o, t in zip(ours, theirs, strict=True)]
        report(
            case,
            median(o[rate] for o in ours),
            median(t[rate] for t in theirs),
            median(ratios),
            "msg/s",
            (median(o[cost] for o in ours), median(t[cost] for t in theirs)),
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per phase")
    parser.add_argument("--messages", type=int, default=50_000, help="queue messages")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per key case")
    parser.add_argument(
        "--queue-rounds", type=int, default=2, help="rounds of the queue case"
    )
    args = parser.parse_args()
    prefix = f"bench{uuid.uuid4().hex[:8]}:"
    async with Registry.with_defaults() as registry:
        target = ConfigTarget(
            dsn=f"redis://{HOST}:{PORT}/0", properties={"max_connections": CONCURRENCY}
        )
        conn = await registry.add_connection("bench", target)
        raw = Redis(host=HOST, port=PORT, db=0, max_connections=CONCURRENCY)
        try:
            await bench_kv(datafx.Store(conn), raw, prefix, args.seconds, args.rounds)
            queue = datafx.Queue(conn)
            await bench_queue(queue, raw, prefix, args.messages, args.queue_rounds)
            leftovers = [key async for key in raw.scan_iter(match=f"*{prefix}*")]
            if leftovers:
                await raw.delete(*leftovers)
        finally:
            await raw.aclose()


if __name__ == "__main__":
    asyncio.run(main())
