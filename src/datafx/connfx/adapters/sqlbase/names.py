"""Quoted table names built from a configurable schema and table prefix.

Table and schema names come from configuration, so they are always quoted
(never pasted raw into SQL). Keys, queue names and values never become
identifiers: they are bound parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

from datafx.connfx.errors import InvalidConfigError

__all__ = ["MYSQL", "POSTGRES", "Dialect", "TableNames"]


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one SQL server quotes identifiers and how long they may be."""

    name: str
    quote: str
    max_identifier_bytes: int

    def quote_identifier(self, name: str) -> str:
        """Return ``name`` quoted, with embedded quote characters doubled."""
        if not name:
            raise InvalidConfigError(f"{self.name} identifiers must not be empty")
        if "\x00" in name:
            raise InvalidConfigError(
                f"{self.name} identifier {name!r} contains a NUL character"
            )
        if len(name.encode()) > self.max_identifier_bytes:
            raise InvalidConfigError(
                f"{self.name} identifier {name!r} is longer than "
                f"{self.max_identifier_bytes} bytes; use a shorter table_prefix "
                "or schema"
            )
        doubled = name.replace(self.quote, self.quote * 2)
        return f"{self.quote}{doubled}{self.quote}"


# PostgreSQL truncates identifiers to NAMEDATALEN - 1 = 63 bytes.
POSTGRES = Dialect(name="PostgreSQL", quote='"', max_identifier_bytes=63)
# MySQL and MariaDB allow 64 characters; 64 bytes keeps the check simple and safe.
MYSQL = Dialect(name="MySQL", quote="`", max_identifier_bytes=64)


@dataclass(frozen=True, slots=True)
class TableNames:
    """The quoted, schema-qualified names of the tables datafx owns."""

    dialect: Dialect
    schema: str
    prefix: str

    def raw(self, suffix: str) -> str:
        """Return the unquoted table name for ``suffix`` (``kv`` -> ``datafx_kv``)."""
        return f"{self.prefix}{suffix}"

    def table(self, suffix: str) -> str:
        """Return ``"schema"."<prefix><suffix>"``, quoted for the dialect."""
        quote = self.dialect.quote_identifier
        return f"{quote(self.schema)}.{quote(self.raw(suffix))}"

    def index(self, suffix: str) -> str:
        """Return a quoted index name (unqualified) derived from the prefix."""
        return self.dialect.quote_identifier(self.raw(suffix))

    def validate(self, suffixes: tuple[str, ...]) -> None:
        """Raise ``InvalidConfigError`` now if any table name would be too long."""
        self.dialect.quote_identifier(self.schema)
        for suffix in suffixes:
            self.dialect.quote_identifier(self.raw(suffix))
