"""SQLite connection options: DSN query parameters, properties and path checks.

Options come from the DSN query (``sqlite:///data.db?synchronous=FULL``) or from
``ConfigTarget.properties``; properties win. Unknown names are rejected.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from datafx.connfx.config import ConfigTarget, to_seconds
from datafx.connfx.errors import InvalidConfigError

__all__ = ["MEMORY_PATH", "SqliteOptions", "check_database_path", "parse_options"]

MEMORY_PATH = ":memory:"

# SQLite's PRAGMA synchronous levels, from least to most durable.
SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")

DEFAULT_BUSY_TIMEOUT = 5.0
DEFAULT_CLEANUP_INTERVAL = 30.0
DEFAULT_CLEANUP_BATCH = 500
DEFAULT_TABLE = "datafx_kv"


@dataclass(frozen=True, slots=True)
class SqliteOptions:
    """Validated settings of one SQLite connection.

    ``synchronous`` is the ``PRAGMA synchronous`` level. With WAL, ``NORMAL``
    (the default) loses nothing when the process crashes. When the machine
    loses power or the OS crashes, it may lose the last commits, but the file
    stays consistent. ``FULL`` syncs the WAL at every commit and loses nothing,
    at the cost of one fsync per write.
    ``busy_timeout`` (seconds) is how long a statement waits for a lock held
    by another connection or process before it fails with "database is locked".
    ``cleanup_interval`` (seconds, 0 disables) is the pause between sweeps
    that delete expired keys, at most ``cleanup_batch`` rows per statement.
    ``table`` names the key-value table.
    """

    path: str
    synchronous: str = "NORMAL"
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT
    cleanup_interval: float = DEFAULT_CLEANUP_INTERVAL
    cleanup_batch: int = DEFAULT_CLEANUP_BATCH
    table: str = DEFAULT_TABLE

    @property
    def in_memory(self) -> bool:
        return self.path == MEMORY_PATH


def _synchronous(name: str, value: Any) -> str:
    level = str(value).strip().upper()
    if level not in SYNCHRONOUS_LEVELS:
        raise InvalidConfigError(
            f"invalid SQLite option {name}={value!r}: "
            f"expected one of {', '.join(SYNCHRONOUS_LEVELS)}"
        )
    return level


def _seconds(name: str, value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(value, bool) or not math.isfinite(seconds) or seconds < 0:
        raise InvalidConfigError(
            f"invalid SQLite option {name}={value!r}: expected seconds as a "
            "number of 0 or more, such as 5 or 0.5"
        )
    return seconds


def _positive_int(name: str, value: Any) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) < 1:
        raise InvalidConfigError(
            f"invalid SQLite option {name}={value!r}: "
            "expected a whole number of 1 or more"
        )
    return int(text)


def _table_name(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value or "\x00" in value:
        raise InvalidConfigError(
            f"invalid SQLite option {name}={value!r}: expected a non-empty table name"
        )
    if value.lower().startswith("sqlite_"):
        raise InvalidConfigError(
            f"invalid SQLite option {name}={value!r}: names starting with "
            "'sqlite_' are reserved by SQLite; choose another table name"
        )
    return value


_PARSERS: dict[str, Callable[[str, Any], Any]] = {
    "synchronous": _synchronous,
    "busy_timeout": _seconds,
    "cleanup_interval": _seconds,
    "cleanup_batch": _positive_int,
    "table": _table_name,
}


def parse_options(target: ConfigTarget) -> SqliteOptions:
    """Build :class:`SqliteOptions` from a target; raise ``InvalidConfigError``."""
    path = target.parsed().path
    raw: Mapping[str, Any] = target.options()
    unknown = sorted(set(raw) - set(_PARSERS))
    if unknown:
        raise InvalidConfigError(
            f"unknown SQLite option(s) {', '.join(unknown)} in "
            f"{target.masked_location()!r}; known options are "
            f"{', '.join(sorted(_PARSERS))}"
        )
    values = {name: _PARSERS[name](name, value) for name, value in raw.items()}
    if "busy_timeout" not in values and target.timeout is not None:
        values["busy_timeout"] = to_seconds(target.timeout, "timeout")
    if path != MEMORY_PATH:
        path = os.path.abspath(path)
    return SqliteOptions(path=path, **values)


def check_database_path(path: str) -> None:
    """Raise ``InvalidConfigError`` when ``path`` cannot hold a writable database.

    SQLite in WAL mode creates ``<file>-wal`` and ``<file>-shm`` beside the
    database, so the folder must be writable even when the file exists.
    ``os.access`` checks permission bits for the real user, and root passes
    every such check. A folder that root cannot write to (a read-only mount,
    ``/proc``) is therefore only detected when SQLite fails to open the file,
    and the caller translates that failure too.
    """
    if path == MEMORY_PATH:
        return
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise InvalidConfigError(
            f"cannot open SQLite database {path!r}: the folder {folder!r} does "
            "not exist; create it first (os.makedirs) or point the DSN elsewhere"
        )
    if os.path.isdir(path):
        raise InvalidConfigError(
            f"cannot open SQLite database {path!r}: it is a folder; "
            "add a file name to the DSN, as in 'sqlite:///data/app.db'"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InvalidConfigError(
            f"cannot open SQLite database {path!r}: the folder {folder!r} is not "
            "writable by this process, and SQLite needs to create the -wal and "
            "-shm files there; grant write permission or choose another folder"
        )
    if os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK):
        raise InvalidConfigError(
            f"cannot open SQLite database {path!r}: the file is not readable "
            "and writable by this process; fix its permissions or choose "
            "another file"
        )
