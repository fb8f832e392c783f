"""ConfigTarget construction from DSNs, mappings, TOML files and the environment."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from datafx import connfx
from datafx.connfx import ConfigTarget


def test_protocol_comes_from_dsn() -> None:
    assert ConfigTarget(dsn="postgresql://u@h/db").protocol == "postgres"
    assert ConfigTarget(protocol="postgresql").protocol == "postgres"


def test_target_needs_protocol_or_dsn() -> None:
    with pytest.raises(connfx.InvalidConfigError):
        ConfigTarget()


def test_repr_masks_password_and_secret_properties() -> None:
    target = ConfigTarget(
        dsn="redis://u:topsecret@h:6379/0",
        properties={"password": "other-secret", "pool_size": 5, "api_token": "tok"},
    )
    text = repr(target)
    assert "topsecret" not in text
    assert "other-secret" not in text
    assert "tok'" not in text
    assert "pool_size" in text
    assert "topsecret" not in target.masked_location()


def test_timeout_accepts_timedelta() -> None:
    assert ConfigTarget(dsn="memory://", timeout=timedelta(seconds=2)).timeout == 2.0
    with pytest.raises(ValueError, match="timeout"):
        ConfigTarget(dsn="memory://", timeout=-1)


def test_options_merge_query_and_properties() -> None:
    target = ConfigTarget(dsn="sqlite:///x.db?a=1&b=2", properties={"b": "3"})
    assert target.options() == {"a": "1", "b": "3"}


def test_host_and_port_override_dsn() -> None:
    parsed = ConfigTarget(dsn="redis://h:1/0", host="other", port=2).parsed()
    assert (parsed.host, parsed.port) == ("other", 2)


def test_from_mapping_rejects_unknown_settings() -> None:
    with pytest.raises(connfx.InvalidConfigError, match="colour"):
        ConfigTarget.from_mapping({"dsn": "memory://", "colour": "blue"})


def test_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "datafx.toml"
    path.write_text(
        '[connections.cache]\ndsn = "redis://127.0.0.1:6379/2"\n'
        "timeout = 2.5\n[connections.cache.properties]\nmax_connections = 20\n"
    )
    target = ConfigTarget.from_toml(path, "connections.cache")
    assert target.protocol == "redis"
    assert target.timeout == 2.5
    assert target.properties == {"max_connections": 20}
    with pytest.raises(connfx.InvalidConfigError, match="missing"):
        ConfigTarget.from_toml(path, "connections.missing")
    with pytest.raises(connfx.InvalidConfigError, match="cannot read"):
        ConfigTarget.from_toml(tmp_path / "absent.toml")


def test_from_env() -> None:
    env = {
        "APP_DSN": "postgres://u:pw@h:5432/db",
        "APP_TIMEOUT": "3",
        "APP_TLS": "true",
        "APP_PROPERTY_POOL_SIZE": "8",
    }
    target = ConfigTarget.from_env("APP_", env)
    assert target.protocol == "postgres"
    assert target.timeout == 3.0
    assert target.tls is True
    assert target.properties == {"pool_size": "8"}
    with pytest.raises(connfx.InvalidConfigError, match="APP_DSN"):
        ConfigTarget.from_env("APP_", {})


def test_durations_validate() -> None:
    assert connfx.to_seconds(timedelta(milliseconds=5), "ttl") == 0.005
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="ttl"):
            connfx.to_seconds(bad, "ttl")
    with pytest.raises(TypeError, match="ttl"):
        connfx.to_seconds("5", "ttl")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        connfx.to_seconds(True, "ttl")
