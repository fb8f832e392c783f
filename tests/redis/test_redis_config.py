"""Reading Redis settings from DSNs and ConfigTarget fields."""

from __future__ import annotations

import pytest

from datafx.connfx import ConfigTarget, InvalidConfigError
from datafx.connfx.adapters.redis.config import read_settings


def test_defaults_from_plain_dsn() -> None:
    settings = read_settings(ConfigTarget(dsn="redis://127.0.0.1:6379"))
    assert settings.hosts == (("127.0.0.1", 6379),)
    assert settings.db == 0
    assert settings.cluster is False
    assert settings.tls is None
    assert settings.max_connections == 50


def test_database_from_path_and_credentials() -> None:
    target = ConfigTarget(dsn="redis://app:s%40cret@db.local:6380/3")
    settings = read_settings(target)
    assert settings.db == 3
    assert settings.username == "app"
    assert settings.password == "s@cret"
    assert "s@cret" not in repr(settings)


def test_query_options_and_properties() -> None:
    target = ConfigTarget(
        dsn="redis://h/0?max_connections=7&pool_timeout=0.5",
        properties={"socket_timeout": 2, "client_name": "worker"},
    )
    settings = read_settings(target)
    assert settings.max_connections == 7
    assert settings.pool_timeout == 0.5
    assert settings.socket_timeout == 2.0
    assert settings.client_name == "worker"


def test_timeout_field_sets_default_timeouts() -> None:
    settings = read_settings(ConfigTarget(dsn="redis://h", timeout=1.5))
    assert settings.pool_timeout == 1.5
    assert settings.socket_timeout == 1.5
    assert settings.connect_timeout == 1.5


def test_unknown_option_lists_known_ones() -> None:
    with pytest.raises(InvalidConfigError) as info:
        read_settings(ConfigTarget(dsn="redis://:pw@h/0?max_conections=5"))
    message = str(info.value)
    assert "max_conections" in message
    assert "max_connections" in message
    assert "pw" not in message.replace("password", "")


@pytest.mark.parametrize(
    ("dsn", "fragment"),
    [
        ("redis://h/x", "must be a number"),
        ("redis://h/1?db=2", "set only one"),
        ("redis://h?max_connections=0", "1 or more"),
        ("redis://h?pool_timeout=soon", "seconds"),
        ("redis://h?tls=maybe", "true or false"),
        ("redis://a:1,b:2", "not a cluster DSN"),
        ("redis+cluster://a:1,b:2/1", "only database 0"),
        ("redis://h?ca_file=/ca.pem", "TLS is off"),
    ],
)
def test_invalid_settings_are_rejected(dsn: str, fragment: str) -> None:
    with pytest.raises(InvalidConfigError, match=fragment):
        read_settings(ConfigTarget(dsn=dsn))


def test_tls_from_scheme_and_fields() -> None:
    target = ConfigTarget(
        dsn="rediss://h:6380",
        ca_file="/etc/ca.pem",
        cert_file="/etc/client.pem",
        key_file="/etc/client.key",
    )
    settings = read_settings(target)
    assert settings.tls is not None
    assert settings.tls.ca_file == "/etc/ca.pem"
    assert settings.tls.cert_file == "/etc/client.pem"
    assert settings.tls.key_file == "/etc/client.key"
    assert settings.tls.skip_verify is False


def test_tls_skip_verify_from_query() -> None:
    settings = read_settings(ConfigTarget(dsn="redis://h?tls=true&tls_skip_verify=1"))
    assert settings.tls is not None
    assert settings.tls.skip_verify is True


def test_client_certificate_needs_key() -> None:
    with pytest.raises(InvalidConfigError, match="key_file"):
        read_settings(ConfigTarget(dsn="rediss://h", cert_file="/c.pem"))


def test_cluster_hosts() -> None:
    settings = read_settings(ConfigTarget(dsn="redis+cluster://a:7000,b:7001,c"))
    assert settings.cluster is True
    assert settings.hosts == (("a", 7000), ("b", 7001), ("c", 6379))
