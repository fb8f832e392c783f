"""Queues and streams on MySQL and MariaDB tables (``QueuePort``, ``StreamPort``).

The tables follow the model of ``QueuePort``: ``<prefix>queue_messages`` is
the log, ``<prefix>queue_groups`` holds each group's cursor and
``<prefix>queue_pending`` each group's delivered, unacknowledged messages with
their lease (``visible_at``) and delivery count.

A publish takes the next id of its queue with
``UPDATE ... SET last_id = LAST_INSERT_ID(last_id + 1)``, which keeps the
queue row locked until the publish commits, so ids commit in order and a
group cursor (``id > last_id``) never skips a message. Consumers lock the
group row while they advance its cursor and pick redeliveries with
``FOR UPDATE SKIP LOCKED`` (MySQL 8.0, MariaDB 10.6 and later).

MySQL has no notifications: a waiting ``fetch`` wakes at once for publishes
of this connection and checks the tables every ``POLL_INTERVAL`` for other
processes. Times are seconds since the Unix epoch from the client's clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from asyncmy.errors import IntegrityError

from datafx.connfx.adapters.mysql.pool import MySqlPool, execute, fetch
from datafx.connfx.adapters.mysql.schema import MAX_NAME_BYTES
from datafx.connfx.adapters.sqlbase.completion import Completion
from datafx.connfx.adapters.sqlbase.lazy import Once
from datafx.connfx.adapters.sqlbase.limits import check_key_size
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

__all__ = ["POLL_INTERVAL", "MySqlQueues"]

POLL_INTERVAL = 0.05
"""Seconds between checks for messages of other processes while a fetch waits."""


@dataclass(frozen=True, slots=True)
class _Settings:
    stream: bool
    max_length: int
    reject_when_full: bool
    message_ttl: float | None


def _marks(count: int) -> str:
    return ", ".join(["%s"] * count)


def _ids(handles: Sequence[str]) -> list[int]:
    return [int(handle) for handle in handles]


def _text(value: Any) -> str:
    return bytes(value).decode() if isinstance(value, bytes | bytearray) else str(value)


_DUPLICATE_KEY = 1062


async def _insert_new(connection: Any, sql: str, args: Sequence[Any]) -> bool:
    """Insert one row; return ``False`` when its primary key already exists.

    A plain INSERT whose duplicate-key error is caught, because INSERT IGNORE
    makes the server send a warning that asyncmy prints on stderr. InnoDB
    rolls back only the failed statement, so an open transaction goes on.
    """
    try:
        return await execute(connection, sql, args) == 1
    except IntegrityError as exc:
        if exc.args and exc.args[0] == _DUPLICATE_KEY:
            return False
        raise


class _Sql:
    """Every statement of the queue port, with the table names filled in."""

    def __init__(self, names: TableNames) -> None:
        q = names.table("queues")
        m = names.table("queue_messages")
        g = names.table("queue_groups")
        p = names.table("queue_pending")
        c = names.table("queue_consumers")
        self.declare = (
            f"INSERT INTO {q} (name, stream, max_length, reject_when_full, "
            "message_ttl, created_at) VALUES (%s, %s, %s, %s, %s, %s)"
        )
        self.create_group = f"INSERT INTO {g} (queue, grp, last_id) VALUES (%s, %s, %s)"
        self.settings = (
            f"SELECT stream, max_length, reject_when_full, message_ttl FROM {q} "
            "WHERE name = %s"
        )
        self.last_id = f"SELECT last_id FROM {q} WHERE name = %s"
        self.next_id = (
            f"UPDATE {q} SET last_id = LAST_INSERT_ID(last_id + 1) WHERE name = %s"
        )
        self.insert = (
            f"INSERT INTO {m} (queue, id, body, headers, published_at, expires_at) "
            "VALUES (%s, %s, %s, %s, %s, %s)"
        )
        self.count = f"SELECT count(*) FROM {m} WHERE queue = %s"
        self.oldest = f"SELECT id FROM {m} WHERE queue = %s ORDER BY id LIMIT %s"
        # Pending rows go before their messages: every statement that deletes
        # both locks pending rows first, so they cannot deadlock each other.
        self.drop_upto = f"DELETE FROM {m} WHERE queue = %s AND id <= %s"
        self.forget_upto = f"DELETE FROM {p} WHERE queue = %s AND id <= %s"
        self.drop_expired = f"DELETE FROM {m} WHERE queue = %s AND expires_at <= %s"
        self.drop_orphans = (
            f"DELETE FROM {p} WHERE queue = %s AND NOT EXISTS (SELECT 1 FROM {m} m "
            f"WHERE m.queue = {p}.queue AND m.id = {p}.id)"
        )
        self.seen = (
            f"INSERT INTO {c} (queue, grp, consumer, seen_at) VALUES (%s, %s, %s, %s) "
            "ON DUPLICATE KEY UPDATE seen_at = VALUES(seen_at)"
        )
        self.lock_group = (
            f"SELECT last_id FROM {g} WHERE queue = %s AND grp = %s FOR UPDATE"
        )
        self.ready = (
            f"SELECT id FROM {p} WHERE queue = %s AND grp = %s AND visible_at <= %s "
            "{stream_filter} ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED"
        )
        self.lease = (
            f"UPDATE {p} SET consumer = %s, delivered_at = %s, visible_at = %s, "
            "delivery_count = delivery_count + 1 "
            "WHERE queue = %s AND grp = %s AND id IN ({ids})"
        )
        self.pending_rows = (
            f"SELECT p.id, p.delivery_count, m.body, m.headers, m.published_at "
            f"FROM {p} p LEFT JOIN {m} m ON m.queue = p.queue AND m.id = p.id "
            "WHERE p.queue = %s AND p.grp = %s AND p.id IN ({ids}) ORDER BY p.id"
        )
        self.forget = (
            f"DELETE FROM {p} WHERE queue = %s AND grp = %s AND id IN ({{ids}})"
        )
        self.new = (
            f"SELECT id, body, headers, published_at FROM {m} WHERE queue = %s "
            "AND id > %s AND (expires_at IS NULL OR expires_at > %s) "
            "ORDER BY id LIMIT %s"
        )
        self.lease_new = (
            f"INSERT INTO {p} (queue, grp, id, consumer, delivered_at, visible_at, "
            "delivery_count) VALUES {rows}"
        )
        self.advance = (
            f"UPDATE {g} SET last_id = %s, entries_read = entries_read + %s "
            "WHERE queue = %s AND grp = %s"
        )
        self.next_ready = (
            f"SELECT min(visible_at) FROM {p} WHERE queue = %s AND grp = %s "
            "{stream_filter}"
        )
        self.ack = f"DELETE FROM {p} WHERE queue = %s AND grp = %s AND id IN ({{ids}})"
        # A queue message goes once every group has read and acknowledged it.
        # The check is a plain SELECT (a consistent read at READ COMMITTED):
        # as a subquery of the DELETE it would share-lock the pending and
        # group rows that consumers lock in the other order.
        self.done_messages = (
            f"SELECT id FROM {m} WHERE queue = %s AND id IN ({{ids}}) "
            f"AND NOT EXISTS (SELECT 1 FROM {p} o WHERE o.queue = {m}.queue "
            f"AND o.id = {m}.id) AND NOT EXISTS (SELECT 1 FROM {g} x "
            f"WHERE x.queue = {m}.queue AND x.last_id < {m}.id)"
        )
        self.delete_messages = f"DELETE FROM {m} WHERE queue = %s AND id IN ({{ids}})"
        self.release = (
            f"UPDATE {p} SET consumer = NULL, visible_at = %s "
            "WHERE queue = %s AND grp = %s AND id IN ({ids})"
        )
        self.extend_rows = (
            f"SELECT id FROM {p} WHERE queue = %s AND grp = %s AND consumer = %s "
            "AND id IN ({ids}) FOR UPDATE"
        )
        self.extend = (
            f"UPDATE {p} SET delivered_at = %s, visible_at = CASE WHEN visible_at "
            "IS NULL THEN NULL ELSE %s END WHERE queue = %s AND grp = %s "
            "AND id IN ({ids})"
        )
        self.claimable = (
            f"SELECT p.id FROM {p} p JOIN {m} m ON m.queue = p.queue AND m.id = p.id "
            "WHERE p.queue = %s AND p.grp = %s AND p.delivered_at <= %s AND "
            "(p.consumer IS NOT NULL OR p.visible_at <= %s) ORDER BY p.id LIMIT %s "
            "FOR UPDATE SKIP LOCKED"
        )
        self.entry = (
            f"SELECT id, body, headers, published_at FROM {m} WHERE queue = %s "
            "ORDER BY id {order} LIMIT 1"
        )
        self.groups = (
            "SELECT g.grp, g.last_id, g.entries_read, "
            f"(SELECT count(*) FROM {c} c WHERE c.queue = g.queue AND c.grp = g.grp), "
            f"(SELECT count(*) FROM {p} p WHERE p.queue = g.queue AND p.grp = g.grp), "
            f"(SELECT count(*) FROM {m} m WHERE m.queue = g.queue "
            "AND m.id > g.last_id) "
            f"FROM {g} g WHERE g.queue = %s ORDER BY g.grp"
        )
        self.newest_kept = (
            f"SELECT id FROM {m} WHERE queue = %s ORDER BY id DESC LIMIT 1 OFFSET %s"
        )


class MySqlQueues:
    """The queue and stream ports of the MySQL backend."""

    def __init__(self, pool: MySqlPool, names: TableNames, ready: Once) -> None:
        self._pool = pool
        self._ready = ready
        self._sql = _Sql(names)
        self._settings: dict[str, _Settings] = {}
        self._consumers: dict[tuple[str, str, str], float] = {}
        self._events: dict[str, asyncio.Event] = {}
        self._background: set[asyncio.Future[None]] = set()
        self._completion = Completion(logging.getLogger("datafx.connfx.mysql.queue"))

    # -- helpers -------------------------------------------------------------

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Any]:
        async with self._pool.acquire() as connection:
            await execute(connection, "START TRANSACTION")
            try:
                yield connection
            except BaseException:
                # A statement cancelled mid-way closes the connection, and the
                # server rolls back; otherwise roll back here.
                if connection.connected:
                    await execute(connection, "ROLLBACK")
                raise
            await execute(connection, "COMMIT")

    async def _load(self, connection: Any, name: str) -> _Settings:
        found = self._settings.get(name)
        if found is not None:
            return found
        rows = await fetch(connection, self._sql.settings, (name,))
        if not rows:
            raise QueueNotFoundError(name)
        stream, max_length, reject, ttl = rows[0]
        settings = _Settings(bool(stream), int(max_length), bool(reject), ttl)
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
        check_key_size(consumer, MAX_NAME_BYTES, "MySQL", "consumer name")
        await execute(connection, self._sql.seen, (name, group, consumer, now))
        self._consumers[key] = now

    def _event(self, name: str) -> asyncio.Event:
        event = self._events.get(name)
        if event is None:
            event = self._events[name] = asyncio.Event()
        return event

    def _wake(self, name: str) -> None:
        event = self._events.pop(name, None)
        if event is not None:
            event.set()

    # -- declarations ----------------------------------------------------------

    async def _declare(
        self, name: str, config: QueueConfig, *, stream: bool = False
    ) -> bool:
        check_key_size(name, MAX_NAME_BYTES, "MySQL", "queue name")
        await self._ready.ensure()
        reject = config.overflow == OVERFLOW_REJECT_PUBLISH
        args = (
            name,
            stream,
            config.max_length,
            reject,
            config.message_ttl_seconds,
            time.time(),
        )
        async with self._transaction() as connection:
            created = await _insert_new(connection, self._sql.declare, args)
            if created and not stream:
                await execute(
                    connection, self._sql.create_group, (name, DEFAULT_GROUP, 0)
                )
        return created

    async def exists(self, name: str) -> bool:
        await self._ready.ensure()
        if name in self._settings:
            return True
        async with self._pool.acquire() as connection:
            return bool(await fetch(connection, self._sql.last_id, (name,)))

    async def create_group(self, name: str, group: str, start_id: str) -> bool:
        check_key_size(group, MAX_NAME_BYTES, "MySQL", "group name")
        await self._ready.ensure()
        async with self._pool.acquire() as connection:
            await self._load(connection, name)
            if start_id == START_AT_BEGINNING:
                start = 0
            elif start_id == START_AT_NEW:
                rows = await fetch(connection, self._sql.last_id, (name,))
                start = int(rows[0][0])
            else:
                try:
                    start = int(start_id)
                except ValueError:
                    raise ValueError(
                        f"invalid start id {start_id!r}: use '0', '$' or a message id"
                    ) from None
            args = (name, group, start)
            return await _insert_new(connection, self._sql.create_group, args)

    # -- publishing ------------------------------------------------------------

    async def _publish(self, name: str, body: bytes, headers: bytes) -> str:
        await self._ready.ensure()
        settings = await self._settings_of(name)
        sql = self._sql
        now = time.time()
        ttl = settings.message_ttl
        expires = None if ttl is None else now + ttl
        async with self._transaction() as connection:
            async with connection.cursor() as cursor:
                if not await cursor.execute(sql.next_id, (name,)):
                    raise QueueNotFoundError(name)
                message_id = int(cursor.lastrowid)
            if settings.max_length:
                await self._make_room(connection, name, settings, now)
            args = (name, message_id, body, headers, now, expires)
            await execute(connection, sql.insert, args)
        self._wake(name)
        return str(message_id)

    async def _make_room(
        self, connection: Any, name: str, settings: _Settings, now: float
    ) -> None:
        """Drop the oldest messages, or reject, so that one more fits."""
        sql = self._sql
        if settings.message_ttl is not None:
            await execute(connection, sql.drop_expired, (name, now))
        length = int((await fetch(connection, sql.count, (name,)))[0][0])
        excess = length - settings.max_length + 1
        if excess <= 0:
            return
        if settings.reject_when_full:
            raise QueueFullError(name, settings.max_length)
        oldest = await fetch(connection, sql.oldest, (name, excess))
        await execute(connection, sql.forget_upto, (name, oldest[-1][0]))
        await execute(connection, sql.drop_upto, (name, oldest[-1][0]))

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
        async with self._transaction() as connection:
            settings = await self._load(connection, name)
            rows = await fetch(connection, sql.lock_group, (name, group))
            if not rows:
                raise QueueNotFoundError(name)
            cursor_id = int(rows[0][0])
            await self._see(connection, name, group, consumer, now)
            if settings.message_ttl is not None:
                await execute(connection, sql.drop_expired, (name, now))
            stream_filter = "AND consumer IS NULL" if settings.stream else ""
            ready = await fetch(
                connection,
                sql.ready.format(stream_filter=stream_filter),
                (name, group, now, count),
            )
            taken = await self._lease(
                connection,
                (name, group, consumer),
                [r[0] for r in ready],
                now,
                lease_until,
            )
            if len(taken) < count:
                taken += await self._take_new(
                    connection,
                    (name, group, consumer),
                    cursor_id,
                    count - len(taken),
                    now,
                    lease_until,
                )
            if taken:
                return taken, None
            rows = await fetch(
                connection,
                sql.next_ready.format(stream_filter=stream_filter),
                (name, group),
            )
        return taken, rows[0][0]

    async def _lease(
        self,
        connection: Any,
        reader: tuple[str, str, str],
        ids: list[int],
        now: float,
        lease_until: float | None,
    ) -> list[RawMessage]:
        """Lease the pending messages ``ids`` (locked by the caller) to the consumer."""
        if not ids:
            return []
        name, group, consumer = reader
        sql = self._sql
        marks = _marks(len(ids))
        await execute(
            connection,
            sql.lease.format(ids=marks),
            (consumer, now, lease_until, name, group, *ids),
        )
        rows = await fetch(
            connection, sql.pending_rows.format(ids=marks), (name, group, *ids)
        )
        gone = [row[0] for row in rows if row[2] is None]
        if gone:
            await execute(
                connection,
                sql.forget.format(ids=_marks(len(gone))),
                (name, group, *gone),
            )
        return [
            RawMessage(str(r[0]), bytes(r[2]), bytes(r[3]), r[4], r[1], str(r[0]))
            for r in rows
            if r[2] is not None
        ]

    async def _take_new(
        self,
        connection: Any,
        reader: tuple[str, str, str],
        cursor_id: int,
        count: int,
        now: float,
        lease_until: float | None,
    ) -> list[RawMessage]:
        name, group, consumer = reader
        sql = self._sql
        rows = await fetch(connection, sql.new, (name, cursor_id, now, count))
        if not rows:
            return []
        values: list[Any] = []
        for row in rows:
            values += (name, group, row[0], consumer, now, lease_until, 1)
        statement = sql.lease_new.format(
            rows=", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(rows))
        )
        await execute(connection, statement, values)
        await execute(connection, sql.advance, (rows[-1][0], len(rows), name, group))
        return [
            RawMessage(str(r[0]), bytes(r[1]), bytes(r[2]), r[3], 1, str(r[0]))
            for r in rows
        ]

    async def _shielded(
        self, name: str, group: str, operation: Any
    ) -> tuple[list[RawMessage], float | None]:
        """Await ``operation``; a cancelled caller never keeps messages leased."""
        task = asyncio.ensure_future(operation)
        try:
            result: tuple[list[RawMessage], float | None] = await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(
                lambda done: self._release_after_cancel(name, group, done)
            )
            raise
        return result

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
        while True:
            # Take the event before looking, so a publish in between still wakes us.
            event = self._event(name)
            operation = self._take(name, group, consumer, count, visibility_timeout)
            taken, next_ready = await self._shielded(name, group, operation)
            if taken:
                return taken
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            wait = min(remaining, POLL_INTERVAL)
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
        ids = _ids(receipt_handles)
        statement = self._sql.ack.format(ids=_marks(len(ids)))
        if settings.stream:
            async with self._pool.acquire() as connection:
                return await execute(connection, statement, (name, group, *ids))
        # One transaction, so one log flush, for both deletes.
        async with self._transaction() as connection:
            acked = await execute(connection, statement, (name, group, *ids))
            if acked:
                await self._delete_done(connection, name, ids)
        return acked

    async def _delete_done(self, connection: Any, name: str, ids: list[int]) -> None:
        """Delete the messages among ``ids`` that no group needs any more."""
        sql = self._sql
        statement = sql.done_messages.format(ids=_marks(len(ids)))
        done = [row[0] for row in await fetch(connection, statement, (name, *ids))]
        if done:
            statement = sql.delete_messages.format(ids=_marks(len(done)))
            await execute(connection, statement, (name, *done))

    async def _release(
        self, name: str, group: str, receipt_handles: Sequence[str], delay: float
    ) -> None:
        await self._ready.ensure()
        await self._settings_of(name)
        ids = _ids(receipt_handles)
        statement = self._sql.release.format(ids=_marks(len(ids)))
        async with self._pool.acquire() as connection:
            await execute(
                connection, statement, (time.time() + delay, name, group, *ids)
            )
        self._wake(name)

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
        sql = self._sql
        ids = _ids(receipt_handles)
        now = time.time()
        async with self._transaction() as connection:
            rows = await fetch(
                connection,
                sql.extend_rows.format(ids=_marks(len(ids))),
                (name, group, consumer, *ids),
            )
            held = [int(row[0]) for row in rows]
            if held:
                await execute(
                    connection,
                    sql.extend.format(ids=_marks(len(held))),
                    (now, now + visibility_timeout, name, group, *held),
                )
        return [str(i) for i in held]

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
        async with self._transaction() as connection:
            settings = await self._load(connection, name)
            if not await fetch(connection, sql.lock_group, (name, group)):
                raise QueueNotFoundError(name)
            await self._see(connection, name, group, consumer, now)
            if settings.message_ttl is not None:
                await execute(connection, sql.drop_expired, (name, now))
            await execute(connection, sql.drop_orphans, (name,))
            rows = await fetch(
                connection, sql.claimable, (name, group, now - min_idle, now, count)
            )
            taken = await self._lease(
                connection,
                (name, group, consumer),
                [r[0] for r in rows],
                now,
                lease_until,
            )
        return taken, None

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
        operation = self._claim(
            name, group, consumer, min_idle, count, visibility_timeout
        )
        taken, _ = await self._shielded(name, group, operation)
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
        async with self._transaction() as connection:
            settings = await self._load(connection, name)
            if settings.message_ttl is not None:
                await execute(connection, sql.drop_expired, (name, now))
            await execute(connection, sql.drop_orphans, (name,))
            length = int((await fetch(connection, sql.count, (name,)))[0][0])
            last_id = (await fetch(connection, sql.last_id, (name,)))[0][0]
            first = await fetch(connection, sql.entry.format(order="ASC"), (name,))
            last = await fetch(connection, sql.entry.format(order="DESC"), (name,))
            group_rows = await fetch(connection, sql.groups, (name,))
        groups = [
            GroupInfo(
                _text(r[0]), int(r[3]), int(r[4]), int(r[5]), str(r[1]), int(r[2])
            )
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
        sql = self._sql
        async with self._transaction() as connection:
            await self._load(connection, name)
            rows = await fetch(connection, sql.newest_kept, (name, max_len))
            if not rows:
                return 0
            await execute(connection, sql.forget_upto, (name, rows[0][0]))
            removed = await execute(connection, sql.drop_upto, (name, rows[0][0]))
        return removed


def _entry(rows: list[Any]) -> RawEntry | None:
    if not rows:
        return None
    row = rows[0]
    return RawEntry(str(row[0]), bytes(row[1]), bytes(row[2]), row[3])
