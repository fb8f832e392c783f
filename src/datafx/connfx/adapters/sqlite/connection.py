"""The SQLite connection and its factory (``sqlite:///path.db``, ``sqlite://:memory:``)."""

from __future__ import annotations

import logging

import aiosqlite

from datafx.connfx.adapters.sqlite.database import SqliteDatabase
from datafx.connfx.adapters.sqlite.kv import (
    KvStatements,
    SqliteKeyValue,
    SqliteTransactional,
    create_kv_schema,
    sweep_expired,
)
from datafx.connfx.adapters.sqlite.options import SqliteOptions, parse_options
from datafx.connfx.adapters.sqlite.queue import SqliteQueues
from datafx.connfx.behaviors import Behavior, ConnectionState
from datafx.connfx.config import ConfigTarget
from datafx.connfx.connection import Connection

__all__ = ["SqliteConnection", "SqliteFactory"]


class SqliteConnection(Connection):
    """A durable embedded backend: one SQLite file shared by any number of processes.

    ``database`` gives other ports of this adapter the path, the writer
    connection with its write gate, and write transactions.
    """

    protocol = "sqlite"
    behaviors = frozenset(
        {
            Behavior.KEY_VALUE,
            Behavior.CACHE,
            Behavior.TRANSACTIONAL,
            Behavior.QUEUE,
            Behavior.STREAMING,
            Behavior.STATEFUL,
        }
    )

    def __init__(
        self,
        name: str,
        target: ConfigTarget,
        database: SqliteDatabase,
        statements: KvStatements,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(name, target, logger)
        self.database = database
        kv = SqliteKeyValue(database, statements)
        self.key_value = kv
        self.cache = kv
        self.transactional = SqliteTransactional(database, statements)
        # Queue tables use their own connection, opened on first use.
        self.queues = SqliteQueues(database.options)
        self.queue = self.queues
        self.stream = self.queues
        self.state = ConnectionState.READY

    @property
    def options(self) -> SqliteOptions:
        return self.database.options

    @property
    def raw(self) -> aiosqlite.Connection:
        """The writer connection; writes through it outside ``database.transaction()``
        race with datafx's own transactions."""
        return self.database.writer

    async def ping(self) -> None:
        self.check_open()
        await self.database.fetch("SELECT 1", ())

    def health_details(self) -> dict[str, object]:
        options = self.database.options
        return {
            "path": options.path,
            "journal_mode": self.database.journal_mode,
            "synchronous": options.synchronous,
            "busy_timeout": options.busy_timeout,
        }

    async def _close(self) -> None:
        await self.queues.close()
        await self.database.close()


class SqliteFactory:
    """Opens :class:`SqliteConnection` objects, creating the schema on first use."""

    protocol = "sqlite"

    async def create(
        self, name: str, target: ConfigTarget, logger: logging.Logger | None
    ) -> SqliteConnection:
        options = parse_options(target)
        statements = KvStatements(options.table)
        database = await SqliteDatabase.open(options)
        try:
            await create_kv_schema(database, statements)
        except BaseException:
            await database.close()
            raise
        if options.cleanup_interval > 0:
            sweep = sweep_expired(
                database, statements, options.cleanup_interval, options.cleanup_batch
            )
            database.start_task(sweep, name=f"datafx-sqlite-expiry:{name}")
        return SqliteConnection(name, target, database, statements, logger)
