"""The PostgreSQL connection (asyncpg) and its factory.

``postgres://user:password@host:5432/database?pool_size=20&table_prefix=app_``.
Options may also come from ``ConfigTarget.properties``; see
:mod:`datafx.connfx.adapters.sqlbase.options` for the list.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from datafx.connfx.adapters.postgres.kv import PostgresKeyValue
from datafx.connfx.adapters.postgres.listener import Wakeups, channel_name
from datafx.connfx.adapters.postgres.pool import PostgresPool, connect_arguments
from datafx.connfx.adapters.postgres.query import PostgresQuery
from datafx.connfx.adapters.postgres.queue import PostgresQueues
from datafx.connfx.adapters.postgres.schema import (
    KV_MIGRATIONS,
    QUEUE_MIGRATIONS,
    migrate,
)
from datafx.connfx.adapters.postgres.transactions import PostgresTransactional
from datafx.connfx.adapters.sqlbase.errors import text_without_password
from datafx.connfx.adapters.sqlbase.lazy import Once
from datafx.connfx.adapters.sqlbase.names import POSTGRES, TableNames
from datafx.connfx.adapters.sqlbase.options import (
    SqlOptions,
    known_options,
    parse_options,
)
from datafx.connfx.adapters.sqlbase.sweeper import ExpirySweeper
from datafx.connfx.behaviors import Behavior, ConnectionState
from datafx.connfx.config import ConfigTarget
from datafx.connfx.connection import Connection
from datafx.connfx.errors import BackendError, InvalidConfigError

__all__ = ["PostgresConnection", "PostgresFactory"]

KNOWN_OPTIONS = known_options()
# Table suffixes datafx may create; checked for length when the connection opens.
TABLE_SUFFIXES = (
    "kv",
    "kv_expires_at",
    "schema_version",
    "queues",
    "queue_messages",
    "queue_groups",
    "queue_pending",
    "queue_consumers",
)


class PostgresConnection(Connection):
    """A pool of asyncpg connections: key-values, cache, transactions, SQL, queues."""

    protocol = "postgres"
    behaviors = frozenset(
        {
            Behavior.KEY_VALUE,
            Behavior.CACHE,
            Behavior.TRANSACTIONAL,
            Behavior.RELATIONAL,
            Behavior.QUEUE,
            Behavior.STREAMING,
            Behavior.STATEFUL,
        }
    )

    def __init__(
        self,
        name: str,
        target: ConfigTarget,
        pool: PostgresPool,
        options: SqlOptions,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(name, target, logger)
        self.options = options
        self.names = TableNames(
            POSTGRES, options.schema or "public", options.table_prefix
        )
        self._pool = pool
        self._kv_ready = Once(self._create_kv_tables)
        kv = PostgresKeyValue(pool, self.names, self._kv_ready)
        self.key_value = kv
        self.cache = kv
        self.transactional = PostgresTransactional(
            pool, self.names, self._kv_ready, options.isolation
        )
        self.relational = PostgresQuery(pool)
        self._wakeups = Wakeups(
            connect_arguments(target, options), channel_name(self.names), self.logger
        )
        self._queue_ready = Once(self._create_queue_tables)
        queues = PostgresQueues(pool, self.names, self._queue_ready, self._wakeups)
        self.queue = queues
        self.stream = queues
        self._sweeper = ExpirySweeper(
            kv.delete_expired,
            interval=options.cleanup_interval,
            batch=options.cleanup_batch,
            logger=self.logger,
            name=f"datafx-postgres-sweeper-{name}",
        )
        self.state = ConnectionState.READY

    @property
    def raw(self) -> PostgresPool:
        """The connection pool: ``acquire()`` lends an ``asyncpg.Connection``."""
        return self._pool

    @property
    def sweeper(self) -> ExpirySweeper:
        """The background task that removes expired key-value rows."""
        return self._sweeper

    async def _create_kv_tables(self) -> None:
        await migrate(self._pool, self.names, "kv", KV_MIGRATIONS, self.logger)
        self._sweeper.start()

    async def _create_queue_tables(self) -> None:
        await migrate(self._pool, self.names, "queue", QUEUE_MIGRATIONS, self.logger)

    async def ensure_tables(self) -> None:
        """Create or upgrade every datafx table now instead of on first use."""
        await self._kv_ready.ensure()
        await self._queue_ready.ensure()

    async def query(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        """Run SQL that returns rows, with ``$1, $2, ...`` bound to ``args``."""
        self.check_open()
        return await self.relational.query(sql, *args)  # type: ignore[union-attr]

    async def execute(self, sql: str, *args: Any) -> int:
        """Run SQL with ``$1, $2, ...`` bound to ``args``; return the row count."""
        self.check_open()
        return await self.relational.execute(sql, *args)  # type: ignore[union-attr]

    async def ping(self) -> None:
        self.check_open()
        async with self._pool.acquire() as connection:
            await connection.fetchval("SELECT 1")

    def health_details(self) -> dict[str, object]:
        return self._pool.state()

    async def _close(self) -> None:
        await self._sweeper.stop()
        await self._wakeups.close()
        await self._pool.close()


class PostgresFactory:
    """Opens :class:`PostgresConnection` objects (``postgres://``, ``postgresql://``)."""

    protocol = "postgres"

    async def create(
        self, name: str, target: ConfigTarget, logger: logging.Logger | None
    ) -> PostgresConnection:
        options = parse_options(target, "PostgreSQL", KNOWN_OPTIONS)
        names = TableNames(POSTGRES, options.schema or "public", options.table_prefix)
        names.validate(TABLE_SUFFIXES)
        try:
            pool = await PostgresPool.open(target, options)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            raise BackendError(
                f"cannot connect to PostgreSQL at {target.masked_location()!r}: "
                f"{type(exc).__name__}: {text_without_password(exc, target)}; "
                "check that the server runs and the DSN's host, port, user "
                "and database",
                protocol="postgres",
                operation="connect",
            ) from exc
        except asyncpg.InterfaceError as exc:
            raise InvalidConfigError(
                f"invalid PostgreSQL settings for {target.masked_location()!r}: {exc}"
            ) from exc
        return PostgresConnection(name, target, pool, options, logger)
