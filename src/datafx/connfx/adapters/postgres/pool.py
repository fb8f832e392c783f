"""The asyncpg pool: creation from options, bounded acquire and cheap release.

asyncpg's default release runs a reset query (``RESET ALL; UNLISTEN *; ...``),
one more round trip per borrowed connection. datafx's own statements never
change session state, so connections they borrowed skip that query; any other
borrower (the ``raw`` pool, the query port) gets the full reset.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from datafx.connfx.adapters.sqlbase.options import SqlOptions
from datafx.connfx.config import ConfigTarget
from datafx.connfx.errors import InvalidConfigError, PoolTimeoutError

__all__ = ["PostgresPool", "TrackedConnection", "connect_arguments"]


class TrackedConnection(asyncpg.Connection):  # type: ignore[misc]
    """An asyncpg connection that records whether its session state is untouched."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.datafx_clean = False

    def mark_clean(self) -> None:
        """Skip the reset query at the next release (datafx statements only)."""
        self.datafx_clean = True


async def _reset(connection: TrackedConnection) -> None:
    # asyncpg has already rolled back any open transaction at this point.
    if connection.datafx_clean:
        connection.datafx_clean = False
        return
    await connection.reset()


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
    """An asyncpg pool whose ``acquire`` gives up after ``timeout`` seconds."""

    def __init__(self, pool: asyncpg.Pool, size: int, timeout: float) -> None:
        self.pool = pool
        self.size = size
        self.timeout = timeout

    @classmethod
    async def open(cls, target: ConfigTarget, options: SqlOptions) -> PostgresPool:
        pool = await asyncpg.create_pool(
            min_size=options.pool_min,
            max_size=options.pool_size,
            connection_class=TrackedConnection,
            reset=_reset,
            **connect_arguments(target, options),
        )
        return cls(pool, options.pool_size, options.pool_timeout)

    async def borrow(self) -> Any:
        """Return a pooled connection; raise ``PoolTimeoutError`` when none frees up."""
        try:
            return await self.pool.acquire(timeout=self.timeout)
        except TimeoutError:
            raise PoolTimeoutError(
                f"no PostgreSQL connection became free within {self.timeout:g}s: "
                f"all {self.size} pooled connections are in use; raise the "
                "pool_size option or hold connections for less time",
                protocol="postgres",
                operation="acquire",
            ) from None

    async def give_back(self, connection: Any, *, clean: bool) -> None:
        """Return ``connection`` to the pool; ``clean`` skips the reset query."""
        if clean:
            connection.mark_clean()
        await self.pool.release(connection)

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        """Borrow a connection for datafx statements that leave no session state."""
        connection = await self.borrow()
        try:
            yield connection
        finally:
            await self.give_back(connection, clean=True)

    def state(self) -> dict[str, object]:
        pool = self.pool
        return {
            "pool_size": pool.get_size(),
            "pool_idle": pool.get_idle_size(),
            "pool_min": pool.get_min_size(),
            "pool_max": pool.get_max_size(),
        }

    async def close(self) -> None:
        await self.pool.close()
