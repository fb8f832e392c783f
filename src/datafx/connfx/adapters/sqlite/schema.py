"""Schema versions of the tables that datafx keeps in a SQLite file.

The meta table ``datafx_meta`` maps a component name (such as ``kv:datafx_kv``)
to the number of migration steps applied to it. :func:`migrate` reads that
number without taking a lock, and only when steps are missing does it apply
them in one ``BEGIN IMMEDIATE`` transaction, reading the version again inside
it. Several processes that open a new file at once therefore create the
tables exactly once, and opening a file whose tables are current takes no
write lock, so it does not wait for a writer.
"""

from __future__ import annotations

from collections.abc import Sequence

from datafx.connfx.adapters.sqlite.database import SqliteDatabase
from datafx.connfx.errors import InvalidConfigError

__all__ = ["META_TABLE", "migrate", "quote_name", "read_version"]

META_TABLE = "datafx_meta"

_CREATE_META = (
    f'CREATE TABLE IF NOT EXISTS "{META_TABLE}" '
    "(name TEXT PRIMARY KEY, value TEXT NOT NULL)"
)
_READ_VERSION = f'SELECT value FROM "{META_TABLE}" WHERE name = ?'
_WRITE_VERSION = (
    f'INSERT INTO "{META_TABLE}" (name, value) VALUES (?, ?) '
    "ON CONFLICT(name) DO UPDATE SET value = excluded.value"
)
_META_EXISTS = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"


def quote_name(name: str) -> str:
    """Quote an SQL identifier, doubling any double quote inside it."""
    return '"' + name.replace('"', '""') + '"'


async def read_version(database: SqliteDatabase, component: str) -> int:
    """Return the number of steps applied to ``component`` (0 when none)."""
    if not await database.fetch(_META_EXISTS, (META_TABLE,)):
        return 0
    rows = await database.fetch(_READ_VERSION, (component,))
    return int(rows[0][0]) if rows else 0


async def migrate(
    database: SqliteDatabase, component: str, steps: Sequence[Sequence[str]]
) -> int:
    """Apply the missing ``steps`` of ``component`` and return its version.

    ``steps[i]`` contains the statements that bring the component from version
    ``i`` to ``i + 1``. Steps are only ever appended, never edited, so a file
    written by an older datafx is upgraded in place. Raises
    ``InvalidConfigError`` when the file was written by a newer datafx.
    """
    target = len(steps)
    version = await read_version(database, component)
    if version == target:
        return version
    if version < target:
        async with database.transaction() as writer:
            await writer.execute(_CREATE_META)
            rows = list(await writer.execute_fetchall(_READ_VERSION, (component,)))
            version = int(rows[0][0]) if rows else 0
            for step in steps[version:]:
                for statement in step:
                    await writer.execute(statement)
            if version < target:
                await writer.execute(_WRITE_VERSION, (component, str(target)))
    if version > target:
        raise InvalidConfigError(
            f"SQLite database {database.path!r} has schema version {version} of "
            f"{component!r}, newer than version {target} that this datafx "
            "knows; upgrade datafx or use another file"
        )
    return target
