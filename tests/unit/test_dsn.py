"""DSN parsing and password masking."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from datafx import connfx
from datafx.connfx.dsn import mask_dsn, parse_dsn


@pytest.mark.parametrize(
    ("dsn", "protocol"),
    [
        ("redis://127.0.0.1:6379/0", "redis"),
        ("rediss://h:6380", "redis"),
        ("postgresql://u@h/db", "postgres"),
        ("postgres://u@h/db", "postgres"),
        ("mariadb://root@h/test", "mysql"),
        ("MYSQL://root@h/test", "mysql"),
        ("sqlite:///data.db", "sqlite"),
        ("memory://", "memory"),
        ("amqps://guest@h", "amqp"),
    ],
)
def test_protocol_from_scheme(dsn: str, protocol: str) -> None:
    assert parse_dsn(dsn).protocol == protocol


def test_rediss_means_tls() -> None:
    assert parse_dsn("rediss://h:6380/1").tls
    assert not parse_dsn("redis://h:6380/1").tls


def test_network_parts() -> None:
    parsed = parse_dsn("postgres://alice:secret@db.local:5433/shop?sslmode=require")
    assert parsed.host == "db.local"
    assert parsed.port == 5433
    assert parsed.username == "alice"
    assert parsed.password == "secret"
    assert parsed.database == "shop"
    assert parsed.query == {"sslmode": "require"}


@pytest.mark.parametrize(
    "password", ["p@ss", "a#b", "s/l/a/s/h", "100%", "c:o:l", "@#/%:"]
)
def test_percent_encoded_password_parses_and_is_masked(password: str) -> None:
    dsn = f"redis://user:{quote(password, safe='')}@127.0.0.1:6379/0"
    parsed = parse_dsn(dsn)
    assert parsed.password == password
    assert parsed.username == "user"
    assert parsed.host == "127.0.0.1"
    assert parsed.port == 6379
    for shown in (parsed.masked(), str(parsed), repr(parsed), mask_dsn(dsn)):
        assert password not in shown
        assert quote(password, safe="") not in shown
    assert parse_dsn(parsed.to_url()).password == password


def test_sqlite_forms() -> None:
    assert parse_dsn("sqlite:///relative.db").path == "relative.db"
    assert parse_dsn("sqlite:////absolute/path.db").path == "/absolute/path.db"
    assert parse_dsn("sqlite://:memory:").path == ":memory:"
    assert parse_dsn("sqlite:///data.db?synchronous=FULL").query == {
        "synchronous": "FULL"
    }


def test_memory_name() -> None:
    assert parse_dsn("memory://").host is None
    assert parse_dsn("memory://cache").host == "cache"


def test_ipv6_and_host_list() -> None:
    parsed = parse_dsn("redis+cluster://[::1]:7000,127.0.0.1:7001")
    assert parsed.hosts == (("::1", 7000), ("127.0.0.1", 7001))
    assert parsed.protocol == "redis"


@pytest.mark.parametrize(
    "dsn",
    [
        "",
        "   ",
        "no-scheme",
        "://host",
        "redis://h:99999",
        "redis://h:abc",
        "sqlite://x",
    ],
)
def test_malformed_dsn_raises_invalid_config(dsn: str) -> None:
    with pytest.raises(connfx.InvalidConfigError) as info:
        parse_dsn(dsn)
    assert isinstance(info.value, ValueError)


def test_malformed_dsn_error_masks_password() -> None:
    with pytest.raises(connfx.InvalidConfigError) as info:
        parse_dsn("redis://user:hunter2@host:notaport/0")
    assert "hunter2" not in str(info.value)
    assert "***" in str(info.value)


@pytest.mark.parametrize(
    "dsn",
    [
        "redis://user:S3CR#x@127.0.0.1:1/0",
        "redis://user:S3CR/x@127.0.0.1:1/0",
        "redis://user:S3CR?x@127.0.0.1:1/0",
        "postgres://user:S3CR#x@db.local/app",
    ],
)
def test_unencoded_special_character_in_password_is_never_shown(dsn: str) -> None:
    with pytest.raises(connfx.InvalidConfigError, match="percent-encode") as info:
        parse_dsn(dsn)
    assert "S3CR" not in str(info.value)
    assert "S3CR" not in mask_dsn(dsn)


def test_unencoded_colon_in_password_is_masked_whole() -> None:
    dsn = "redis://user:S3CR:x@127.0.0.1:1/0"
    assert "S3CR" not in mask_dsn(dsn)
    assert "S3CR" not in repr(connfx.ConfigTarget(dsn=dsn))


def test_password_in_query_is_masked() -> None:
    dsn = "redis://127.0.0.1:1/0?password=S3CRq&db=1&auth_token=T0K"
    for shown in (
        mask_dsn(dsn),
        parse_dsn(dsn).masked(),
        repr(connfx.ConfigTarget(dsn=dsn)),
    ):
        assert "S3CRq" not in shown
        assert "T0K" not in shown
        assert "db=1" in shown


def test_at_sign_in_query_is_not_an_error() -> None:
    parsed = parse_dsn("postgres://u@h:5432/db?application_name=a@b")
    assert parsed.query == {"application_name": "a@b"}
    assert parsed.host == "h"
