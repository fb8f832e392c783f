"""Connection options shared by the SQL adapters, parsed through a typed table.

Options come from the DSN's query string and from ``ConfigTarget.properties``
(properties win). Every value may be given as text, as DSN parameters are.
An unknown option is rejected with the list of known ones, so a typo never
falls back to a default silently.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from datafx.connfx.config import ConfigTarget
from datafx.connfx.errors import InvalidConfigError

__all__ = ["ISOLATION_LEVELS", "SqlOptions", "known_options", "parse_options"]

# Isolation level names accepted in ``isolation``, mapped to their SQL spelling.
ISOLATION_LEVELS: dict[str, str] = {
    "read committed": "READ COMMITTED",
    "repeatable read": "REPEATABLE READ",
    "serializable": "SERIALIZABLE",
}


@dataclass(frozen=True, slots=True)
class SqlOptions:
    """Pool, naming, transaction and expiry settings of one SQL connection.

    Durations are seconds. ``pool_timeout`` bounds the wait for a free pooled
    connection. ``cleanup_interval`` of 0 turns the background removal of
    expired rows off (reads still ignore expired rows).
    """

    pool_min: int = 1
    pool_size: int = 10
    pool_timeout: float = 10.0
    connect_timeout: float = 10.0
    command_timeout: float | None = None
    application_name: str = "datafx"
    schema: str | None = None
    table_prefix: str = "datafx_"
    isolation: str = "READ COMMITTED"
    cleanup_interval: float = 60.0
    cleanup_batch: int = 500
    sslmode: str | None = None
    statement_cache_size: int = 100


def _as_int(name: str, raw: Any, minimum: int) -> int:
    if isinstance(raw, bool):
        raise InvalidConfigError(f"option {name} must be an integer, got {raw!r}")
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise InvalidConfigError(
            f"option {name} must be an integer, got {raw!r}"
        ) from None
    if value < minimum:
        raise InvalidConfigError(
            f"option {name} must be {minimum} or more, got {value}"
        )
    return value


def _as_seconds(name: str, raw: Any, *, allow_zero: bool) -> float:
    if isinstance(raw, bool):
        raise InvalidConfigError(f"option {name} must be seconds, got {raw!r}")
    try:
        value = float(raw.total_seconds() if hasattr(raw, "total_seconds") else raw)
    except (TypeError, ValueError):
        raise InvalidConfigError(
            f"option {name} must be seconds as a number, got {raw!r}"
        ) from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = "0 or more" if allow_zero else "greater than 0"
        raise InvalidConfigError(f"option {name} must be {bound} seconds, got {raw!r}")
    return value


def _as_text(name: str, raw: Any) -> str:
    if not isinstance(raw, str) or not raw:
        raise InvalidConfigError(
            f"option {name} must be a non-empty string, got {raw!r}"
        )
    return raw


def _as_isolation(name: str, raw: Any) -> str:
    text = " ".join(str(raw).replace("_", " ").replace("-", " ").lower().split())
    try:
        return ISOLATION_LEVELS[text]
    except KeyError:
        known = ", ".join(repr(level) for level in ISOLATION_LEVELS)
        raise InvalidConfigError(
            f"option {name} must be one of {known}, got {raw!r}"
        ) from None


_SSL_MODES = ("disable", "prefer", "require", "verify-ca", "verify-full")


def _as_sslmode(name: str, raw: Any) -> str:
    if raw not in _SSL_MODES:
        raise InvalidConfigError(
            f"option {name} must be one of {', '.join(_SSL_MODES)}, got {raw!r}"
        )
    return str(raw)


_Parser = Callable[[str, Any], Any]

# option name -> (SqlOptions field, parser). Aliases map onto the same field.
_PARSERS: Mapping[str, tuple[str, _Parser]] = {
    "pool_min": ("pool_min", lambda n, v: _as_int(n, v, 0)),
    "min_size": ("pool_min", lambda n, v: _as_int(n, v, 0)),
    "pool_size": ("pool_size", lambda n, v: _as_int(n, v, 1)),
    "max_size": ("pool_size", lambda n, v: _as_int(n, v, 1)),
    "pool_timeout": (
        "pool_timeout",
        lambda n, v: _as_seconds(n, v, allow_zero=False),
    ),
    "connect_timeout": (
        "connect_timeout",
        lambda n, v: _as_seconds(n, v, allow_zero=False),
    ),
    "command_timeout": (
        "command_timeout",
        lambda n, v: _as_seconds(n, v, allow_zero=False),
    ),
    "application_name": ("application_name", _as_text),
    "schema": ("schema", _as_text),
    "table_prefix": ("table_prefix", _as_text),
    "isolation": ("isolation", _as_isolation),
    "cleanup_interval": (
        "cleanup_interval",
        lambda n, v: _as_seconds(n, v, allow_zero=True),
    ),
    "cleanup_batch": ("cleanup_batch", lambda n, v: _as_int(n, v, 1)),
    "sslmode": ("sslmode", _as_sslmode),
    "statement_cache_size": ("statement_cache_size", lambda n, v: _as_int(n, v, 0)),
}


def parse_options(
    target: ConfigTarget, backend: str, supported: frozenset[str]
) -> SqlOptions:
    """Parse the DSN query and ``properties`` of ``target`` into :class:`SqlOptions`.

    ``supported`` lists the option names this backend accepts; any other name
    raises ``InvalidConfigError`` listing them. ``target.timeout`` sets the
    default of ``connect_timeout`` and ``pool_timeout``.
    """
    values: dict[str, Any] = {}
    if target.timeout is not None:
        timeout = float(target.timeout)  # type: ignore[arg-type]
        values["connect_timeout"] = timeout
        values["pool_timeout"] = timeout
    unknown = sorted(set(target.options()) - supported)
    if unknown:
        raise InvalidConfigError(
            f"unknown {backend} option(s) {', '.join(unknown)}; "
            f"known options are {', '.join(sorted(supported))}"
        )
    for name, raw in target.options().items():
        field_name, parser = _PARSERS[name]
        values[field_name] = parser(name, raw)
    options = SqlOptions(**values)
    if options.pool_min > options.pool_size:
        raise InvalidConfigError(
            f"option pool_min ({options.pool_min}) must not exceed "
            f"pool_size ({options.pool_size})"
        )
    return options


def known_options(exclude: tuple[str, ...] = ()) -> frozenset[str]:
    """Return every option name of the shared table except those in ``exclude``."""
    return frozenset(_PARSERS).difference(exclude)
