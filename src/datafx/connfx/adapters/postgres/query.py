"""The relational port: SQL with bound parameters on the connection's pool."""

from __future__ import annotations

from typing import Any

from datafx.connfx.adapters.postgres.kv import row_count
from datafx.connfx.adapters.postgres.pool import PostgresPool

__all__ = ["PostgresQuery"]


class PostgresQuery:
    """Runs caller SQL with ``$1, $2, ...`` placeholders; arguments are never inlined.

    The caller's SQL may change session settings, so its connection gets
    asyncpg's full ``reset()`` before it goes back to the pool.
    """

    def __init__(self, pool: PostgresPool) -> None:
        self._pool = pool

    async def query(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        """Run a statement that returns rows, each as a column -> value dict."""
        async with self._pool.lend(clean=False) as connection:
            rows = await connection.fetch(sql, *args)
        return [dict(row.items()) for row in rows]

    async def execute(self, sql: str, *args: Any) -> int:
        """Run a statement; return the affected row count, or -1 when it has none."""
        async with self._pool.lend(clean=False) as connection:
            status: str = await connection.execute(sql, *args)
        return row_count(status)
