"""Queue throughput of datafx on memory and SQLite, beside a raw aiosqlite queue.

Each case publishes N messages one call at a time, then consumes them in
batches of ``prefetch_count`` (100), decoding each body and acknowledging each
batch. The datafx cases consume with ``Queue.process_messages``; the raw
baseline is a single aiosqlite table with a visibility column, fetched with
``UPDATE ... RETURNING`` and acknowledged with ``DELETE``. All cases run in the
same process, taking turns round by round, with the same ~200-byte JSON
records; each case reports its median round and its time relative to the
baseline (below 1 means datafx took less time).

Run: ``.venv/bin/python benchmarks/queue_bench.py [-n 50000]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiosqlite

import datafx
from datafx import connfx

PREFETCH = 100


def make_value(i: int) -> dict[str, Any]:
    """Return a record of about 200 bytes once JSON-encoded."""
    return {
        "id": 1_000_000 + i,
        "name": f"Ergonomic brushed stainless steel widget, model X-{i:06d}, long-life",
        "email": f"customer.account.{i:06d}@widgets-and-gadgets-shop.example.org",
        "price": 1234.56 + (i % 100) / 100,
    }


class RawSqliteQueue:
    """The baseline: one table, a visibility column, batch fetch and delete."""

    def __init__(self, path: str) -> None:
        self.path = path

    async def open(self) -> None:
        self.db = await aiosqlite.connect(self.path, isolation_level=None)
        await self.db.execute("PRAGMA journal_mode=WAL")
        await self.db.execute("PRAGMA synchronous=NORMAL")
        await self.db.execute(
            "CREATE TABLE queue_bench (id INTEGER PRIMARY KEY, queue TEXT NOT NULL, "
            "body BLOB NOT NULL, visible_at REAL NOT NULL, "
            "deliveries INTEGER NOT NULL DEFAULT 0)"
        )
        await self.db.execute(
            "CREATE INDEX queue_bench_ready ON queue_bench (queue, id)"
        )

    async def publish(self, body: bytes) -> None:
        await self.db.execute(
            "INSERT INTO queue_bench (queue, body, visible_at) VALUES (?, ?, ?)",
            ("bench", body, time.time()),
        )

    async def fetch(self, count: int) -> list[tuple[int, bytes]]:
        now = time.time()
        rows = await self.db.execute_fetchall(
            "UPDATE queue_bench SET visible_at = ?, deliveries = deliveries + 1 "
            "WHERE id IN (SELECT id FROM queue_bench WHERE queue = ? AND "
            "visible_at <= ? ORDER BY id LIMIT ?) RETURNING id, body",
            (now + 30, "bench", now, count),
        )
        return [(row[0], row[1]) for row in rows]

    async def ack(self, ids: list[int]) -> None:
        marks = ",".join("?" * len(ids))
        await self.db.execute(f"DELETE FROM queue_bench WHERE id IN ({marks})", ids)

    async def close(self) -> None:
        await self.db.close()


async def timed(fn: Callable[[], Awaitable[None]]) -> float:
    start = time.perf_counter()
    await fn()
    return time.perf_counter() - start


async def bench_raw(path: str, n: int) -> tuple[float, float]:
    queue = RawSqliteQueue(path)
    await queue.open()
    values = [make_value(i) for i in range(n)]

    async def publish() -> None:
        for value in values:
            await queue.publish(json.dumps(value).encode())

    async def consume() -> None:
        got = 0
        while got < n:
            batch = await queue.fetch(PREFETCH)
            for _, body in batch:
                json.loads(body)
            await queue.ack([message_id for message_id, _ in batch])
            got += len(batch)

    try:
        return await timed(publish), await timed(consume)
    finally:
        await queue.close()


async def bench_datafx(dsn: str, n: int) -> tuple[float, float]:
    async with connfx.Registry.with_defaults() as registry:
        conn = await registry.add_connection("bench", dsn)
        queue = datafx.Queue(conn)
        name = await queue.declare_queue("bench")
        values = [make_value(i) for i in range(n)]

        async def publish() -> None:
            for value in values:
                await queue.publish(name, value)

        async def consume() -> None:
            handled = 0
            done = asyncio.Event()

            def handler(value: dict[str, Any]) -> bool:
                nonlocal handled
                handled += 1
                if handled >= n:
                    done.set()
                return True

            config = connfx.ConsumerConfig(prefetch_count=PREFETCH, block_timeout=1.0)
            task = asyncio.create_task(
                queue.process_messages(name, handler, config=config)
            )
            await done.wait()
            # Cancelling flushes the acknowledgements of the last batch.
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            left = (await queue.stats(name)).length
            if left:
                raise RuntimeError(f"{left} messages left unacknowledged")

        return await timed(publish), await timed(consume)


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>10,.0f} msg/s"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50_000, help="messages per case")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds; each case reports its median"
    )
    args = parser.parse_args()
    n = args.n
    times: dict[str, tuple[list[float], list[float]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        # The cases take turns in every round, so a change in machine load
        # hits all of them; the median round of each case is reported.
        for round_number in range(args.rounds):
            runs = {
                "raw aiosqlite": bench_raw(
                    os.path.join(folder, f"raw{round_number}.db"), n
                ),
                "datafx sqlite": bench_datafx(
                    f"sqlite:///{os.path.join(folder, f'q{round_number}.db')}", n
                ),
                "datafx memory": bench_datafx("memory://", n),
            }
            for label, run in runs.items():
                publish, consume = await run
                publishes, consumes = times.setdefault(label, ([], []))
                publishes.append(publish)
                consumes.append(consume)
    medians = {
        label: (statistics.median(publishes), statistics.median(consumes))
        for label, (publishes, consumes) in times.items()
    }
    raw = medians["raw aiosqlite"]
    print(
        f"{n:,} messages of ~200 bytes; consume batches of {PREFETCH}; "
        f"median of {args.rounds} rounds"
    )
    print(f"{'case':<18}{'publish':>16}{'consume+ack':>18}{'time ratio to raw':>22}")
    for label, (publish, consume) in medians.items():
        ratio = f"{publish / raw[0]:.2f}x / {consume / raw[1]:.2f}x"
        print(f"{label:<18}{rate(n, publish):>16}{rate(n, consume):>18}{ratio:>22}")


if __name__ == "__main__":
    asyncio.run(main())
