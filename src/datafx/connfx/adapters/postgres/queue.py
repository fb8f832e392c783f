"""Queues and streams on PostgreSQL tables (the ``QueuePort`` and ``StreamPort``).

The tables follow the model of ``QueuePort``: ``<prefix>queue_messages`` is
the log, ``<prefix>queue_groups`` holds each group's cursor and
``<prefix>queue_pending`` each group's delivered, unacknowledged messages with
their lease (``visible_at``) and delivery count.

Ids increase per queue without gaps in commit order: a publish takes the next
id by updating the queue's row, which holds that row locked until it commits,
so a group cursor (``id > last_id``) never skips a message committed late.
Consumers lock the group row while they advance its cursor, and claim
redeliveries with ``FOR UPDATE SKIP LOCKED``, so two consumers never lease the
same message. Times are seconds since the Unix epoch from the client's clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from datafx.connfx.adapters.postgres.kv import row_count
from datafx.connfx.adapters.postgres.listener import Wakeups, payload_for
from datafx.connfx.adapters.postgres.pool import PostgresPool
from datafx.connfx.adapters.sqlbase.completion import Completion
from datafx.connfx.adapters.sqlbase.lazy import Once
from datafx.connfx.adapters.sqlbase.names import TableNames
from datafx.connfx.errors import QueueFullError, QueueNotFoundError
from datafx.connfx.queueing import (
    DEFAULT_GROUP,
    OVERFLOW_REJECT_PUBLISH,
    START_AT_BEGINNING,
    START_AT_NEW,
    GroupInfo,
    QueueConfig,
    QueueInfo,
    RawEntry,
    RawMessage,
)

__all__ = ["PostgresQueues"]

# Maximum wait between checks while a fetch blocks, in case a notification
# was lost with the LISTEN connection.
MAX_SLEEP = 1.0


@dataclass(frozen=True, slots=True)
class _Settings:
    stream: bool
    max_length: int
    reject_when_full: bool
    message_ttl: float | None


class _Sql:
    """Every statement of the queue port, with the table names filled in."""

    def __init__(self, names: TableNames, channel: str) -> None:
        q = names.table("queues")
        m = names.table("queue_messages")
        g = names.table("queue_groups")
        p = names.table("queue_pending")
        c = names.table("queue_consumers")
        self.declare = (
            f"INSERT INTO {q} (name, stream, max_length, reject_when_full, "
            "message_ttl, created_at) VALUES ($1, $2, $3, $4, $5, $6) "
            "ON CONFLICT (name) DO NOTHING"
        )
        self.create_default_group = (
            f"INSERT INTO {g} (queue, grp, last_id) VALUES ($1, $2, 0) "
            "ON CONFLICT DO NOTHING"
        )
        self.settings = (
            f"SELECT stream, max_length, reject_when_full, message_ttl FROM {q} "
            "WHERE name = $1"
        )
        self.last_id = f"SELECT last_id FROM {q} WHERE name = $1"
        self.create_group = (
            f"INSERT INTO {g} (queue, grp, last_id) VALUES ($1, $2, $3) "
            "ON CONFLICT DO NOTHING"
        )
        # One statement: take the next id (locking the queue row until commit),
        # store the message and notify waiting consumers at commit.
        self.publish = (
            f"WITH q AS (UPDATE {q} SET last_id = last_id + 1 WHERE name = $1 "
            "RETURNING last_id) "
            f"INSERT INTO {m} (queue, id, body, headers, published_at, expires_at) "
            "SELECT $1, q.last_id, $2, $3, $4, $5 FROM q "
            f"RETURNING id, pg_notify('{channel}', $6)"
        )
        self.lock_queue = f"SELECT last_id FROM {q} WHERE name = $1 FOR UPDATE"
        self.count = f"SELECT count(*) FROM {m} WHERE queue = $1"
        self.oldest_dropped = (
            f"SELECT max(id) FROM (SELECT id FROM {m} WHERE queue = $1 "
            "ORDER BY id LIMIT $2) AS t"
        )
        self.drop_expired = f"DELETE FROM {m} WHERE queue = $1 AND expires_at <= $2"
        self.drop_orphans = (
            f"DELETE FROM {p} WHERE queue = $1 AND NOT EXISTS "
            f"(SELECT 1 FROM {m} WHERE {m}.queue = $1 AND {m}.id = {p}.id)"
        )
        self.seen = (
            f"INSERT INTO {c} (queue, grp, consumer, seen_at) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (queue, grp, consumer) "
            "DO UPDATE SET seen_at = EXCLUDED.seen_at"
        )
        self.lock_group = (
            f"SELECT last_id FROM {g} WHERE queue = $1 AND grp = $2 FOR UPDATE"
        )
        ready = (
            f"SELECT id FROM {p} WHERE queue = $1 AND grp = $2 AND visible_at <= $4 "
            "{stream_filter} ORDER BY id LIMIT $5 FOR UPDATE SKIP LOCKED"
        )
        lease = (
            f"UPDATE {p} SET consumer = $3, delivered_at = $4, visible_at = $6, "
            "delivery_count = delivery_count + 1 FROM picked "
            f"WHERE {p}.queue = $1 AND {p}.grp = $2 AND {p}.id = picked.id "
            f"RETURNING {p}.id, {p}.delivery_count"
        )
        redeliver = (
            "WITH picked AS ({ready}), leased AS ({lease}) "
            "SELECT leased.id, leased.delivery_count, m.body, m.headers, "
            f"m.published_at FROM leased LEFT JOIN {m} m "
            "ON m.queue = $1 AND m.id = leased.id ORDER BY leased.id"
        )
        self.redeliver_queue = redeliver.format(
            ready=ready.format(stream_filter=""), lease=lease
        )
        self.redeliver_stream = redeliver.format(
            ready=ready.format(stream_filter="AND consumer IS NULL"), lease=lease
        )
        self.forget = f"DELETE FROM {p} WHERE queue = $1 AND grp = $2 AND id = ANY($3)"
        self.new = (
            "SELECT id, body, headers, published_at FROM "
            f"{m} WHERE queue = $1 AND id > $2 "
            "AND (expires_at IS NULL OR expires_at > $3) ORDER BY id LIMIT $4"
        )
        self.lease_new = (
            f"INSERT INTO {p} (queue, grp, id, consumer, delivered_at, visible_at, "
            "delivery_count) SELECT $1, $2, id, $3, $4, $5, 1 "
            "FROM unnest($6::bigint[]) AS t(id)"
        )
        self.advance = (
            f"UPDATE {g} SET last_id = $3, entries_read = entries_read + $4 "
            "WHERE queue = $1 AND grp = $2"
        )
        self.next_ready = (
            f"SELECT min(visible_at) FROM {p} WHERE queue = $1 AND grp = $2 "
            "{stream_filter}"
        )
        # Acknowledged queue messages go once no other group still needs them.
        # Both deletes see one snapshot, hence the explicit ``grp <> $2``.
        # The ack commits without waiting for the WAL flush: a server crash
        # may forget the last acks, and those messages are delivered again,
        # which at-least-once delivery allows. One fsync per ack would cap a
        # consumer at the disk's flush rate.
        self.ack = (
            f"WITH acked AS (DELETE FROM {p} WHERE queue = $1 AND grp = $2 "
            "AND id = ANY($3::bigint[]) RETURNING id), "
            f"gone AS (DELETE FROM {m} WHERE $4 AND queue = $1 "
            "AND id IN (SELECT id FROM acked) "
            f"AND NOT EXISTS (SELECT 1 FROM {p} o WHERE o.queue = $1 "
            f"AND o.id = {m}.id AND o.grp <> $2) "
            f"AND NOT EXISTS (SELECT 1 FROM {g} x WHERE x.queue = $1 "
            f"AND x.last_id < {m}.id) RETURNING 1) "
            "SELECT count(*), "
            "set_config('synchronous_commit', 'off', true) FROM acked"
        )
        self.release = (
            f"WITH r AS (UPDATE {p} SET consumer = NULL, visible_at = $4 "
            "WHERE queue = $1 AND grp = $2 AND id = ANY($3::bigint[]) RETURNING 1) "
            f"SELECT count(*), pg_notify('{channel}', $5) FROM r"
        )
        self.extend = (
            f"UPDATE {p} SET delivered_at = $5, visible_at = CASE WHEN visible_at "
            "IS NULL THEN NULL ELSE $6::float8 END WHERE queue = $1 AND grp = $2 "
            "AND consumer = $3 AND id = ANY($4::bigint[]) RETURNING id"
        )
        self.claim = (
            f"WITH picked AS (SELECT p.id FROM {p} p JOIN {m} m "
            "ON m.queue = p.queue AND m.id = p.id WHERE p.queue = $1 AND p.grp = $2 "
            "AND p.delivered_at <= $7 AND (p.consumer IS NOT NULL OR "
            "p.visible_at <= $4) ORDER BY p.id LIMIT $5 FOR UPDATE OF p SKIP LOCKED), "
            f"leased AS ({lease}) "
            "SELECT leased.id, leased.delivery_count, m.body, m.headers, "
            f"m.published_at FROM leased JOIN {m} m "
            "ON m.queue = $1 AND m.id = leased.id ORDER BY leased.id"
        )
        self.entry = (
            f"SELECT id, body, headers, published_at FROM {m} WHERE queue = $1 "
            "ORDER BY id {order} LIMIT 1"
        )
        self.groups = (
            f"SELECT g.grp, g.last_id, g.entries_read, "
            f"(SELECT count(*) FROM {c} c WHERE c.queue = $1 AND c.grp = g.grp), "
            f"(SELECT count(*) FROM {p} p WHERE p.queue = $1 AND p.grp = g.grp), "
            f"(SELECT count(*) FROM {m} m WHERE m.queue = $1 AND m.id > g.last_id) "
            f"FROM {g} g WHERE g.queue = $1 ORDER BY g.grp"
        )
        # Pending rows go before their messages: every transaction that
        # deletes both locks pending rows first, so they cannot deadlock.
        self.newest_kept = (
            f"SELECT id FROM {m} WHERE queue = $1 ORDER BY id DESC OFFSET $2 LIMIT 1"
        )
        self.forget_upto = f"DELETE FROM {p} WHERE queue = $1 AND id <= $2"
        self.drop_upto = f"DELETE FROM {m} WHERE queue = $1 AND id <= $2"


def _ids(handles: Sequence[str]) -> list[int]:
    return [int(handle) for handle in handles]


def _message(row: Any) -> RawMessage:
    message_id = str(row[0])
    return RawMessage(message_id, row[2], row[3], row[4], row[1], message_id)


class PostgresQueues:
    """The queue and stream ports of the PostgreSQL backend."""

    def __init__(
        self,
        pool: PostgresPool,
        names: TableNames,
        ready: Once,
        wakeups: Wakeups,
    ) -> None:
        self._pool = pool
        self._ready = ready
        self._wakeups = wakeups
        self._sql = _Sql(names, wakeups.channel)
        self._settings: dict[str, _Settings] = {}
        self._groups: set[tuple[str, str]] = set()
        self._consumers: dict[tuple[str, str, str], float] = {}
        self._background: set[asyncio.Future[None]] = set()
        self._completion = Completion(logging.getLogger("datafx.connfx.postgres.queue"))

    # -- helpers -------------------------------------------------------------

    async def _load(self, connection: Any, name: str) -> _Settings:
        found = self._settings.get(name)
        if found is not None:
            return found
        row = await connection.fetchrow(self._sql.settings, name)
        if row is None:
            raise QueueNotFoundError(name)
        settings = _Settings(bool(row[0]), int(row[1]), bool(row[2]), row[3])
        # Declarations never change, so the settings can be kept.
        self._settings[name] = settings
        return settings

    async def _settings_of(self, name: str) -> _Settings:
        found = self._settings.get(name)
        if found is not None:
            return found
        async with self._pool.acquire() as connection:
            return await self._load(connection, name)

    async def _see(
        self, connection: Any, name: str, group: str, consumer: str, now: float
    ) -> None:
        # Record a consumer at most every 10 s: info() only counts them.
        key = (name, group, consumer)
        if now - self._consumers.get(key, 0.0) < 10.0:
            return
        await connection.execute(self._sql.seen, name, group, consumer, now)
        self._consumers[key] = now

    # -- declarations ----------------------------------------------------------

    async def _declare(
        self, name: str, config: QueueConfig, *, stream: bool = False
    ) -> bool:
        await self._ready.ensure()
        reject = config.overflow == OVERFLOW_REJECT_PUBLISH
        async with self._pool.acquire() as connection, connection.transaction():
            status = await connection.execute(
                self._sql.declare,
                name,
                stream,
                config.max_length,
                reject,
                config.message_ttl_seconds,
                time.time(),
            )
            created = row_count(status) == 1
            if created and not stream:
                await connection.execute(
                    self._sql.create_default_group, name, DEFAULT_GROUP
                )
        return created

    async def exists(self, name: str) -> bool:
        await self._ready.ensure()
        if name in self._settings:
            return True
        async with self._pool.acquire() as connection:
            return await connection.fetchval(self._sql.last_id, name) is not None

    async def create_group(self, name: str, group: str, start_id: str) -> bool:
        await self._ready.ensure()
        async with self._pool.acquire() as connection:
            await self._load(connection, name)
            if start_id == START_AT_BEGINNING:
                start = 0
            elif start_id == START_AT_NEW:
                start = int(await connection.fetchval(self._sql.last_id, name))
            else:
                try:
                    start = int(start_id)
                except ValueError:
                    raise ValueError(
                        f"invalid start id {start_id!r}: use '0', '$' or a message id"
                    ) from None
            status = await connection.execute(
                self._sql.create_group, name, group, start
            )
        return row_count(status) == 1

    # -- publishing ------------------------------------------------------------

    async def _publish(self, name: str, body: bytes, headers: bytes) -> str:
        await self._ready.ensure()
        settings = await self._settings_of(name)
        now = time.time()
        ttl = settings.message_ttl
        expires = None if ttl is None else now + ttl
        args = (name, body, headers, now, expires, payload_for(name))
        async with self._pool.acquire() as connection:
            if settings.max_length:
                async with connection.transaction():
                    await self._make_room(connection, name, settings, now)
                    row = await connection.fetchrow(self._sql.publish, *args)
            else:
                row = await connection.fetchrow(self._sql.publish, *args)
        if row is None:
            raise QueueNotFoundError(name)
        self._wakeups.wake(name)
        return str(row[0])

    async def _make_room(
        self, connection: Any, name: str, settings: _Settings, now: float
    ) -> None:
        """Drop the oldest messages, or reject, so that one more fits."""
        await connection.execute(self._sql.lock_queue, name)
        if settings.message_ttl is not None:
            await connection.execute(self._sql.drop_expired, name, now)
        length = int(await connection.fetchval(self._sql.count, name))
        excess = length - settings.max_length + 1
        if excess <= 0:
            return
        if settings.reject_when_full:
            raise QueueFullError(name, settings.max_length)
        cutoff = await connection.fetchval(self._sql.oldest_dropped, name, excess)
        await connection.execute(self._sql.forget_upto, name, cutoff)
        await connection.execute(self._sql.drop_upto, name, cutoff)

    # -- consuming -------------------------------------------------------------

    async def _take(
        self,
        name: str,
        group: str,
        consumer: str,
        count: int,
        visibility: float | None,
    ) -> tuple[list[RawMessage], float | None]:
        """Lease up to ``count`` messages; also return when the next one is ready."""
        sql = self._sql
        now = time.time()
        lease_until = None if visibility is None else now + visibility
        async with self._pool.acquire() as connection, connection.transaction():
            settings = await self._load(connection, name)
            cursor = await connection.fetchval(sql.lock_group, name, group)
            if cursor is None:
                raise QueueNotFoundError(name)
            await self._see(connection, name, group, consumer, now)
            if settings.message_ttl is not None:
                await connection.execute(sql.drop_expired, name, now)
            redeliver = sql.redeliver_stream if settings.stream else sql.redeliver_queue
            rows = await connection.fetch(
                redeliver, name, group, consumer, now, count, lease_until
            )
            gone = [row[0] for row in rows if row[2] is None]
            if gone:
                await connection.execute(sql.forget, name, group, gone)
            taken = [_message(row) for row in rows if row[2] is not None]
            if len(taken) < count:
                taken += await self._take_new(
                    connection,
                    (name, group, consumer),
                    cursor,
                    count - len(taken),
                    now,
                    lease_until,
                )
            if taken:
                return taken, None
            stream_filter = "AND consumer IS NULL" if settings.stream else ""
            next_ready = await connection.fetchval(
                sql.next_ready.format(stream_filter=stream_filter), name, group
            )
        return taken, next_ready

    async def _take_new(
        self,
        connection: Any,
        reader: tuple[str, str, str],
        cursor: int,
        count: int,
        now: float,
        lease_until: float | None,
    ) -> list[RawMessage]:
        name, group, consumer = reader
        sql = self._sql
        rows = await connection.fetch(sql.new, name, cursor, now, count)
        if not rows:
            return []
        ids = [row[0] for row in rows]
        await connection.execute(
            sql.lease_new, name, group, consumer, now, lease_until, ids
        )
        await connection.execute(sql.advance, name, group, ids[-1], len(ids))
        return [RawMessage(str(r[0]), r[1], r[2], r[3], 1, str(r[0])) for r in rows]

    async def _take_shielded(
        self, name: str, group: str, *args: Any
    ) -> tuple[list[RawMessage], float | None]:
        """Run ``_take`` so that a cancelled caller never keeps messages leased."""
        task = asyncio.ensure_future(self._take(name, group, *args))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(
                lambda done: self._release_after_cancel(name, group, done)
            )
            raise

    def _release_after_cancel(
        self,
        name: str,
        group: str,
        done: asyncio.Future[tuple[list[RawMessage], float | None]],
    ) -> None:
        if done.cancelled() or done.exception() is not None:
            return
        taken, _ = done.result()
        if taken:
            handles = [m.receipt_handle for m in taken]
            task = asyncio.ensure_future(self.release(name, group, handles, 0.0))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def fetch(
        self,
        name: str,
        group: str,
        consumer: str,
        count: int,
        *,
        visibility_timeout: float | None,
        block: float,
    ) -> list[RawMessage]:
        await self._ready.ensure()
        deadline = time.monotonic() + block
        listening = False
        while True:
            # Take the event before looking, so a publish in between still wakes us.
            event = self._wakeups.event(name)
            taken, next_ready = await self._take_shielded(
                name, group, consumer, count, visibility_timeout
            )
            if taken:
                return taken
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            if not listening:
                await self._wakeups.listen()
                listening = True
                continue
            wait = min(remaining, MAX_SLEEP)
            if next_ready is not None:
                wait = min(wait, max(next_ready - time.time(), 0.0))
            try:
                async with asyncio.timeout(wait):
                    await event.wait()
            except TimeoutError:
                pass

    async def _ack(self, name: str, group: str, receipt_handles: Sequence[str]) -> int:
        await self._ready.ensure()
        settings = await self._settings_of(name)
        async with self._pool.acquire() as connection:
            acked = await connection.fetchval(
                self._sql.ack, name, group, _ids(receipt_handles), not settings.stream
            )
        return int(acked)

    async def _release(
        self, name: str, group: str, receipt_handles: Sequence[str], delay: float
    ) -> None:
        await self._ready.ensure()
        await self._settings_of(name)
        ready_at = time.time() + delay
        async with self._pool.acquire() as connection:
            await connection.fetchrow(
                self._sql.release,
                name,
                group,
                _ids(receipt_handles),
                ready_at,
                payload_for(name),
            )
        self._wakeups.wake(name)

    async def extend(
        self,
        name: str,
        group: str,
        consumer: str,
        receipt_handles: Sequence[str],
        visibility_timeout: float,
    ) -> list[str]:
        await self._ready.ensure()
        await self._settings_of(name)
        now = time.time()
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(
                self._sql.extend,
                name,
                group,
                consumer,
                _ids(receipt_handles),
                now,
                now + visibility_timeout,
            )
        return [str(row[0]) for row in rows]

    async def _claim(
        self,
        name: str,
        group: str,
        consumer: str,
        min_idle: float,
        count: int,
        visibility: float | None,
    ) -> tuple[list[RawMessage], float | None]:
        sql = self._sql
        now = time.time()
        lease_until = None if visibility is None else now + visibility
        async with self._pool.acquire() as connection, connection.transaction():
            settings = await self._load(connection, name)
            if await connection.fetchval(sql.lock_group, name, group) is None:
                raise QueueNotFoundError(name)
            await self._see(connection, name, group, consumer, now)
            if settings.message_ttl is not None:
                await connection.execute(sql.drop_expired, name, now)
            await connection.execute(sql.drop_orphans, name)
            rows = await connection.fetch(
                sql.claim,
                name,
                group,
                consumer,
                now,
                count,
                lease_until,
                now - min_idle,
            )
        return [_message(row) for row in rows], None

    async def claim(
        self,
        name: str,
        group: str,
        consumer: str,
        min_idle: float,
        count: int,
        *,
        visibility_timeout: float | None,
    ) -> list[RawMessage]:
        await self._ready.ensure()
        task = asyncio.ensure_future(
            self._claim(name, group, consumer, min_idle, count, visibility_timeout)
        )
        try:
            taken, _ = await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(
                lambda done: self._release_after_cancel(name, group, done)
            )
            raise
        return taken

    # -- writes that finish even when the caller is cancelled ------------------

    async def declare(
        self, name: str, config: QueueConfig, *, stream: bool = False
    ) -> bool:
        return await self._completion.run(
            self._declare(name, config, stream=stream), f"declaring queue {name!r}"
        )

    async def publish(self, name: str, body: bytes, headers: bytes) -> str:
        return await self._completion.run(
            self._publish(name, body, headers), f"publishing to queue {name!r}"
        )

    async def ack(self, name: str, group: str, receipt_handles: Sequence[str]) -> int:
        return await self._completion.run(
            self._ack(name, group, receipt_handles), f"acknowledging on {name!r}"
        )

    async def release(
        self, name: str, group: str, receipt_handles: Sequence[str], delay: float
    ) -> None:
        await self._completion.run(
            self._release(name, group, receipt_handles, delay),
            f"releasing messages of {name!r}",
        )

    # -- inspecting ------------------------------------------------------------

    async def info(self, name: str) -> QueueInfo:
        await self._ready.ensure()
        sql = self._sql
        now = time.time()
        async with (
            self._pool.acquire() as connection,
            connection.transaction(isolation="repeatable_read"),
        ):
            settings = await self._load(connection, name)
            if settings.message_ttl is not None:
                await connection.execute(sql.drop_expired, name, now)
            await connection.execute(sql.drop_orphans, name)
            length = int(await connection.fetchval(sql.count, name))
            last_id = await connection.fetchval(sql.last_id, name)
            first = await connection.fetchrow(sql.entry.format(order="ASC"), name)
            last = await connection.fetchrow(sql.entry.format(order="DESC"), name)
            group_rows = await connection.fetch(sql.groups, name)
        groups = [
            GroupInfo(r[0], int(r[3]), int(r[4]), int(r[5]), str(r[1]), int(r[2]))
            for r in group_rows
        ]
        return QueueInfo(
            name=name,
            stream=settings.stream,
            length=length,
            first_entry=_entry(first),
            last_entry=_entry(last),
            last_generated_id=str(last_id),
            groups=groups,
            max_length=settings.max_length,
            message_ttl=settings.message_ttl,
        )

    async def trim(self, name: str, max_len: int) -> int:
        await self._ready.ensure()
        async with self._pool.acquire() as connection, connection.transaction():
            await self._load(connection, name)
            sql = self._sql
            cutoff = await connection.fetchval(sql.newest_kept, name, max_len)
            if cutoff is None:
                return 0
            await connection.execute(sql.forget_upto, name, cutoff)
            removed = row_count(await connection.execute(sql.drop_upto, name, cutoff))
        return removed


def _entry(row: Any) -> RawEntry | None:
    return None if row is None else RawEntry(str(row[0]), row[1], row[2], row[3])
