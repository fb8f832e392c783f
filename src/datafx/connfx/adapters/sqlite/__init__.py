"""The SQLite backend (``sqlite:///path.db``, ``sqlite:////abs/path.db``, ``sqlite://:memory:``).

Options, as DSN query parameters or ``ConfigTarget.properties``:
``synchronous`` (``NORMAL`` by default, or ``FULL``; see :class:`SqliteOptions`),
``busy_timeout`` (seconds, default 5, or ``ConfigTarget.timeout``),
``cleanup_interval`` (seconds between sweeps of expired keys, default 30, 0 disables),
``cleanup_batch`` (rows deleted per sweep statement, default 500) and
``table`` (the key-value table, default ``datafx_kv``).
"""

from datafx.connfx.adapters.sqlite.connection import SqliteConnection, SqliteFactory
from datafx.connfx.adapters.sqlite.database import SqliteDatabase
from datafx.connfx.adapters.sqlite.options import SqliteOptions

__all__ = [
    "SqliteConnection",
    "SqliteDatabase",
    "SqliteFactory",
    "SqliteOptions",
    "factory",
]

factory = SqliteFactory()
