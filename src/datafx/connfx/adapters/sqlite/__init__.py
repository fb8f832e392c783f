"""The SQLite backend (``sqlite:///path.db``, ``sqlite:////abs/path.db``, ``sqlite://:memory:``).

Options are DSN query parameters or ``ConfigTarget.properties``
(:class:`SqliteOptions` explains them):

- ``synchronous``: ``NORMAL`` (default) or ``FULL``, also ``OFF`` and ``EXTRA``;
- ``busy_timeout``: seconds to wait for another connection's lock, default 5
  or ``ConfigTarget.timeout``;
- ``cleanup_interval``: seconds between sweeps of expired keys, default 30,
  and 0 disables the sweep;
- ``cleanup_batch``: rows deleted per sweep statement, default 500;
- ``table``: the key-value table, default ``datafx_kv``.
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
