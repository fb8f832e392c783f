"""Key-values and cache on the ``<prefix>kv`` table.

One row per key: ``key VARBINARY(3072)`` (the UTF-8 bytes of the key),
``value LONGBLOB`` and ``expires_at DATETIME(6)`` in UTC (NULL for no expiry).
Every read filters on ``expires_at`` with the server's UTC clock, so an
expired row is never returned, whether or not the sweeper removed it yet.
Keys and values are always bound parameters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from datafx.connfx.adapters.mysql.pool import (
    MySqlPool,
    PooledStatements,
    Statements,
    execute,
    fetch,
)
from datafx.connfx.adapters.mysql.schema import MAX_KEY_BYTES
from datafx.connfx.adapters.sqlbase.lazy import Once
from datafx.connfx.adapters.sqlbase.limits import check_key_size, check_value_size
from datafx.connfx.adapters.sqlbase.names import TableNames
from datafx.connfx.adapters.sqlbase.prefix import SCAN_PAGE, prefix_upper_bound
from datafx.connfx.errors import KeyNotFoundError, MarshalError

__all__ = ["KvOperations", "KvStatements", "MySqlKeyValue"]

# Room left in max_allowed_packet for the statement text and the key.
_PACKET_HEADROOM = 8192

_LIVE = "(expires_at IS NULL OR expires_at > UTC_TIMESTAMP(6))"
_DEADLINE = "TIMESTAMPADD(MICROSECOND, %s, UTC_TIMESTAMP(6))"
_UPSERT = (
    "ON DUPLICATE KEY UPDATE `value` = VALUES(`value`), expires_at = VALUES(expires_at)"
)


def _micros(ttl: float | None) -> int | None:
    return None if ttl is None else max(round(ttl * 1_000_000), 1)


def _placeholders(count: int) -> str:
    return ", ".join(["%s"] * count)


@dataclass(frozen=True, slots=True)
class KvStatements:
    """The SQL of every key-value operation, for one table.

    ``lock`` is appended to reads inside transactions (``FOR UPDATE``), so a
    read-modify-write in one transaction cannot lose a concurrent update.
    Statements over a list of keys end in ``{keys}``, filled per call.
    """

    table: str
    lock: str
    get: str
    get_many: str
    exists: str
    ttl: str
    set: str
    update: str
    remove: str
    remove_many: str
    expire: str
    sweep_select: str
    sweep_delete: str
    scan: str
    scan_bounded: str

    @classmethod
    def build(cls, names: TableNames, lock: str = "") -> KvStatements:
        kv = names.table("kv")
        return cls(
            table=kv,
            lock=lock,
            get=f"SELECT `value` FROM {kv} WHERE `key` = %s AND {_LIVE}{lock}",
            get_many=(
                f"SELECT `key`, `value` FROM {kv} WHERE {_LIVE} AND `key` IN ({{keys}})"
            ),
            exists=f"SELECT 1 FROM {kv} WHERE `key` = %s AND {_LIVE}{lock}",
            ttl=(
                "SELECT TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), expires_at), "
                f"expires_at IS NULL FROM {kv} WHERE `key` = %s AND {_LIVE}{lock}"
            ),
            set=(
                f"INSERT INTO {kv} (`key`, `value`, expires_at) "
                f"VALUES (%s, %s, {_DEADLINE}) {_UPSERT}"
            ),
            update=f"UPDATE {kv} SET `value` = %s WHERE `key` = %s AND {_LIVE}",
            remove=f"DELETE FROM {kv} WHERE `key` = %s",
            remove_many=f"DELETE FROM {kv} WHERE `key` IN ({{keys}})",
            expire=(
                f"UPDATE {kv} SET expires_at = {_DEADLINE} WHERE `key` = %s AND {_LIVE}"
            ),
            scan=(
                f"SELECT `key` FROM {kv} WHERE `key` >= %s AND `key` > %s "
                f"AND {_LIVE} ORDER BY `key` LIMIT %s"
            ),
            scan_bounded=(
                f"SELECT `key` FROM {kv} WHERE `key` >= %s AND `key` > %s "
                f"AND `key` < %s AND {_LIVE} ORDER BY `key` LIMIT %s"
            ),
            sweep_select=(
                f"SELECT `key` FROM {kv} WHERE expires_at <= UTC_TIMESTAMP(6) "
                "LIMIT %s FOR UPDATE SKIP LOCKED"
            ),
            sweep_delete=(
                f"DELETE FROM {kv} WHERE expires_at <= UTC_TIMESTAMP(6) "
                "AND `key` IN ({keys})"
            ),
        )


class KvOperations:
    """Key-value operations on a given connection, for the port and transactions."""

    def __init__(self, statements: KvStatements, max_packet: int) -> None:
        self.sql = statements
        self.max_value = max(max_packet - _PACKET_HEADROOM, 0)

    def _check(self, key: str, value: bytes) -> None:
        check_key_size(key, MAX_KEY_BYTES, "MySQL")
        check_value_size(
            key, value, self.max_value, "MySQL", "the server's max_allowed_packet"
        )

    async def get(self, statements: Statements, key: str) -> bytes | None:
        rows = await statements.fetch(self.sql.get, (key,))
        return bytes(rows[0][0]) if rows else None

    async def get_many(
        self, statements: Statements, keys: Sequence[str]
    ) -> dict[str, bytes]:
        sql = self.sql.get_many.format(keys=_placeholders(len(keys)))
        if self.sql.lock:
            sql += f" ORDER BY `key`{self.sql.lock}"
        rows = await statements.fetch(sql, keys)
        return {bytes(row[0]).decode(): bytes(row[1]) for row in rows}

    async def set(
        self, statements: Statements, key: str, value: bytes, ttl: float | None
    ) -> None:
        self._check(key, value)
        await statements.execute(self.sql.set, (key, value, _micros(ttl)))

    async def set_many(
        self, statements: Statements, items: Mapping[str, bytes], ttl: float | None
    ) -> None:
        for key, value in items.items():
            self._check(key, value)
        total = sum(len(value) for value in items.values())
        if total > self.max_value:
            raise MarshalError(
                f"set_many of {len(items)} keys sends {total} bytes of values in one "
                f"statement, but the MySQL server accepts at most {self.max_value} "
                "(its max_allowed_packet); split the batch"
            )
        micros = _micros(ttl)
        row = f"(%s, %s, {_DEADLINE})"
        sql = (
            f"INSERT INTO {self.sql.table} (`key`, `value`, expires_at) VALUES "
            + ", ".join([row] * len(items))
            + f" {_UPSERT}"
        )
        args: list[Any] = []
        for key, value in items.items():
            args += (key, value, micros)
        await statements.execute(sql, args)

    async def update(self, statements: Statements, key: str, value: bytes) -> bool:
        self._check(key, value)
        return await statements.execute(self.sql.update, (value, key)) > 0

    async def remove(self, statements: Statements, key: str) -> None:
        await statements.execute(self.sql.remove, (key,))

    async def remove_many(self, statements: Statements, keys: Sequence[str]) -> None:
        sql = self.sql.remove_many.format(keys=_placeholders(len(keys)))
        await statements.execute(sql, keys)

    async def exists(self, statements: Statements, key: str) -> bool:
        return bool(await statements.fetch(self.sql.exists, (key,)))

    async def get_ttl(self, statements: Statements, key: str) -> float | None:
        rows = await statements.fetch(self.sql.ttl, (key,))
        if not rows:
            raise KeyNotFoundError(key)
        micros, forever = rows[0]
        if forever:
            return None
        # The row was live when read, so a tiny or negative rest is clock noise.
        return max(int(micros) / 1_000_000, 0.001)

    async def expire(self, statements: Statements, key: str, ttl: float) -> bool:
        return await statements.execute(self.sql.expire, (_micros(ttl), key)) > 0


class MySqlKeyValue:
    """Key-value and cache ports; each statement borrows a pooled connection."""

    def __init__(self, pool: MySqlPool, ops: KvOperations, ready: Once) -> None:
        self._pool = pool
        self._ready = ready
        self._ops = ops
        self._statements = PooledStatements(pool)

    async def get(self, key: str) -> bytes | None:
        if not self._ready.done:
            await self._ready.ensure()
        return await self._ops.get(self._statements, key)

    async def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        if not self._ready.done:
            await self._ready.ensure()
        return await self._ops.get_many(self._statements, keys)

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        if not self._ready.done:
            await self._ready.ensure()
        await self._ops.set(self._statements, key, value, ttl)

    async def set_many(
        self, items: Mapping[str, bytes], ttl: float | None = None
    ) -> None:
        if not self._ready.done:
            await self._ready.ensure()
        await self._ops.set_many(self._statements, items, ttl)

    async def update(self, key: str, value: bytes) -> bool:
        if not self._ready.done:
            await self._ready.ensure()
        return await self._ops.update(self._statements, key, value)

    async def remove(self, key: str) -> None:
        if not self._ready.done:
            await self._ready.ensure()
        await self._ops.remove(self._statements, key)

    async def remove_many(self, keys: Sequence[str]) -> None:
        if not self._ready.done:
            await self._ready.ensure()
        await self._ops.remove_many(self._statements, keys)

    async def exists(self, key: str) -> bool:
        if not self._ready.done:
            await self._ready.ensure()
        return await self._ops.exists(self._statements, key)

    async def get_ttl(self, key: str) -> float | None:
        if not self._ready.done:
            await self._ready.ensure()
        return await self._ops.get_ttl(self._statements, key)

    async def expire(self, key: str, ttl: float) -> bool:
        if not self._ready.done:
            await self._ready.ensure()
        return await self._ops.expire(self._statements, key, ttl)

    async def scan(self, prefix: str = "") -> AsyncIterator[str]:
        """Yield live keys starting with ``prefix`` in byte order, a page at a time."""
        await self._ready.ensure()
        sql = self._ops.sql
        upper = prefix_upper_bound(prefix)
        last = b""
        args: tuple[Any, ...]
        while True:
            if upper is None:
                statement, args = sql.scan, (prefix, last, SCAN_PAGE)
            else:
                statement, args = sql.scan_bounded, (prefix, last, upper, SCAN_PAGE)
            async with self._pool.acquire() as connection:
                rows = await fetch(connection, statement, args)
            for row in rows:
                yield bytes(row[0]).decode()
            if len(rows) < SCAN_PAGE:
                return
            last = bytes(rows[-1][0])

    async def delete_expired(self, limit: int) -> int:
        """Remove at most ``limit`` expired rows, skipping rows others hold locked."""
        sql = self._ops.sql
        async with self._pool.acquire() as connection:
            await execute(connection, "START TRANSACTION")
            try:
                rows = await fetch(connection, sql.sweep_select, (limit,))
                removed = 0
                if rows:
                    keys = [bytes(row[0]) for row in rows]
                    delete = sql.sweep_delete.format(keys=_placeholders(len(keys)))
                    removed = await execute(connection, delete, keys)
                await execute(connection, "COMMIT")
            except BaseException:
                if connection.connected:
                    await execute(connection, "ROLLBACK")
                raise
        return removed
