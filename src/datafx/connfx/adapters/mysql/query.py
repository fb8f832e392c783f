"""The relational port: SQL with bound parameters on the connection's pool."""

from __future__ import annotations

from typing import Any

from datafx.connfx.adapters.mysql.pool import MySqlPool

__all__ = ["MySqlQuery"]


class MySqlQuery:
    """Runs caller SQL with ``%s`` placeholders; asyncmy escapes every argument.

    Without arguments the SQL is sent unchanged, so ``%`` needs no doubling.

    NOTE: asyncmy's pool does not reset a connection on release, so session
    settings changed here (``SET time_zone``, user variables) stay on that
    pooled connection. datafx's own statements do not depend on them.
    """

    def __init__(self, pool: MySqlPool) -> None:
        self._pool = pool

    async def query(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        """Run a statement that returns rows, each as a column -> value dict."""
        async with self._pool.acquire() as connection:
            async with connection.cursor() as cursor:
                await cursor.execute(sql, args or None)
                rows = await cursor.fetchall()
                columns = [column[0] for column in cursor.description or ()]
        return [dict(zip(columns, row, strict=True)) for row in rows]

    async def execute(self, sql: str, *args: Any) -> int:
        """Run a statement; return the matched row count, or -1 when it has none."""
        async with self._pool.acquire() as connection:
            async with connection.cursor() as cursor:
                await cursor.execute(sql, args or None)
                count: int = cursor.rowcount
        return count
