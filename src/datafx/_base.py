"""Helpers shared by the data types: argument checks and error translation."""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Any, Literal

from datafx.connfx.behaviors import Behavior
from datafx.connfx.connection import Connection
from datafx.connfx.dsn import is_secret_option
from datafx.connfx.errors import (
    BackendError,
    ConnectionNotSupportedError,
    DataError,
)


def check_key(key: Any) -> str:
    """Return ``key`` when it is a non-empty ``str`` without NUL; raise otherwise.

    NUL is rejected because PostgreSQL text cannot store it, and a key must
    mean the same on every backend.
    """
    if type(key) is str and key and "\x00" not in key:
        return key
    if isinstance(key, str) and "\x00" in key:
        raise ValueError(f"key must not contain the NUL character, got {key!r}")
    if isinstance(key, str) and key:
        return str(key)
    if isinstance(key, str):
        raise ValueError("key must be a non-empty str, got ''")
    raise TypeError(f"key must be a non-empty str, not {type(key).__name__}: {key!r}")


def check_keys(keys: Iterable[Any]) -> list[str]:
    """Return the keys as a list of unique strings, keeping their first order."""
    if isinstance(keys, str | bytes):
        raise TypeError(
            "keys must be an iterable of str, not a single "
            f"{type(keys).__name__}; wrap one key in a list"
        )
    if not isinstance(keys, list | tuple):
        keys = list(keys)
    try:
        unique = dict.fromkeys(keys)
    except TypeError:  # an unhashable key; check_key below names it
        unique = {}
    # Fast path: every key is already a non-empty str without NUL.
    if (
        unique
        and "" not in unique
        and set(map(type, unique)) == {str}
        and not any("\x00" in key for key in unique)
    ):
        return list(unique)
    return list(dict.fromkeys(check_key(k) for k in keys))


def require(conn: Connection, behavior: Behavior, port: Any) -> Any:
    """Return ``port`` when ``conn`` offers ``behavior``; raise otherwise."""
    if not isinstance(conn, Connection):
        raise TypeError(
            f"expected a datafx.connfx.Connection, not {type(conn).__name__}"
        )
    if port is None or behavior not in conn.behaviors:
        raise ConnectionNotSupportedError(conn.protocol, behavior.value)
    return port


class Translate:
    """Context manager turning driver exceptions into ``BackendError``.

    ``DataError`` subclasses pass unchanged, and so do ``BaseException``s
    that are not ``Exception`` (cancellation) and Python's own ``TimeoutError``.
    One instance per operation is reused by every call.
    """

    __slots__ = ("_conn", "_operation")

    def __init__(self, conn: Connection, operation: str) -> None:
        self._conn = conn
        self._operation = operation

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        if exc is None or not isinstance(exc, Exception):
            return False
        if isinstance(exc, DataError | TimeoutError):
            return False
        conn = self._conn
        raise BackendError(
            f"{self._operation} failed on {conn.protocol} connection {conn.name!r}: "
            f"{type(exc).__name__}: {_safe_text(exc, conn)}",
            protocol=conn.protocol,
            operation=self._operation,
        ) from exc


def _safe_text(exc: BaseException, conn: Connection) -> str:
    """Return the exception text with the connection's secrets removed.

    Secrets are the DSN's password and every option named like a password
    or token, whether it came from the DSN's query or from ``properties``.
    """
    text = str(exc)
    target = conn.target
    secrets = [
        str(value)
        for name, value in target.options().items()
        if is_secret_option(name) and value
    ]
    if target.location:
        secrets.append(target.parsed().password or "")
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
