"""JSON Lines input and output for ``datafx kv import`` and ``kv export``.

Input may be plain or gzip-compressed (recognised by its first two bytes,
whatever the file name). Records are decoded with msgspec, so integers of
any size and non-ASCII text come back exactly as written.
"""

from __future__ import annotations

import gzip
import io
import os
import sys
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Any, BinaryIO, cast

import click
import msgspec

__all__ = [
    "InputError",
    "InputSource",
    "JsonLinesReader",
    "JsonLinesWriter",
    "key_of",
    "open_input",
]

_GZIP_MAGIC = b"\x1f\x8b"
_UTF8_BOM = b"\xef\xbb\xbf"
_FIELD_LIST_LIMIT = 8


class InputError(click.ClickException):
    """An input file that cannot be read or contains an invalid line."""


class InputSource:
    """An open input file: its decompressed lines and how far it has been read.

    ``size`` is the size on disk (``None`` for stdin), and ``advance`` returns
    the bytes read from disk since its last call, for progress bars.
    """

    def __init__(self, name: str, raw: BinaryIO, size: int | None) -> None:
        self.name = name
        self.size = size
        self._raw = raw
        self._reported = 0
        head = raw.peek(2)[:2] if isinstance(raw, io.BufferedReader) else b""
        self.compressed = head == _GZIP_MAGIC
        self.lines: Iterable[bytes] = (
            gzip.GzipFile(fileobj=raw, mode="rb") if self.compressed else raw
        )

    def advance(self) -> int:
        if self.size is None:
            return 0
        position = self._raw.tell()
        step = position - self._reported
        self._reported = position
        return step


@contextmanager
def open_input(path: str) -> Iterator[InputSource]:
    """Open ``path`` (``-`` for stdin) for reading; raise ``InputError`` on failure."""
    if path == "-":
        yield InputSource("stdin", sys.stdin.buffer, None)
        return
    try:
        raw = open(path, "rb")
        size = os.fstat(raw.fileno()).st_size
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        yield InputSource(path, raw, size)
    finally:
        raw.close()


class JsonLinesReader:
    """Iterates ``(line_number, record)`` over the JSON objects of a source.

    Blank lines are skipped. A line that is not a JSON object raises
    ``InputError`` naming the file and the line number.
    """

    def __init__(self, source: InputSource) -> None:
        self._source = source
        self._decoder = msgspec.json.Decoder()
        self._seen: set[str] = set()
        self.records = 0
        self.duplicates = 0
        self.first_duplicate_line: int | None = None

    def __iter__(self) -> Iterator[tuple[int, dict[str, Any]]]:
        name = self._source.name
        line_number = 0
        try:
            for line_number, line in enumerate(self._source.lines, start=1):
                if line_number == 1 and line.startswith(_UTF8_BOM):
                    line = line[len(_UTF8_BOM) :]
                if not line.strip():
                    continue
                yield line_number, self._decode(line, line_number)
                self.records += 1
        except (OSError, EOFError, zlib.error) as exc:
            # gzip raises BadGzipFile (an OSError), EOFError for a truncated
            # file and zlib.error for corrupt data.
            raise InputError(
                f"cannot read {name} after line {line_number}: {exc}"
            ) from exc

    def _decode(self, line: bytes, line_number: int) -> dict[str, Any]:
        name = self._source.name
        try:
            record = self._decoder.decode(line)
        except msgspec.DecodeError as exc:
            raise InputError(f"{name} line {line_number}: invalid JSON: {exc}") from exc
        if not isinstance(record, dict):
            raise InputError(
                f"{name} line {line_number}: expected a JSON object, "
                f"got {_json_type(record)}"
            )
        return record

    def check_duplicate(self, key: str, line_number: int) -> None:
        """Count ``key`` as a duplicate when an earlier record had it."""
        # NOTE: the set contains every imported key, about 100 bytes each, so
        # an import of 10 million records needs about 1 GB for it.
        if key in self._seen:
            self.duplicates += 1
            if self.first_duplicate_line is None:
                self.first_duplicate_line = line_number
        else:
            self._seen.add(key)


def key_of(record: dict[str, Any], field: str, name: str, line_number: int) -> str:
    """Return the key a record is stored under: its ``field`` value as text.

    The value must be a non-empty string or an integer; anything else raises
    ``InputError`` naming the file, the line and the fix.
    """
    try:
        value = record[field]
    except KeyError:
        fields = ", ".join(list(record)[:_FIELD_LIST_LIMIT]) or "none"
        if len(record) > _FIELD_LIST_LIMIT:
            fields += ", ..."
        raise InputError(
            f"{name} line {line_number}: the record has no field {field!r} "
            f"(its fields: {fields}); choose the key with --key-field"
        ) from None
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise InputError(
        f"{name} line {line_number}: field {field!r} must be a non-empty string "
        f"or an integer to serve as the key, got {_json_type(value)} {value!r}"
    )


def _json_type(value: Any) -> str:
    names = {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


class JsonLinesWriter:
    """Writes JSON values one per line to a file or stdout.

    A value that spans several lines is rewritten compactly, so each record
    stays on one line. Use :meth:`open` to create one.
    """

    def __init__(self, stream: IO[bytes], name: str) -> None:
        self._stream = stream
        self.name = name
        self.count = 0
        self.skipped = 0

    @classmethod
    @contextmanager
    def open(cls, path: str) -> Iterator[JsonLinesWriter]:
        """Open ``path`` (``-`` for stdout; gzip when it ends in ``.gz``)."""
        if path == "-":
            stdout = sys.stdout.buffer
            yield cls(stdout, "stdout")
            stdout.flush()
            return
        try:
            if path.endswith(".gz"):
                stream = cast(IO[bytes], gzip.open(path, "wb"))
            else:
                stream = open(path, "wb")
        except OSError as exc:
            raise click.ClickException(
                f"cannot write {path}: {exc.strerror or exc}"
            ) from exc
        with stream:
            try:
                yield cls(stream, path)
            except OSError as exc:
                raise click.ClickException(
                    f"cannot write {path}: {exc.strerror or exc}"
                ) from exc

    def write(self, value: msgspec.Raw) -> None:
        data = bytes(value)
        if b"\n" in data or b"\r" in data:
            data = msgspec.json.format(data, indent=0)
        self._stream.write(data)
        self._stream.write(b"\n")
        self.count += 1
