"""Pure helpers shared by the SQL adapters: options, names, limits, prefixes."""

from __future__ import annotations

import pytest

from datafx.connfx import ConfigTarget, InvalidConfigError
from datafx.connfx.adapters.sqlbase.limits import (
    KeyTooLongError,
    check_key_size,
    check_value_size,
)
from datafx.connfx.adapters.sqlbase.names import MYSQL, POSTGRES, TableNames
from datafx.connfx.adapters.sqlbase.options import known_options, parse_options
from datafx.connfx.adapters.sqlbase.prefix import prefix_upper_bound
from datafx.connfx.errors import MarshalError

DSN = "postgres://u:secret@127.0.0.1:5432/db"


def test_options_from_dsn_and_properties() -> None:
    target = ConfigTarget(
        dsn=f"{DSN}?pool_size=7&isolation=serializable",
        properties={"pool_size": 9, "table_prefix": "app_"},
        timeout=3,
    )
    options = parse_options(target, "PostgreSQL", known_options())
    assert options.pool_size == 9
    assert options.isolation == "SERIALIZABLE"
    assert options.table_prefix == "app_"
    assert options.connect_timeout == 3.0
    assert options.pool_timeout == 3.0


def test_options_reject_unknown_and_excluded_names() -> None:
    target = ConfigTarget(dsn=f"{DSN}?statement_cache_size=5")
    with pytest.raises(InvalidConfigError, match="statement_cache_size"):
        parse_options(target, "MySQL", known_options(exclude=("statement_cache_size",)))


def test_option_errors_never_show_the_password() -> None:
    target = ConfigTarget(dsn=f"{DSN}?pool_size=lots")
    with pytest.raises(InvalidConfigError) as caught:
        parse_options(target, "PostgreSQL", known_options())
    assert "secret" not in str(caught.value)


def test_identifiers_are_quoted_and_bounded() -> None:
    names = TableNames(POSTGRES, 'my"schema', 'we"ird_')
    assert names.table("kv") == '"my""schema"."we""ird_kv"'
    assert TableNames(MYSQL, "db", "a`b_").table("kv") == "`db`.`a``b_kv`"
    with pytest.raises(InvalidConfigError, match="63 bytes"):
        TableNames(POSTGRES, "public", "x" * 62).validate(("kv",))
    with pytest.raises(InvalidConfigError, match="NUL"):
        POSTGRES.quote_identifier("a\x00b")


def test_key_and_value_limits() -> None:
    check_key_size("k" * 100, 100, "MySQL")
    with pytest.raises(KeyTooLongError, match="at most 100 bytes"):
        check_key_size("é" * 51, 100, "MySQL")
    check_value_size("k", b"x" * 10, 10, "MySQL", "packet")
    with pytest.raises(MarshalError, match="at most 10 bytes"):
        check_value_size("k", b"x" * 11, 10, "MySQL", "packet")


@pytest.mark.parametrize(
    ("prefix", "bound"),
    [
        ("", None),
        ("user:", "user;"),
        ("a\ud7ff", "a\ue000"),
        ("ab\U0010ffff", "ac"),
        ("\U0010ffff", None),
    ],
)
def test_prefix_upper_bound(prefix: str, bound: str | None) -> None:
    assert prefix_upper_bound(prefix) == bound
