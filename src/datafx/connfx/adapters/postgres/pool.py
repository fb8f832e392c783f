"""A lean pool of asyncpg connections: bounded acquire, cheap release.

asyncpg's own ``Pool`` wraps each acquire and release in extra tasks
(``wait_for`` and ``shield``) and, by default, sends a reset query on every
release. With one short statement per borrow, that halved the call rate in
``benchmarks/sql_bench.py``. datafx therefore keeps its connections in a
plain LIFO list: borrowing a free connection and giving it back involve no
task, no timer and no round trip. Connections that ran caller SQL (the query
port, ``raw``) get asyncpg's full ``reset()`` before they are lent again, and
a connection whose statement was cancelled is closed rather than reused.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from datafx.connfx.adapters.sqlbase.options import SqlOptions
from datafx.connfx.config import ConfigTarget
from datafx.connfx.errors import (
    ConnectionClosedError,
    InvalidConfigError,
    PoolTimeoutError,
)

__all__ = ["PooledStatements", "PostgresPool", "connect_arguments"]

_logger = logging.getLogger("datafx.connfx.postgres")


def _ssl_argument(target: ConfigTarget, options: SqlOptions) -> Any:
    """Return asyncpg's ``ssl`` argument: ``None``, an sslmode name or a context."""
    mode = options.sslmode
    if mode is None and target.parsed().tls:
        mode = "verify-full"
    if mode is None:
        return None
    has_files = target.ca_file or target.cert_file or target.key_file
    if mode in ("disable", "prefer") or (not has_files and not target.tls_skip_verify):
        return mode
    context = ssl.create_default_context(cafile=target.ca_file)
    if target.cert_file:
        context.load_cert_chain(target.cert_file, target.key_file)
    if target.tls_skip_verify or mode == "require":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif mode == "verify-ca":
        context.check_hostname = False
    return context


def connect_arguments(target: ConfigTarget, options: SqlOptions) -> dict[str, Any]:
    """Return the keyword arguments of ``asyncpg.connect`` for ``target``."""
    parsed = target.parsed()
    hosts = parsed.hosts if len(parsed.hosts) > 1 else ()
    arguments: dict[str, Any] = {
        "host": [h for h, _ in hosts] if hosts else (parsed.host or "127.0.0.1"),
        "port": [p or 5432 for _, p in hosts] if hosts else (parsed.port or 5432),
        "user": parsed.username or "postgres",
        "password": parsed.password,
        "database": parsed.database or None,
        "timeout": options.connect_timeout,
        "command_timeout": options.command_timeout,
        "statement_cache_size": options.statement_cache_size,
        "server_settings": {"application_name": options.application_name},
    }
    try:
        arguments["ssl"] = _ssl_argument(target, options)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidConfigError(
            f"cannot load the TLS files of {target.masked_location()!r}: {exc}"
        ) from exc
    return arguments


class PostgresPool:
    """At most ``size`` asyncpg connections; ``borrow`` waits ``timeout`` seconds.

    This object is also what ``PostgresConnection.raw`` returns: ``acquire()``
    lends an ``asyncpg.Connection``, and ``fetch``, ``fetchrow``, ``fetchval``
    and ``execute`` run one statement on a pooled connection.
    """

    def __init__(self, arguments: dict[str, Any], size: int, timeout: float) -> None:
        self._arguments = arguments
        self.size = size
        self.timeout = timeout
        self._idle: deque[Any] = deque()
        self._members: set[Any] = set()
        self._opening = 0
        self._waiters: deque[asyncio.Future[Any]] = deque()
        self._closed = False

    @classmethod
    async def open(cls, target: ConfigTarget, options: SqlOptions) -> PostgresPool:
        """Open the pool with ``pool_min`` connections (at least one, to fail early)."""
        pool = cls(
            connect_arguments(target, options), options.pool_size, options.pool_timeout
        )
        try:
            for _ in range(max(options.pool_min, 1)):
                pool._idle.append(await pool._connect())
        except BaseException:
            await pool.close()
            raise
        return pool

    async def _connect(self) -> Any:
        self._opening += 1
        try:
            connection = await asyncpg.connect(**self._arguments)
        finally:
            self._opening -= 1
        self._members.add(connection)
        return connection

    async def borrow(self) -> Any:
        """Return a connection; raise ``PoolTimeoutError`` if none frees up in time."""
        while self._idle:
            connection = self._idle.pop()
            if not connection.is_closed():
                return connection
            self._members.discard(connection)
        if self._closed:
            raise ConnectionClosedError("the PostgreSQL pool is closed")
        if len(self._members) + self._opening < self.size:
            return await self._connect()
        return await self._wait()

    async def _wait(self) -> Any:
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.timeout):
                handed = await waiter
        except TimeoutError:
            raise PoolTimeoutError(
                f"no PostgreSQL connection became free within {self.timeout:g}s: "
                f"all {self.size} pooled connections are in use; raise the "
                "pool_size option or hold connections for less time",
                protocol="postgres",
                operation="acquire",
            ) from None
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                self._hand_over(waiter.result())
            raise
        finally:
            if not waiter.done():
                waiter.cancel()
        # None means a slot was freed (a connection was discarded): open one.
        return handed if handed is not None else await self.borrow()

    def _hand_over(self, connection: Any | None) -> None:
        """Give a free connection (or a freed slot, as None) to the oldest waiter."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        if connection is not None:
            self._idle.append(connection)

    def discard(self, connection: Any) -> None:
        """Close ``connection`` at once and free its slot for a new one."""
        # NOTE: terminating a connection whose statement was cancelled makes
        # asyncpg fail that statement's internal future, which nobody awaits,
        # so asyncio may log "Future exception was never retrieved" at garbage
        # collection. The log line is harmless: the caller was cancelled and
        # nothing of the statement is reused.
        self._members.discard(connection)
        if not connection.is_closed():
            connection.terminate()
        self._hand_over(None)

    async def give_back(self, connection: Any, *, clean: bool) -> None:
        """Return ``connection``, resetting it first when it ran caller SQL."""
        if self._closed or connection.is_closed():
            self.discard(connection)
            return
        if not clean or connection.is_in_transaction():
            try:
                await connection.reset()
            except asyncio.CancelledError:
                self.discard(connection)
                raise
            except Exception as exc:
                # Busy with a cancelled statement, or broken: replace it.
                _logger.debug("resetting a PostgreSQL connection failed: %s", exc)
                self.discard(connection)
                return
        self._hand_over(connection)

    def release_clean(self, connection: Any) -> bool:
        """Return a clean ``connection`` now; ``False`` when it needs ``give_back``."""
        if self._closed or connection.is_closed() or connection.is_in_transaction():
            return False
        self._hand_over(connection)
        return True

    @asynccontextmanager
    async def lend(self, *, clean: bool) -> AsyncIterator[Any]:
        connection = await self.borrow()
        try:
            yield connection
        except asyncio.CancelledError:
            # The statement may still run on the server: never reuse it.
            self.discard(connection)
            raise
        except BaseException:
            await self.give_back(connection, clean=clean)
            raise
        await self.give_back(connection, clean=clean)

    def acquire(self) -> Any:
        """Lend a connection for datafx statements that leave no session state."""
        return self.lend(clean=True)

    # -- the raw interface ------------------------------------------------

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        async with self.lend(clean=False) as connection:
            return list(await connection.fetch(sql, *args))

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        async with self.lend(clean=False) as connection:
            return await connection.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        async with self.lend(clean=False) as connection:
            return await connection.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> str:
        async with self.lend(clean=False) as connection:
            status: str = await connection.execute(sql, *args)
        return status

    def get_size(self) -> int:
        return len(self._members)

    def get_idle_size(self) -> int:
        return len(self._idle)

    def state(self) -> dict[str, object]:
        return {
            "pool_size": len(self._members),
            "pool_idle": len(self._idle),
            "pool_max": self.size,
            "pool_waiting": sum(not w.done() for w in self._waiters),
        }

    async def close(self) -> None:
        """Close idle connections politely and terminate borrowed ones."""
        self._closed = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(
                    ConnectionClosedError(
                        "the PostgreSQL pool was closed while waiting"
                    )
                )
        self._waiters.clear()
        idle, self._idle = list(self._idle), deque()
        for connection in idle:
            self._members.discard(connection)
            try:
                await connection.close(timeout=2)
            except Exception as exc:
                _logger.debug("closing a pooled PostgreSQL connection failed: %s", exc)
                connection.terminate()
        for connection in list(self._members):
            connection.terminate()
        self._members.clear()


class PooledStatements:
    """Runs each datafx statement on a connection borrowed for that statement only.

    It offers the statement methods of ``asyncpg.Connection`` (``fetch``,
    ``fetchrow``, ``fetchval``, ``execute``), so code written for a connection
    runs unchanged on the pool. This is the hot path of every key-value call:
    no context manager and no extra task between the caller and asyncpg.
    """

    __slots__ = ("_pool",)

    def __init__(self, pool: PostgresPool) -> None:
        self._pool = pool

    async def _run(self, method: str, sql: str, args: tuple[Any, ...]) -> Any:
        pool = self._pool
        connection = await pool.borrow()
        try:
            result = await getattr(connection, method)(sql, *args)
        except asyncio.CancelledError:
            # The statement may still run on the server: never reuse it.
            pool.discard(connection)
            raise
        except BaseException:
            await pool.give_back(connection, clean=True)
            raise
        if not pool.release_clean(connection):
            await pool.give_back(connection, clean=True)
        return result

    async def fetch(self, sql: str, *args: Any) -> Any:
        return await self._run("fetch", sql, args)

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        return await self._run("fetchrow", sql, args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self._run("fetchval", sql, args)

    async def execute(self, sql: str, *args: Any) -> Any:
        return await self._run("execute", sql, args)
