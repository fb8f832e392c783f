"""The MySQL and MariaDB connection (asyncmy) and its factory.

``mysql://user:password@host:3306/database?pool_size=20&table_prefix=app_``
(``mariadb://`` is the same). The tables live in the DSN's database unless
the ``schema`` option names another one. Options may also come from
``ConfigTarget.properties``; see :mod:`datafx.connfx.adapters.sqlbase.options`.
"""

from __future__ import annotations

import logging
from typing import Any

from asyncmy.errors import MySQLError

from datafx.connfx.adapters.mysql.kv import KvOperations, KvStatements, MySqlKeyValue
from datafx.connfx.adapters.mysql.pool import MySqlPool, fetch
from datafx.connfx.adapters.mysql.query import MySqlQuery
from datafx.connfx.adapters.mysql.queue import MySqlQueues
from datafx.connfx.adapters.mysql.schema import (
    KV_MIGRATIONS,
    QUEUE_MIGRATIONS,
    migrate,
)
from datafx.connfx.adapters.mysql.transactions import MySqlTransactional
from datafx.connfx.adapters.sqlbase.errors import text_without_password
from datafx.connfx.adapters.sqlbase.lazy import Once
from datafx.connfx.adapters.sqlbase.names import MYSQL, TableNames
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

__all__ = ["MySqlConnection", "MySqlFactory"]

# asyncpg-only settings.
KNOWN_OPTIONS = known_options(exclude=("statement_cache_size",))
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


class MySqlConnection(Connection):
    """A pool of asyncmy connections: key-values, cache, transactions, SQL, queues."""

    protocol = "mysql"
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
        pool: MySqlPool,
        options: SqlOptions,
        names: TableNames,
        max_packet: int,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(name, target, logger)
        self.options = options
        self.names = names
        self._pool = pool
        self._kv_ready = Once(self._create_kv_tables)
        kv = MySqlKeyValue(
            pool, KvOperations(KvStatements.build(names), max_packet), self._kv_ready
        )
        self.key_value = kv
        self.cache = kv
        self.transactional = MySqlTransactional(
            pool,
            KvOperations(KvStatements.build(names, lock=" FOR UPDATE"), max_packet),
            self._kv_ready,
            options.isolation,
        )
        self.relational = MySqlQuery(pool)
        self._queue_ready = Once(self._create_queue_tables)
        queues = MySqlQueues(pool, names, self._queue_ready)
        self.queue = queues
        self.stream = queues
        self._sweeper = ExpirySweeper(
            kv.delete_expired,
            interval=options.cleanup_interval,
            batch=options.cleanup_batch,
            logger=self.logger,
            name=f"datafx-mysql-sweeper-{name}",
        )
        self.state = ConnectionState.READY

    @property
    def raw(self) -> Any:
        """The asyncmy pool."""
        return self._pool.pool

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
        """Run SQL that returns rows, with ``%s`` placeholders bound to ``args``."""
        self.check_open()
        return await self.relational.query(sql, *args)  # type: ignore[union-attr]

    async def execute(self, sql: str, *args: Any) -> int:
        """Run SQL with ``%s`` placeholders bound to ``args``; return the row count."""
        self.check_open()
        return await self.relational.execute(sql, *args)  # type: ignore[union-attr]

    async def ping(self) -> None:
        self.check_open()
        async with self._pool.acquire() as connection:
            await fetch(connection, "SELECT 1")

    def health_details(self) -> dict[str, object]:
        return self._pool.state()

    async def _close(self) -> None:
        await self._sweeper.stop()
        await self._pool.close()


class MySqlFactory:
    """Opens :class:`MySqlConnection` objects (``mysql://``, ``mariadb://``)."""

    protocol = "mysql"

    async def create(
        self, name: str, target: ConfigTarget, logger: logging.Logger | None
    ) -> MySqlConnection:
        options = parse_options(target, "MySQL", KNOWN_OPTIONS)
        schema = options.schema or target.parsed().database
        if not schema:
            raise InvalidConfigError(
                f"MySQL DSN {target.masked_location()!r} names no database; "
                "add one (mysql://host:3306/mydb) or set the schema option"
            )
        names = TableNames(MYSQL, schema, options.table_prefix)
        names.validate(TABLE_SUFFIXES)
        try:
            pool = await MySqlPool.open(target, options)
            async with pool.acquire() as connection:
                rows = await fetch(connection, "SELECT @@max_allowed_packet")
        except (OSError, MySQLError, TimeoutError) as exc:
            raise BackendError(
                f"cannot connect to MySQL at {target.masked_location()!r}: "
                f"{type(exc).__name__}: {text_without_password(exc, target)}; "
                "check that the server runs and the DSN's host, port, user "
                "and database",
                protocol="mysql",
                operation="connect",
            ) from exc
        return MySqlConnection(
            name, target, pool, options, names, int(rows[0][0]), logger
        )
