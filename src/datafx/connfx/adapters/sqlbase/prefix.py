"""Key ranges for prefix scans on byte-ordered key columns."""

from __future__ import annotations

__all__ = ["SCAN_PAGE", "prefix_upper_bound"]

# Keys fetched per statement while scanning; no lock is held between pages.
SCAN_PAGE = 500

_MAX_CODE_POINT = 0x10FFFF
_SURROGATES = range(0xD800, 0xE000)


def prefix_upper_bound(prefix: str) -> str | None:
    """Return the smallest string above every string that starts with ``prefix``.

    UTF-8 byte order is code point order, so on a column compared byte by
    byte (``COLLATE "C"``, ``VARBINARY``) the keys starting with ``prefix``
    are exactly those in ``[prefix, bound)``. Returns ``None`` when no bound
    exists (an empty prefix, or one made of U+10FFFF only).
    """
    chars = list(prefix)
    while chars:
        code = ord(chars[-1]) + 1
        if code in _SURROGATES:
            code = _SURROGATES.stop
        if code <= _MAX_CODE_POINT:
            chars[-1] = chr(code)
            return "".join(chars)
        chars.pop()
    return None
