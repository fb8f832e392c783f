"""Queues and streams in SQLite tables, shared by every process that opens the file.

The tables follow the model of ``QueuePort``: ``datafx_queue_messages`` is the
log, ``datafx_queue_groups`` holds each consumer group's cursor and
``datafx_queue_pending`` each group's delivered, unacknowledged messages with
their lease (``visible_at``) and delivery count. Every port call is one
``BEGIN IMMEDIATE`` transaction, so two consumers, in this process or in
another, never lease the same message at once, and a message whose lease
lapses (its consumer died) goes to the next ``fetch``.

The queue tables use their own SQLite connection, opened on first use, on
one worker thread: each port call is a single hop to that thread. A waiting
``fetch`` wakes at once when this process publishes, and polls
``PRAGMA data_version`` every 50 ms to see commits of other processes.
With ``sqlite://:memory:`` that connection opens its own private database,
so queues there are visible only to the connection that made them.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from datafx.connfx.adapters.sqlite.options import SqliteOptions
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

__all__ = ["SqliteQueues"]

_logger = logging.getLogger("datafx.connfx.sqlite.queue")

R = TypeVar("R")

POLL_INTERVAL = 0.05
"""Seconds between checks for commits of other processes while a fetch waits."""

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS datafx_queues (
        name TEXT PRIMARY KEY,
        stream INTEGER NOT NULL,
        max_length INTEGER NOT NULL,
        reject_when_full INTEGER NOT NULL,
        message_ttl REAL,
        last_id INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS datafx_queue_messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        queue TEXT NOT NULL,
        body BLOB NOT NULL,
        headers BLOB NOT NULL,
        published_at REAL NOT NULL,
        expires_at REAL
    )""",
    """CREATE INDEX IF NOT EXISTS datafx_queue_messages_queue
        ON datafx_queue_messages (queue, id)""",
    """CREATE TABLE IF NOT EXISTS datafx_queue_groups (
        queue TEXT NOT NULL,
        grp TEXT NOT NULL,
        last_id INTEGER NOT NULL,
        entries_read INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (queue, grp)
    ) WITHOUT ROWID""",
    # visible_at: when a leased message may be fetched again (NULL for a
    # stream lease, which only claiming ends), or when a released one is ready.
    """CREATE TABLE IF NOT EXISTS datafx_queue_pending (
        queue TEXT NOT NULL,
        id INTEGER NOT NULL,
        grp TEXT NOT NULL,
        consumer TEXT,
        delivered_at REAL NOT NULL,
        visible_at REAL,
        delivery_count INTEGER NOT NULL,
        PRIMARY KEY (queue, id, grp)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS datafx_queue_consumers (
        queue TEXT NOT NULL,
        grp TEXT NOT NULL,
        consumer TEXT NOT NULL,
        seen_at REAL NOT NULL,
        PRIMARY KEY (queue, grp, consumer)
    ) WITHOUT ROWID""",
)


@dataclass(frozen=True, slots=True)
class _Settings:
    stream: bool
    max_length: int
    reject_when_full: bool
    message_ttl: float | None


def _placeholders(count: int) -> str:
    return ",".join("?" * count)


def _ids(handles: Sequence[str]) -> list[int]:
    return [int(h) for h in handles]


def _resolve(
    future: asyncio.Future[Any], result: Any, error: BaseException | None
) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class _Worker:
    """One thread that runs the queue connection's calls in order.

    A plain thread and queue (as aiosqlite does) costs less per call than an
    executor, and a call is one hop: the function runs whole on the thread.
    """

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[
            tuple[asyncio.Future[Any] | None, Callable[..., Any], tuple[Any, ...]]
            | None
        ] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            call = self._calls.get()
            if call is None:
                return
            future, fn, args = call
            result: Any = None
            error: BaseException | None = None
            try:
                result = fn(*args)
            except BaseException as exc:
                error = exc
            if future is None:
                if error is not None:
                    _logger.warning(
                        "background queue call %s failed: %s: %s",
                        getattr(fn, "__name__", fn),
                        type(error).__name__,
                        error,
                    )
                continue
            try:
                future.get_loop().call_soon_threadsafe(_resolve, future, result, error)
            except RuntimeError:
                pass  # the event loop closed while the call ran

    def submit(self, fn: Callable[..., R], *args: Any) -> asyncio.Future[R]:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._calls.put((future, fn, args))
        return future

    def submit_detached(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue a call that no caller awaits; a failure is logged."""
        self._calls.put((None, fn, args))

    def stop(self) -> None:
        """Let the thread end after the calls already queued."""
        self._calls.put(None)


class _Notifier:
    """Wakes waiting fetches of every ``SqliteQueues`` on one file in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: weakref.WeakSet[SqliteQueues] = weakref.WeakSet()

    def add(self, queues: SqliteQueues) -> None:
        with self._lock:
            self._listeners.add(queues)

    def notify(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for queues in listeners:
            queues.wake()


_NOTIFIERS: dict[str, _Notifier] = {}
_NOTIFIERS_LOCK = threading.Lock()


def _notifier(path: str) -> _Notifier:
    with _NOTIFIERS_LOCK:
        return _NOTIFIERS.setdefault(path, _Notifier())


class _Tables:
    """The SQL of every port call; each method runs on the worker thread."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.settings: dict[str, _Settings] = {}
        self.consumers_seen: dict[tuple[str, str, str], float] = {}

    # -- helpers -----------------------------------------------------------

    def transaction(self, fn: Callable[..., R], *args: Any) -> R:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            result = fn(*args)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

    def load_settings(self, name: str) -> _Settings:
        found = self.settings.get(name)
        if found is not None:
            return found
        row = self.db.execute(
            "SELECT stream, max_length, reject_when_full, message_ttl "
            "FROM datafx_queues WHERE name = ?",
            (name,),
        ).fetchone()
        if row is None:
            raise QueueNotFoundError(name)
        settings = _Settings(bool(row[0]), int(row[1]), bool(row[2]), row[3])
        # Declarations never change, so the settings can be kept.
        self.settings[name] = settings
        return settings

    def group_cursor(self, name: str, group: str) -> int:
        row = self.db.execute(
            "SELECT last_id FROM datafx_queue_groups WHERE queue = ? AND grp = ?",
            (name, group),
        ).fetchone()
        if row is None:
            self.load_settings(name)
            raise QueueNotFoundError(name)
        return int(row[0])

    def last_generated_id(self, name: str) -> int:
        """Return the newest id ever published to ``name`` (0 when none was).

        Ids come from AUTOINCREMENT, so they are never reused. The newest id
        is the largest stored one, unless it was removed: deletions of
        acknowledged queue messages only remove ids every group's cursor has
        passed, and trimming, dropping and expiry record the largest id they
        remove in ``datafx_queues.last_id``.
        """
        (last,) = self.db.execute(
            "SELECT max(coalesce((SELECT max(id) FROM datafx_queue_messages "
            "WHERE queue = ?1), 0), coalesce((SELECT max(last_id) FROM "
            "datafx_queue_groups WHERE queue = ?1), 0), (SELECT last_id FROM "
            "datafx_queues WHERE name = ?1))",
            (name,),
        ).fetchone()
        return int(last or 0)

    def remember_removed(self, name: str, removed_max: int | None) -> None:
        if removed_max:
            self.db.execute(
                "UPDATE datafx_queues SET last_id = max(last_id, ?) WHERE name = ?",
                (removed_max, name),
            )

    def drop_expired(self, name: str, settings: _Settings, now: float) -> None:
        if settings.message_ttl is None:
            return
        # Every message of a queue has the same lifetime, so the expired
        # ones are exactly those up to the newest expired id.
        row = self.db.execute(
            "SELECT max(id) FROM datafx_queue_messages WHERE queue = ? "
            "AND expires_at <= ?",
            (name, now),
        ).fetchone()
        if row[0] is None:
            return
        self.remember_removed(name, row[0])
        self.db.execute(
            "DELETE FROM datafx_queue_messages WHERE queue = ? AND id <= ?",
            (name, row[0]),
        )

    def see_consumer(self, name: str, group: str, consumer: str, now: float) -> None:
        """Record that ``consumer`` of ``group`` is alive, at most once a minute."""
        key = (name, group, consumer)
        if now - self.consumers_seen.get(key, 0.0) < 60.0:
            return
        self.db.execute(
            "INSERT OR REPLACE INTO datafx_queue_consumers VALUES (?, ?, ?, ?)",
            (name, group, consumer, now),
        )
        self.consumers_seen[key] = now

    def drop_orphans(self, name: str) -> None:
        """Remove pending rows whose message was trimmed, dropped or expired."""
        self.db.execute(
            "DELETE FROM datafx_queue_pending WHERE queue = ? AND NOT EXISTS "
            "(SELECT 1 FROM datafx_queue_messages m WHERE m.id = "
            "datafx_queue_pending.id)",
            (name,),
        )

    # -- schema and declarations -------------------------------------------

    def create_schema(self) -> None:
        for statement in _SCHEMA:
            self.db.execute(statement)

    def declare(self, name: str, settings: _Settings, now: float) -> bool:
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO datafx_queues (name, stream, max_length, "
            "reject_when_full, message_ttl, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (
                name,
                int(settings.stream),
                settings.max_length,
                int(settings.reject_when_full),
                settings.message_ttl,
                now,
            ),
        )
        created = cursor.rowcount == 1
        if created and not settings.stream:
            self.db.execute(
                "INSERT OR IGNORE INTO datafx_queue_groups (queue, grp, last_id) "
                "VALUES (?, ?, 0)",
                (name, DEFAULT_GROUP),
            )
        return created

    def exists(self, name: str) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM datafx_queues WHERE name = ?", (name,)
        ).fetchone()
        return row is not None

    def create_group(self, name: str, group: str, start_id: str) -> bool:
        self.load_settings(name)
        if start_id == START_AT_BEGINNING:
            start = 0
        elif start_id == START_AT_NEW:
            start = self.last_generated_id(name)
        else:
            try:
                start = int(start_id)
            except ValueError:
                raise ValueError(
                    f"invalid start id {start_id!r}: use '0', '$' or a message id"
                ) from None
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO datafx_queue_groups (queue, grp, last_id) "
            "VALUES (?, ?, ?)",
            (name, group, start),
        )
        return cursor.rowcount == 1

    # -- publishing --------------------------------------------------------

    def publish(self, name: str, body: bytes, headers: bytes, now: float) -> str:
        settings = self.load_settings(name)
        db = self.db
        if settings.max_length:
            self.drop_expired(name, settings, now)
            (length,) = db.execute(
                "SELECT count(*) FROM datafx_queue_messages WHERE queue = ?", (name,)
            ).fetchone()
            excess = length - settings.max_length + 1
            if excess > 0:
                if settings.reject_when_full:
                    raise QueueFullError(name, settings.max_length)
                (removed_max,) = db.execute(
                    "SELECT max(id) FROM (SELECT id FROM datafx_queue_messages "
                    "WHERE queue = ? ORDER BY id LIMIT ?)",
                    (name, excess),
                ).fetchone()
                self.remember_removed(name, removed_max)
                db.execute(
                    "DELETE FROM datafx_queue_messages WHERE queue = ? AND id <= ?",
                    (name, removed_max),
                )
                self.drop_orphans(name)
        return self.insert(name, settings, body, headers, now)

    def insert(
        self, name: str, settings: _Settings, body: bytes, headers: bytes, now: float
    ) -> str:
        ttl = settings.message_ttl
        expires_at = None if ttl is None else now + ttl
        cursor = self.db.execute(
            "INSERT INTO datafx_queue_messages (queue, body, headers, published_at, "
            "expires_at) VALUES (?, ?, ?, ?, ?)",
            (name, body, headers, now, expires_at),
        )
        return str(cursor.lastrowid)

    def publish_autocommit(
        self, name: str, body: bytes, headers: bytes, now: float
    ) -> str:
        """Publish with one autocommit INSERT when no length limit needs checking."""
        settings = self.settings.get(name)
        if settings is None or settings.max_length:
            return self.transaction(self.publish, name, body, headers, now)
        return self.insert(name, settings, body, headers, now)

    # -- consuming ---------------------------------------------------------

    def take(
        self,
        name: str,
        group: str,
        consumer: str,
        count: int,
        visibility: float | None,
        now: float,
    ) -> tuple[list[RawMessage], float | None]:
        """Lease up to ``count`` messages; also return when the next one is ready."""
        db = self.db
        settings = self.load_settings(name)
        cursor_id = self.group_cursor(name, group)
        self.drop_expired(name, settings, now)
        self.see_consumer(name, group, consumer, now)
        lease_until = None if visibility is None else now + visibility

        # Pending messages that are ready again come first, in id order.
        taken: list[RawMessage] = []
        ready_filter = "" if visibility is not None else " AND p.consumer IS NULL"
        rows = db.execute(
            "SELECT p.id, p.delivery_count, m.body, m.headers, m.published_at "
            "FROM datafx_queue_pending p LEFT JOIN datafx_queue_messages m "
            "ON m.id = p.id WHERE p.queue = ? AND p.grp = ? AND p.visible_at <= ?"
            f"{ready_filter} ORDER BY p.id LIMIT ?",
            (name, group, now, count),
        ).fetchall()
        if rows:
            gone = [(name, r[0], group) for r in rows if r[2] is None]
            if gone:
                db.executemany(
                    "DELETE FROM datafx_queue_pending WHERE queue = ? AND id = ? "
                    "AND grp = ?",
                    gone,
                )
            live = [r for r in rows if r[2] is not None]
            db.executemany(
                "UPDATE datafx_queue_pending SET consumer = ?, delivered_at = ?, "
                "visible_at = ?, delivery_count = delivery_count + 1 "
                "WHERE queue = ? AND id = ? AND grp = ?",
                [(consumer, now, lease_until, name, r[0], group) for r in live],
            )
            taken = [
                RawMessage(str(r[0]), r[2], r[3], r[4], r[1] + 1, str(r[0]))
                for r in live
            ]

        # Then messages the group has not read yet.
        if len(taken) < count:
            rows = db.execute(
                "SELECT id, body, headers, published_at FROM datafx_queue_messages "
                "WHERE queue = ? AND id > ? ORDER BY id LIMIT ?",
                (name, cursor_id, count - len(taken)),
            ).fetchall()
            if rows:
                db.executemany(
                    "INSERT INTO datafx_queue_pending (queue, id, grp, consumer, "
                    "delivered_at, visible_at, delivery_count) "
                    "VALUES (?, ?, ?, ?, ?, ?, 1)",
                    [(name, r[0], group, consumer, now, lease_until) for r in rows],
                )
                db.execute(
                    "UPDATE datafx_queue_groups SET last_id = ?, "
                    "entries_read = entries_read + ? WHERE queue = ? AND grp = ?",
                    (rows[-1][0], len(rows), name, group),
                )
                taken.extend(
                    RawMessage(str(r[0]), r[1], r[2], r[3], 1, str(r[0])) for r in rows
                )
        if taken:
            return taken, None

        # Nothing to hand out: tell the caller when a pending one gets ready.
        row = db.execute(
            "SELECT min(visible_at) FROM datafx_queue_pending p "
            f"WHERE p.queue = ? AND p.grp = ?{ready_filter}",
            (name, group),
        ).fetchone()
        return taken, row[0]

    def ack(self, name: str, group: str, ids: list[int]) -> int:
        settings = self.load_settings(name)
        marks = _placeholders(len(ids))
        cursor = self.db.execute(
            f"DELETE FROM datafx_queue_pending WHERE queue = ? AND grp = ? "
            f"AND id IN ({marks})",
            (name, group, *ids),
        )
        acked = cursor.rowcount
        if not settings.stream:
            # A queue message is done once every group has read and acked it.
            self.db.execute(
                f"DELETE FROM datafx_queue_messages WHERE id IN ({marks}) "
                "AND NOT EXISTS (SELECT 1 FROM datafx_queue_pending p "
                "WHERE p.queue = ? AND p.id = datafx_queue_messages.id) "
                "AND NOT EXISTS (SELECT 1 FROM datafx_queue_groups g "
                "WHERE g.queue = ? AND g.last_id < datafx_queue_messages.id)",
                (*ids, name, name),
            )
        return acked

    def release(self, name: str, group: str, ids: list[int], ready_at: float) -> None:
        self.load_settings(name)
        self.db.execute(
            f"UPDATE datafx_queue_pending SET consumer = NULL, visible_at = ? "
            f"WHERE queue = ? AND grp = ? AND id IN ({_placeholders(len(ids))})",
            (ready_at, name, group, *ids),
        )

    def untake(self, name: str, group: str, ids: list[int], now: float) -> None:
        """Undo a ``take`` whose caller was cancelled before it got the messages."""
        self.db.execute(
            "UPDATE datafx_queue_pending SET consumer = NULL, visible_at = ?, "
            "delivery_count = delivery_count - 1 "
            f"WHERE queue = ? AND grp = ? AND id IN ({_placeholders(len(ids))})",
            (now, name, group, *ids),
        )

    def extend(
        self,
        name: str,
        group: str,
        consumer: str,
        ids: list[int],
        visibility: float,
        now: float,
    ) -> list[str]:
        self.load_settings(name)
        rows = self.db.execute(
            "UPDATE datafx_queue_pending SET delivered_at = ?, visible_at = "
            "CASE WHEN visible_at IS NULL THEN NULL ELSE ? END "
            "WHERE queue = ? AND grp = ? AND consumer = ? "
            f"AND id IN ({_placeholders(len(ids))}) RETURNING id",
            (now, now + visibility, name, group, consumer, *ids),
        ).fetchall()
        return [str(r[0]) for r in rows]

    def claim(
        self,
        name: str,
        group: str,
        consumer: str,
        min_idle: float,
        count: int,
        visibility: float | None,
        now: float,
    ) -> list[RawMessage]:
        db = self.db
        settings = self.load_settings(name)
        self.group_cursor(name, group)
        self.drop_expired(name, settings, now)
        self.drop_orphans(name)
        self.see_consumer(name, group, consumer, now)
        rows = db.execute(
            "SELECT p.id, p.delivery_count, m.body, m.headers, m.published_at "
            "FROM datafx_queue_pending p JOIN datafx_queue_messages m ON m.id = p.id "
            "WHERE p.queue = ? AND p.grp = ? AND p.delivered_at <= ? "
            "AND (p.consumer IS NOT NULL OR p.visible_at <= ?) ORDER BY p.id LIMIT ?",
            (name, group, now - min_idle, now, count),
        ).fetchall()
        lease_until = None if visibility is None else now + visibility
        db.executemany(
            "UPDATE datafx_queue_pending SET consumer = ?, delivered_at = ?, "
            "visible_at = ?, delivery_count = delivery_count + 1 "
            "WHERE queue = ? AND id = ? AND grp = ?",
            [(consumer, now, lease_until, name, r[0], group) for r in rows],
        )
        return [
            RawMessage(str(r[0]), r[2], r[3], r[4], r[1] + 1, str(r[0])) for r in rows
        ]

    # -- inspecting --------------------------------------------------------

    def entry(self, name: str, order: str) -> RawEntry | None:
        row = self.db.execute(
            "SELECT id, body, headers, published_at FROM datafx_queue_messages "
            f"WHERE queue = ? ORDER BY id {order} LIMIT 1",
            (name,),
        ).fetchone()
        return None if row is None else RawEntry(str(row[0]), row[1], row[2], row[3])

    def info(self, name: str, now: float) -> QueueInfo:
        db = self.db
        settings = self.load_settings(name)
        self.drop_expired(name, settings, now)
        self.drop_orphans(name)
        (length,) = db.execute(
            "SELECT count(*) FROM datafx_queue_messages WHERE queue = ?", (name,)
        ).fetchone()
        last_id = self.last_generated_id(name)
        groups = []
        for group, cursor_id, entries_read in db.execute(
            "SELECT grp, last_id, entries_read FROM datafx_queue_groups "
            "WHERE queue = ? ORDER BY grp",
            (name,),
        ).fetchall():
            (consumers,) = db.execute(
                "SELECT count(*) FROM datafx_queue_consumers "
                "WHERE queue = ? AND grp = ?",
                (name, group),
            ).fetchone()
            (pending,) = db.execute(
                "SELECT count(*) FROM datafx_queue_pending WHERE queue = ? AND grp = ?",
                (name, group),
            ).fetchone()
            (lag,) = db.execute(
                "SELECT count(*) FROM datafx_queue_messages WHERE queue = ? AND id > ?",
                (name, cursor_id),
            ).fetchone()
            groups.append(
                GroupInfo(group, consumers, pending, lag, str(cursor_id), entries_read)
            )
        return QueueInfo(
            name=name,
            stream=settings.stream,
            length=length,
            first_entry=self.entry(name, "ASC"),
            last_entry=self.entry(name, "DESC"),
            last_generated_id=str(last_id),
            groups=groups,
            max_length=settings.max_length,
            message_ttl=settings.message_ttl,
        )

    def trim(self, name: str, max_len: int) -> int:
        self.load_settings(name)
        self.remember_removed(name, self.last_generated_id(name))
        cursor = self.db.execute(
            "DELETE FROM datafx_queue_messages WHERE id IN (SELECT id FROM "
            "datafx_queue_messages WHERE queue = ? ORDER BY id DESC "
            "LIMIT -1 OFFSET ?)",
            (name, max_len),
        )
        removed = cursor.rowcount
        if removed:
            self.drop_orphans(name)
        return removed

    def take_and_version(
        self, *args: Any
    ) -> tuple[list[RawMessage], float | None, int]:
        """Run ``take`` in a transaction, then read ``PRAGMA data_version``.

        The version changes when another connection commits, so a waiting
        fetch compares it to see new messages of other processes.
        """
        taken, next_ready = self.transaction(self.take, *args)
        return taken, next_ready, self.data_version()

    def data_version(self) -> int:
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])


class SqliteQueues:
    """The queue and stream ports of the SQLite backend."""

    def __init__(self, options: SqliteOptions) -> None:
        self._options = options
        self._worker: _Worker | None = None
        self._tables: _Tables | None = None
        self._open_lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup = asyncio.Event()
        self._notifier = _notifier(options.path)
        self._notifier.add(self)

    # -- the worker thread -------------------------------------------------

    def _connect(self) -> _Tables:
        options = self._options
        db = sqlite3.connect(
            options.path,
            isolation_level=None,
            timeout=options.busy_timeout,
            check_same_thread=False,
        )
        try:
            db.execute(f"PRAGMA synchronous = {options.synchronous}")
            if not options.in_memory:
                db.execute("PRAGMA journal_mode = WAL")
            tables = _Tables(db)
            tables.transaction(tables.create_schema)
        except BaseException:
            db.close()
            raise
        return tables

    async def _open(self) -> _Tables:
        if self._tables is not None:
            return self._tables
        async with self._open_lock:
            if self._tables is None:
                self._loop = asyncio.get_running_loop()
                worker = _Worker("datafx-sqlite-queue")
                try:
                    tables = await worker.submit(self._connect)
                except BaseException:
                    worker.stop()
                    raise
                self._worker = worker
                self._tables = tables
        return self._tables

    async def _run(self, fn: Callable[..., R], *args: Any) -> R:
        tables = await self._open()
        assert self._worker is not None
        return await self._worker.submit(tables.transaction, fn, *args)

    def wake(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wakeup.set()
        else:
            loop.call_soon_threadsafe(self._wakeup.set)

    async def close(self) -> None:
        worker, tables = self._worker, self._tables
        self._worker = None
        self._tables = None
        if worker is None or tables is None:
            return
        await worker.submit(tables.db.close)
        worker.stop()

    # -- QueuePort ---------------------------------------------------------

    async def declare(
        self, name: str, config: QueueConfig, *, stream: bool = False
    ) -> bool:
        tables = await self._open()
        settings = _Settings(
            stream,
            config.max_length,
            config.overflow == OVERFLOW_REJECT_PUBLISH,
            config.message_ttl_seconds,
        )
        return await self._run(tables.declare, name, settings, time.time())

    async def exists(self, name: str) -> bool:
        tables = await self._open()
        return await self._run(tables.exists, name)

    async def create_group(self, name: str, group: str, start_id: str) -> bool:
        tables = await self._open()
        return await self._run(tables.create_group, name, group, start_id)

    async def publish(self, name: str, body: bytes, headers: bytes) -> str:
        tables = await self._open()
        assert self._worker is not None
        message_id = await self._worker.submit(
            tables.publish_autocommit, name, body, headers, time.time()
        )
        self._notifier.notify()
        return message_id

    async def _take(
        self,
        tables: _Tables,
        args: tuple[Any, ...],
    ) -> tuple[list[RawMessage], float | None, int]:
        """Run ``take`` so that a cancelled caller never keeps messages leased."""
        assert self._worker is not None
        future = self._worker.submit(tables.take_and_version, *args)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            name, group = args[0], args[1]
            future.add_done_callback(
                lambda done: self._release_after_cancel(
                    tables, name, group, done, lambda result: result[0]
                )
            )
            raise

    async def _claim(self, tables: _Tables, args: tuple[Any, ...]) -> list[RawMessage]:
        """Run ``claim`` so that a cancelled caller never keeps messages leased."""
        assert self._worker is not None
        future = self._worker.submit(tables.transaction, tables.claim, *args)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            name, group = args[0], args[1]
            future.add_done_callback(
                lambda done: self._release_after_cancel(
                    tables, name, group, done, lambda result: result
                )
            )
            raise

    def _release_after_cancel(
        self,
        tables: _Tables,
        name: str,
        group: str,
        done: asyncio.Future[Any],
        messages_of: Callable[[Any], list[RawMessage]],
    ) -> None:
        """Hand back what a cancelled ``fetch`` or ``claim`` leased."""
        if done.cancelled() or done.exception() is not None:
            return
        taken = messages_of(done.result())
        if not taken or self._worker is None:
            return
        ids = [int(m.receipt_handle) for m in taken]
        self._worker.submit_detached(
            tables.transaction, tables.untake, name, group, ids, time.time()
        )

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
        tables = await self._open()
        worker = self._worker
        assert worker is not None
        deadline = time.monotonic() + block
        while True:
            self._wakeup.clear()
            args = (name, group, consumer, count, visibility_timeout, time.time())
            taken, next_ready, version = await self._take(tables, args)
            if taken:
                return taken
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                wait = min(remaining, POLL_INTERVAL)
                if next_ready is not None:
                    wait = min(wait, max(next_ready - time.time(), 0.0))
                try:
                    async with asyncio.timeout(wait):
                        await self._wakeup.wait()
                    break
                except TimeoutError:
                    pass
                if next_ready is not None and next_ready <= time.time():
                    break
                # Another process committed since the take: look again.
                if await worker.submit(tables.data_version) != version:
                    break

    async def ack(self, name: str, group: str, receipt_handles: Sequence[str]) -> int:
        tables = await self._open()
        return await self._run(tables.ack, name, group, _ids(receipt_handles))

    async def release(
        self, name: str, group: str, receipt_handles: Sequence[str], delay: float
    ) -> None:
        tables = await self._open()
        ids = _ids(receipt_handles)
        await self._run(tables.release, name, group, ids, time.time() + delay)
        self._notifier.notify()

    async def extend(
        self,
        name: str,
        group: str,
        consumer: str,
        receipt_handles: Sequence[str],
        visibility_timeout: float,
    ) -> list[str]:
        tables = await self._open()
        ids = _ids(receipt_handles)
        return await self._run(
            tables.extend, name, group, consumer, ids, visibility_timeout, time.time()
        )

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
        tables = await self._open()
        args = (name, group, consumer, min_idle, count, visibility_timeout, time.time())
        return await self._claim(tables, args)

    async def info(self, name: str) -> QueueInfo:
        tables = await self._open()
        return await self._run(tables.info, name, time.time())

    async def trim(self, name: str, max_len: int) -> int:
        tables = await self._open()
        return await self._run(tables.trim, name, max_len)
