"""Size limits of keys and values stored in SQL tables, checked before any I/O."""

from __future__ import annotations

from datafx.connfx.errors import DataError, MarshalError

__all__ = ["KeyTooLongError", "check_key_size", "check_value_size"]


class KeyTooLongError(DataError, ValueError):
    """A key or name is longer than the column of the backend can index."""

    def __init__(
        self, key: str, size: int, limit: int, backend: str, kind: str = "key"
    ) -> None:
        self.key = key
        self.size = size
        self.limit = limit
        super().__init__(
            f"{kind} {key[:40]!r}... is {size} bytes in UTF-8, but {backend} "
            f"{kind}s may be at most {limit} bytes; use a shorter {kind} (for "
            "example a hash of the long one)"
        )


def check_key_size(key: str, limit: int, backend: str, kind: str = "key") -> None:
    """Raise ``KeyTooLongError`` when ``key`` encodes to more than ``limit`` bytes."""
    # A str never encodes to fewer bytes than it has characters, nor to more
    # than four per character, so most keys skip the encoding.
    if len(key) * 4 <= limit:
        return
    size = len(key.encode())
    if size > limit:
        raise KeyTooLongError(key, size, limit, backend, kind)


def check_value_size(
    key: str, value: bytes, limit: int, backend: str, why: str
) -> None:
    """Raise ``MarshalError`` when ``value`` is larger than ``limit`` bytes."""
    if len(value) > limit:
        raise MarshalError(
            f"the value of key {key[:40]!r} is {len(value)} bytes, but {backend} "
            f"stores at most {limit} bytes per value ({why}); store large "
            "objects elsewhere and keep a reference here"
        )
