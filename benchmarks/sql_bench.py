"""Time datafx on PostgreSQL and MySQL beside the raw driver running the same SQL.

Each key-value phase runs the same work through datafx (``Store``) and through
the raw driver (asyncpg or asyncmy), in the same process and against the same
server. The two sides alternate for ``--rounds`` rounds, and the report gives
the median ops/s of each side and their ratio. The raw side executes the very statements
the adapter sends (built by the adapter's own statement classes), encodes and
decodes values with msgspec JSON as datafx's default codec does, and has the
same pool size, so the ratio is the cost of the datafx layers.

- ``set``, ``get``: one awaited call at a time; the raw side uses one
  connection, the fastest way the driver offers.
- ``set_conc``, ``get_conc``: 64 tasks sharing a pool of 32 connections.
- ``get_many``: 100 keys per call; the rate counts keys.
- ``queue_publish``, ``queue_consume``: ``--messages`` messages published one
  at a time, then consumed with a prefetch of 100 and acknowledged. datafx
  goes through ``Queue.publish`` and ``Queue.consume`` (one ``ack`` per
  message); the raw side runs the adapter's fetch statements in one
  transaction per 100 messages and one ack statement per batch.

Usage::

    python benchmarks/sql_bench.py [--backend postgres|mysql|all] [--seconds 2]
        [--rounds 3] [--messages 50000] [--json-out FILE]

Tables get a fresh prefix per run and are dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncmy
import asyncpg
import msgspec

import datafx
from datafx.connfx import ConfigTarget, ConsumerConfig, Registry
from datafx.connfx.adapters.mysql import kv as mysql_kv
from datafx.connfx.adapters.mysql import queue as mysql_queue
from datafx.connfx.adapters.postgres import kv as pg_kv
from datafx.connfx.adapters.postgres import queue as pg_queue
from datafx.connfx.adapters.postgres.listener import channel_name

POSTGRES_DSN = "postgres://postgres@127.0.0.1:5432/test"
MYSQL_DSN = "mysql://root@127.0.0.1:3306/test"
BATCH = 100
CONCURRENCY = 64
# Both sides get pools of this size; two pools of 64 would pass PostgreSQL's
# default max_connections of 100.
POOL_SIZE = 32
PREFETCH = 100
# datafx may cost at most 15% more time per operation than the raw driver.
TARGET_RATIO = 1 / 1.15

Op = Callable[[int], Awaitable[Any]]
encode = msgspec.json.encode
decode = msgspec.json.decode


def make_value(i: int) -> dict[str, Any]:
    """Return a record of about 200 bytes once JSON-encoded."""
    return {
        "id": 1_000_000 + i,
        "name": f"Ergonomic brushed stainless steel widget, model X-{i:06d}, "
        "long-life edition (EU)",
        "email": f"customer.account.{i:06d}@widgets-and-gadgets-shop.example.org",
        "price": 1234.56 + (i % 100) / 100,
    }


@dataclass(slots=True)
class Row:
    """The measured rates of one phase on one backend."""

    backend: str
    phase: str
    unit: str
    datafx: list[float] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return statistics.median(self.datafx) / statistics.median(self.raw)

    def line(self) -> str:
        verdict = "" if self.ratio >= TARGET_RATIO or self.unit == "msg/s" else "  <-"
        return (
            f"{self.backend:9} {self.phase:14} "
            f"datafx {statistics.median(self.datafx):>10,.0f}  "
            f"raw {statistics.median(self.raw):>10,.0f} {self.unit:6}"
            f"  x{self.ratio:.2f}{verdict}"
        )


async def rate(op: Op, seconds: float, per_call: int = 1) -> float:
    """Call ``op(i)`` one at a time for ``seconds``; return units per second."""
    gc.collect()
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for _ in range(50):
            await op(count)
            count += 1
    return count * per_call / (time.perf_counter() - started)


async def rate_concurrent(op: Op, seconds: float) -> float:
    """Run ``op`` from CONCURRENCY tasks for ``seconds``; return calls per second."""
    gc.collect()
    deadline = time.perf_counter() + seconds
    counts = [0] * CONCURRENCY

    async def worker(index: int) -> None:
        while time.perf_counter() < deadline:
            await op(index * 1_000_000 + counts[index])
            counts[index] += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(CONCURRENCY)))
    return sum(counts) / (time.perf_counter() - started)


# -- raw drivers --------------------------------------------------------------


class RawPostgres:
    """asyncpg running the statements of the datafx PostgreSQL adapter."""

    def __init__(self, names: Any) -> None:
        self.sql = pg_kv.KvStatements.build(names)
        self.queue_sql = pg_queue._Sql(names, channel_name(names))

    async def open(self) -> None:
        self.one = await asyncpg.connect(POSTGRES_DSN)
        self.pool = await asyncpg.create_pool(
            POSTGRES_DSN, min_size=POOL_SIZE, max_size=POOL_SIZE
        )

    async def close(self) -> None:
        await self.one.close()
        await self.pool.close()

    async def set(self, key: str, value: Any) -> None:
        await self.one.execute(self.sql.set, key, encode(value), None)

    async def get(self, key: str) -> Any:
        return decode(await self.one.fetchval(self.sql.get, key))

    async def set_pooled(self, key: str, value: Any) -> None:
        await self.pool.execute(self.sql.set, key, encode(value), None)

    async def get_pooled(self, key: str) -> Any:
        return decode(await self.pool.fetchval(self.sql.get, key))

    async def get_many(self, keys: list[str]) -> dict[str, Any]:
        rows = await self.one.fetch(self.sql.get_many, keys)
        return {row[0]: decode(row[1]) for row in rows}

    async def publish(self, name: str, value: Any) -> None:
        now = time.time()
        args = (name, encode(value), b"", now, None, name)
        await self.one.fetchrow(self.queue_sql.publish, *args)

    async def consume_batch(self, name: str) -> int:
        """Lease up to PREFETCH messages as the adapter does, decode and ack them."""
        sql = self.queue_sql
        now = time.time()
        lease = now + 30.0
        connection = self.one
        async with connection.transaction():
            cursor = await connection.fetchval(sql.lock_group, name, "default")
            await connection.fetch(
                sql.redeliver_queue, name, "default", "raw", now, PREFETCH, lease
            )
            rows = await connection.fetch(sql.new, name, cursor, now, PREFETCH)
            ids = [row[0] for row in rows]
            if ids:
                await connection.execute(
                    sql.lease_new, name, "default", "raw", now, lease, ids
                )
                await connection.execute(
                    sql.advance, name, "default", ids[-1], len(ids)
                )
        for row in rows:
            decode(row[1])
        if ids:
            await connection.fetchval(sql.ack, name, "default", ids, True)
        return len(ids)


async def _my_fetch(connection: Any, sql: str, args: Any = None) -> Any:
    async with connection.cursor() as cursor:
        await cursor.execute(sql, args)
        return await cursor.fetchall()


async def _my_execute(connection: Any, sql: str, args: Any = None) -> Any:
    async with connection.cursor() as cursor:
        await cursor.execute(sql, args)
        return cursor


class RawMySql:
    """asyncmy running the statements of the datafx MySQL adapter."""

    def __init__(self, names: Any) -> None:
        self.sql = mysql_kv.KvStatements.build(names)
        self.queue_sql = mysql_queue._Sql(names)

    async def open(self) -> None:
        arguments: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": 3306,
            "user": "root",
            "db": "test",
            "autocommit": True,
        }
        self.one = await asyncmy.connect(**arguments)
        self.pool = await asyncmy.create_pool(
            minsize=POOL_SIZE, maxsize=POOL_SIZE, **arguments
        )

    async def close(self) -> None:
        self.one.close()
        self.pool.close()
        await self.pool.wait_closed()

    async def set(self, key: str, value: Any) -> None:
        await _my_execute(self.one, self.sql.set, (key, encode(value), None))

    async def get(self, key: str) -> Any:
        rows = await _my_fetch(self.one, self.sql.get, (key,))
        return decode(rows[0][0])

    async def set_pooled(self, key: str, value: Any) -> None:
        async with self.pool.acquire() as connection:
            await _my_execute(connection, self.sql.set, (key, encode(value), None))

    async def get_pooled(self, key: str) -> Any:
        async with self.pool.acquire() as connection:
            rows = await _my_fetch(connection, self.sql.get, (key,))
        return decode(rows[0][0])

    async def get_many(self, keys: list[str]) -> dict[str, Any]:
        statement = self.sql.get_many.format(keys=", ".join(["%s"] * len(keys)))
        rows = await _my_fetch(self.one, statement, keys)
        return {bytes(row[0]).decode(): decode(row[1]) for row in rows}

    async def publish(self, name: str, value: Any) -> None:
        sql = self.queue_sql
        connection = self.one
        await _my_execute(connection, "START TRANSACTION")
        cursor = await _my_execute(connection, sql.next_id, (name,))
        args = (name, cursor.lastrowid, encode(value), b"", time.time(), None)
        await _my_execute(connection, sql.insert, args)
        await _my_execute(connection, "COMMIT")

    async def consume_batch(self, name: str) -> int:
        """Lease up to PREFETCH messages as the adapter does, decode and ack them."""
        sql = self.queue_sql
        now = time.time()
        lease = now + 30.0
        connection = self.one
        await _my_execute(connection, "START TRANSACTION")
        rows = await _my_fetch(connection, sql.lock_group, (name, "default"))
        cursor_id = rows[0][0]
        await _my_fetch(
            connection,
            sql.ready.format(stream_filter=""),
            (name, "default", now, PREFETCH),
        )
        rows = await _my_fetch(connection, sql.new, (name, cursor_id, now, PREFETCH))
        ids = [row[0] for row in rows]
        if ids:
            values: list[Any] = []
            for message_id in ids:
                values += (name, "default", message_id, "raw", now, lease, 1)
            marks = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(ids))
            await _my_execute(connection, sql.lease_new.format(rows=marks), values)
            await _my_execute(
                connection, sql.advance, (ids[-1], len(ids), name, "default")
            )
        await _my_execute(connection, "COMMIT")
        for row in rows:
            decode(row[1])
        if ids:
            marks = ", ".join(["%s"] * len(ids))
            await _my_execute(
                connection, sql.ack.format(ids=marks), (name, "default", *ids)
            )
            statement = sql.done_messages.format(ids=marks)
            done = [
                row[0] for row in await _my_fetch(connection, statement, (name, *ids))
            ]
            if done:
                statement = sql.delete_messages.format(
                    ids=", ".join(["%s"] * len(done))
                )
                await _my_execute(connection, statement, (name, *done))
        return len(ids)


# -- phases ---------------------------------------------------------------------


async def kv_rows(
    backend: str, conn: Any, raw: Any, seconds: float, rounds: int
) -> list[Row]:
    store = datafx.Store(conn)
    value = make_value(1)
    keys = [f"bench:{i}" for i in range(1000)]
    await store.set_many({key: make_value(i) for i, key in enumerate(keys)})
    batches = [keys[i : i + BATCH] for i in range(0, len(keys), BATCH)]
    phases: list[tuple[str, str, Op, Op, int, bool]] = [
        (
            "set",
            "ops/s",
            lambda i: store.set(keys[i % 1000], value),
            lambda i: raw.set(keys[i % 1000], value),
            1,
            False,
        ),
        (
            "get",
            "ops/s",
            lambda i: store.get(keys[i % 1000]),
            lambda i: raw.get(keys[i % 1000]),
            1,
            False,
        ),
        (
            "set_conc",
            "ops/s",
            lambda i: store.set(keys[i % 1000], value),
            lambda i: raw.set_pooled(keys[i % 1000], value),
            1,
            True,
        ),
        (
            "get_conc",
            "ops/s",
            lambda i: store.get(keys[i % 1000]),
            lambda i: raw.get_pooled(keys[i % 1000]),
            1,
            True,
        ),
        (
            "get_many",
            "keys/s",
            lambda i: store.get_many(batches[i % 10]),
            lambda i: raw.get_many(batches[i % 10]),
            BATCH,
            False,
        ),
    ]
    rows = []
    for name, unit, datafx_op, raw_op, per_call, concurrent in phases:
        row = Row(backend, name, unit)
        for _ in range(rounds):
            for side, op in (("datafx", datafx_op), ("raw", raw_op)):
                if concurrent:
                    measured = await rate_concurrent(op, seconds)
                else:
                    measured = await rate(op, seconds, per_call)
                getattr(row, side).append(measured)
        print(row.line(), flush=True)
        rows.append(row)
    return rows


async def queue_rows(backend: str, conn: Any, raw: Any, messages: int) -> list[Row]:
    queue = datafx.Queue(conn)
    publish = Row(backend, "queue_publish", "msg/s")
    consume = Row(backend, "queue_consume", "msg/s")
    for side in ("datafx", "raw"):
        name = f"bench-{side}-{uuid.uuid4().hex[:6]}"
        await queue.declare_queue(name)
        gc.collect()
        started = time.perf_counter()
        for i in range(messages):
            if side == "datafx":
                await queue.publish(name, make_value(i))
            else:
                await raw.publish(name, make_value(i))
        getattr(publish, side).append(messages / (time.perf_counter() - started))
        gc.collect()
        started = time.perf_counter()
        received = 0
        if side == "datafx":
            # The consumer loop acknowledges each batch with one statement,
            # as the raw side does.
            config = ConsumerConfig(prefetch_count=PREFETCH, block_timeout=0.5)
            finished = asyncio.Event()

            def handle(value: Any, done: asyncio.Event = finished) -> bool:
                nonlocal received
                received += 1
                if received == messages:
                    done.set()
                return True

            consumer = asyncio.create_task(
                queue.process_messages(name, handle, None, config)
            )
            await finished.wait()
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
        else:
            while received < messages:
                received += await raw.consume_batch(name)
        getattr(consume, side).append(received / (time.perf_counter() - started))
        info = await conn.queue.info(name)
        assert info.length == 0, f"{side} left {info.length} messages in {name}"
    for row in (publish, consume):
        print(row.line(), flush=True)
    return [publish, consume]


async def run_backend(backend: str, args: argparse.Namespace) -> list[Row]:
    prefix = f"bench{uuid.uuid4().hex[:8]}_"
    dsn = POSTGRES_DSN if backend == "postgres" else MYSQL_DSN
    properties = {"table_prefix": prefix, "pool_size": POOL_SIZE}
    async with Registry.with_defaults() as registry:
        conn: Any = await registry.add_connection(
            backend, ConfigTarget(dsn=dsn, properties=properties)
        )
        await conn.ensure_tables()
        raw = RawPostgres(conn.names) if backend == "postgres" else RawMySql(conn.names)
        await raw.open()
        try:
            rows = await kv_rows(backend, conn, raw, args.seconds, args.rounds)
            if args.messages:
                rows += await queue_rows(backend, conn, raw, args.messages)
        finally:
            await raw.close()
            quote = '"' if backend == "postgres" else "`"
            for suffix in (
                "kv",
                "schema_version",
                "queues",
                "queue_messages",
                "queue_groups",
                "queue_pending",
                "queue_consumers",
            ):
                await conn.execute(
                    f"DROP TABLE IF EXISTS {quote}{prefix}{suffix}{quote}"
                )
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--backend", choices=("postgres", "mysql", "all"), default="all"
    )
    parser.add_argument(
        "--seconds", type=float, default=2.0, help="seconds per phase run"
    )
    parser.add_argument("--rounds", type=int, default=3, help="datafx/raw alternations")
    parser.add_argument(
        "--messages", type=int, default=50_000, help="queue messages (0 skips queues)"
    )
    parser.add_argument("--json-out", help="also write the figures to this JSON file")
    args = parser.parse_args()
    backends = ["postgres", "mysql"] if args.backend == "all" else [args.backend]
    print(f"python {platform.python_version()} on {platform.platform()}", flush=True)
    rows: list[Row] = []
    for backend in backends:
        rows += await run_backend(backend, args)
    if args.json_out:
        report = [
            {
                "backend": r.backend,
                "phase": r.phase,
                "unit": r.unit,
                "datafx": statistics.median(r.datafx),
                "raw": statistics.median(r.raw),
                "ratio": r.ratio,
                "datafx_runs": r.datafx,
                "raw_runs": r.raw,
            }
            for r in rows
        ]
        text = json.dumps({"argv": sys.argv[1:], "rows": report}, indent=2)
        Path(args.json_out).write_text(text)  # noqa: ASYNC240 - once, at the end


if __name__ == "__main__":
    asyncio.run(main())
