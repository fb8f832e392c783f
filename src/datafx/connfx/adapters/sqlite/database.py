"""One open SQLite database: writer and reader connections and the write gate.

Every port of the SQLite adapter (key-values here; queue and stream tables can
attach the same way) runs its statements through :class:`SqliteDatabase`:

- ``fetch(sql, parameters)`` reads outside any transaction. For a file it uses
  the reader connection, which WAL lets run while the writer writes.
- ``write(sql, parameters)`` runs one autocommit statement on the writer.
- ``transaction()`` (or ``begin``/``commit``/``rollback``) keeps the writer in
  a ``BEGIN IMMEDIATE`` transaction, and statements inside go to ``writer``.

aiosqlite runs each connection's statements on its own thread, one at a time,
in the order they were queued, so statements never block the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

import aiosqlite

from datafx.connfx.adapters.sqlite.options import SqliteOptions, check_database_path
from datafx.connfx.errors import InvalidConfigError, TransactionFailedError

__all__ = ["FetchRows", "SqliteDatabase", "WriteGate", "is_busy"]

# Runs a SELECT with bound parameters and returns every row as a tuple.
FetchRows = Callable[[str, Sequence[Any]], Awaitable[list[tuple[Any, ...]]]]

_logger = logging.getLogger("datafx.connfx.sqlite")

# Primary result codes (the low byte of an extended code) that mean another
# connection holds a lock; retrying later may succeed.
_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})

# Codes that mean the path cannot hold a writable database.
_BAD_PATH_CODES = frozenset(
    {
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_PERM,
        sqlite3.SQLITE_NOTADB,
        sqlite3.SQLITE_IOERR,
    }
)


def _primary_code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def is_busy(exc: BaseException) -> bool:
    """Return whether ``exc`` is SQLite's "database is locked" (busy or locked)."""
    return _primary_code(exc) in _BUSY_CODES


def _no_transaction(exc: BaseException) -> bool:
    return "no transaction is active" in str(exc)


class WriteGate:
    """Shared or exclusive use of the writer connection.

    An autocommit statement holds the gate shared: any number may be queued on
    the writer's thread at once, and each commits by itself. A transaction
    holds it exclusive: it waits until the queued shared statements have run
    and keeps new ones waiting until it ends, so no unrelated statement lands
    inside it. Transactions take turns in FIFO order.
    """

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._shared = 0
        self._drained: asyncio.Future[None] | None = None
        self._owner: asyncio.Task[Any] | None = None

    @property
    def exclusive(self) -> bool:
        """Whether a transaction holds the gate or waits for it."""
        return self._lock.locked()

    async def acquire_shared(self) -> None:
        if self._lock.locked():
            if self._owner is not None and self._owner is asyncio.current_task():
                raise RuntimeError(
                    "a statement outside the transaction was started by the task "
                    "that holds the transaction, and would wait for its own "
                    "commit forever; run it through the transaction object (tx)"
                )
            async with self._lock:
                pass
        self._shared += 1

    def release_shared(self) -> None:
        self._shared -= 1
        drained = self._drained
        if not self._shared and drained is not None and not drained.done():
            drained.set_result(None)

    async def acquire_exclusive(self) -> None:
        if self._owner is not None and self._owner is asyncio.current_task():
            raise RuntimeError(
                "a transaction was started inside another transaction of the "
                "same task on the same connection, and would wait for the outer "
                "commit forever; finish the outer transaction first"
            )
        await self._lock.acquire()
        try:
            while self._shared:
                self._drained = asyncio.get_running_loop().create_future()
                await self._drained
        except BaseException:
            self._lock.release()
            raise
        finally:
            self._drained = None
        self._owner = asyncio.current_task()

    def release_exclusive(self) -> None:
        self._owner = None
        self._lock.release()


class SqliteDatabase:
    """One SQLite file (or ``:memory:`` database) opened by one datafx connection.

    ``writer`` runs every write and every transaction; use it directly only
    inside :meth:`transaction`. ``reader`` serves reads outside transactions
    and is the same connection as ``writer`` for ``:memory:``, where a second
    connection would open a second, empty database. There, reads outside a
    transaction hold the write gate shared, so they wait for an open
    transaction to end instead of seeing its uncommitted writes.
    """

    def __init__(
        self,
        options: SqliteOptions,
        writer: aiosqlite.Connection,
        reader: aiosqlite.Connection,
        journal_mode: str,
    ) -> None:
        self.options = options
        self.writer = writer
        self.reader = reader
        self.journal_mode = journal_mode
        self.gate = WriteGate()
        self._tasks: set[asyncio.Task[None]] = set()
        # Read statements outside transactions. aiosqlite's execute_fetchall
        # returns a list; binding it directly saves a coroutine per read.
        self.fetch: FetchRows = (
            self._fetch_gated
            if reader is writer
            else cast(FetchRows, reader.execute_fetchall)
        )

    @property
    def path(self) -> str:
        """Absolute path of the database file, or ``:memory:``."""
        return self.options.path

    @classmethod
    async def open(cls, options: SqliteOptions) -> SqliteDatabase:
        """Open the writer (and for a file the reader) with WAL and the pragmas.

        Raises ``InvalidConfigError`` naming the path when the file cannot be
        opened for writing or is not a SQLite database.
        """
        check_database_path(options.path)
        opened: list[aiosqlite.Connection] = []
        try:
            if not options.in_memory:
                # A failed open inside aiosqlite leaves its worker thread to
                # report to the event loop later, after the loop may be closed,
                # so the file is opened once here first, where a failure is
                # raised cleanly. This creates the file when it is missing.
                await asyncio.to_thread(_open_once, options.path)
            writer = await _connect(options, opened)
            journal_mode = await _enable_wal(writer, options)
            if options.in_memory:
                reader = writer
            else:
                reader = await _connect(options, opened)
                await reader.execute("PRAGMA query_only = ON")
        except BaseException as exc:
            for connection in reversed(opened):
                await _close_quietly(connection)
            if isinstance(exc, sqlite3.Error) and _primary_code(exc) in _BAD_PATH_CODES:
                raise InvalidConfigError(
                    f"cannot open SQLite database {options.path!r}: {exc}; check "
                    "that the file is a SQLite database and that this process can "
                    "write to it and to its folder"
                ) from exc
            raise
        return cls(options, writer, reader, journal_mode)

    # -- statements ------------------------------------------------------

    async def _fetch_gated(self, sql: str, parameters: Sequence[Any]) -> list[Any]:
        gate = self.gate
        await gate.acquire_shared()
        try:
            return await cast(FetchRows, self.writer.execute_fetchall)(sql, parameters)
        finally:
            gate.release_shared()

    async def write(self, sql: str, parameters: Sequence[Any]) -> int:
        """Run one autocommit statement on the writer; return the changed row count.

        Waits while a transaction holds the writer.
        """
        gate = self.gate
        await gate.acquire_shared()
        try:
            cursor = await self.writer.execute(sql, parameters)
        finally:
            gate.release_shared()
        return cursor.rowcount

    # -- transactions ----------------------------------------------------

    async def begin(self) -> None:
        """Take the writer exclusively and start a ``BEGIN IMMEDIATE`` transaction.

        Raises ``TransactionFailedError(retryable=True)`` when another
        connection holds the write lock for longer than ``busy_timeout``.
        The caller must end the transaction with :meth:`commit` or :meth:`rollback`.
        """
        await self.gate.acquire_exclusive()
        try:
            await self.writer.execute("BEGIN IMMEDIATE")
        except asyncio.CancelledError:
            # BEGIN may still be waiting on the writer's thread for another
            # connection's lock, for up to busy_timeout. A ROLLBACK queued
            # after it undoes it, and only then opens the gate; it runs in the
            # background so that the cancellation is not delayed.
            self.start_task(self.rollback_logged(), name="datafx-sqlite-rollback")
            raise
        except BaseException as exc:
            self.gate.release_exclusive()
            if is_busy(exc):
                raise TransactionFailedError(
                    f"cannot start a write transaction on {self.path!r}: another "
                    f"connection held the write lock for more than "
                    f"{self.options.busy_timeout:g}s (busy_timeout); retry, or "
                    "raise busy_timeout",
                    retryable=True,
                ) from exc
            raise

    async def commit(self) -> None:
        """Commit the transaction and release the writer.

        On failure the transaction is rolled back and ``TransactionFailedError``
        is raised, retryable when the cause was a lock held by another
        connection. A COMMIT already queued when the caller is cancelled may
        still succeed. A ROLLBACK follows it either way, so the writer is
        clean for the next user.
        """
        try:
            await self.writer.execute("COMMIT")
        except asyncio.CancelledError:
            await asyncio.shield(self.rollback_logged())
            raise
        except Exception as exc:
            await self.rollback_logged()
            raise TransactionFailedError(
                f"commit failed on SQLite database {self.path!r}: {exc}",
                retryable=is_busy(exc),
            ) from exc
        self.gate.release_exclusive()

    async def rollback(self) -> None:
        """Roll the transaction back and release the writer, even if ROLLBACK fails."""
        try:
            await self.writer.execute("ROLLBACK")
        except sqlite3.OperationalError as exc:
            if not _no_transaction(exc):
                raise
        finally:
            self.gate.release_exclusive()

    async def rollback_logged(self) -> None:
        """Like :meth:`rollback`, but log a failure instead of raising it."""
        try:
            await self.rollback()
        except Exception as exc:
            _logger.warning(
                "rollback on SQLite database %r failed: %s: %s",
                self.path,
                type(exc).__name__,
                exc,
            )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """Yield the writer inside a ``BEGIN IMMEDIATE`` transaction.

        Commits when the block ends and rolls back when it raises or is
        cancelled. For adapters that keep their own tables in this database.
        """
        await self.begin()
        try:
            yield self.writer
        except BaseException:
            await asyncio.shield(self.rollback_logged())
            raise
        await self.commit()

    # -- lifecycle -------------------------------------------------------

    def start_task(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run a background coroutine until it returns or the database closes."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop the background tasks, then close the reader and the writer."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.reader is not self.writer:
            await self.reader.close()
        await self.writer.close()


async def _connect(
    options: SqliteOptions, opened: list[aiosqlite.Connection]
) -> aiosqlite.Connection:
    # isolation_level=None: autocommit, with transactions started explicitly.
    # timeout: SQLite's busy timeout, so a locked file waits instead of failing.
    connection = aiosqlite.connect(
        options.path, isolation_level=None, timeout=options.busy_timeout
    )
    opened.append(connection)
    await connection
    await connection.execute(f"PRAGMA synchronous = {options.synchronous}")
    return connection


def _open_once(path: str) -> None:
    sqlite3.connect(path).close()


async def _enable_wal(connection: aiosqlite.Connection, options: SqliteOptions) -> str:
    """Switch the file to WAL (a persistent setting) and return the journal mode."""
    rows = list(await connection.execute_fetchall("PRAGMA journal_mode"))
    mode = str(rows[0][0]).lower()
    if mode == "wal" or options.in_memory:
        return mode
    # Changing the journal mode upgrades a shared lock to an exclusive one. When
    # two processes switch a new file at the same moment, SQLite breaks that
    # deadlock by failing one at once with "database is locked", without
    # calling the busy handler, so the switch is retried until busy_timeout.
    deadline = time.monotonic() + max(options.busy_timeout, 0.1)
    while True:
        try:
            rows = list(await connection.execute_fetchall("PRAGMA journal_mode = WAL"))
            break
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.01)
    mode = str(rows[0][0]).lower()
    if mode != "wal":
        _logger.warning(
            "SQLite database %r stays in journal mode %r because WAL is not "
            "available there; readers will wait for writers",
            options.path,
            mode,
        )
    return mode


async def _close_quietly(connection: aiosqlite.Connection) -> None:
    try:
        await connection.close()
    except Exception as exc:
        _logger.debug("closing a half-open SQLite connection failed: %s", exc)
