"""Redis connection settings read from a ``ConfigTarget``.

Options come from the DSN's query string or from ``ConfigTarget.properties``
(properties win). Durations are seconds. Unknown options are rejected with
the list of known ones, so a typo never goes unnoticed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from datafx.connfx.config import ConfigTarget, to_seconds
from datafx.connfx.errors import InvalidConfigError

__all__ = ["DEFAULT_PORT", "RedisSettings", "TlsSettings", "read_settings"]

DEFAULT_PORT = 6379


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """TLS files and checks; ``None`` files mean the system defaults."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    skip_verify: bool = False


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """Everything needed to open a client. ``password`` is never shown by ``repr``."""

    hosts: tuple[tuple[str, int], ...]
    cluster: bool = False
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: TlsSettings | None = None
    max_connections: int = 50
    pool_timeout: float = 5.0
    socket_timeout: float | None = 5.0
    connect_timeout: float | None = 5.0
    retries: int = 3
    client_name: str | None = None
    health_check_interval: float = 0.0
    stale_consumer_timeout: float = 3600.0


def _parse_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool):
        raise InvalidConfigError(
            f"Redis option {name} must be an integer, got {value!r}"
        )
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidConfigError(
            f"Redis option {name} must be an integer, got {value!r}"
        ) from None
    if number < minimum:
        raise InvalidConfigError(
            f"Redis option {name} must be {minimum} or more, got {number}"
        )
    return number


def _parse_seconds(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise InvalidConfigError(f"Redis option {name} must be seconds, got {value!r}")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise InvalidConfigError(
            f"Redis option {name} must be seconds as a number, got {value!r}"
        ) from None
    if not seconds >= 0 or seconds == float("inf"):
        raise InvalidConfigError(
            f"Redis option {name} must be a finite number of seconds, 0 or more, "
            f"got {value!r}"
        )
    return seconds


def _parse_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise InvalidConfigError(
        f"Redis option {name} must be true or false, got {value!r}"
    )


def _parse_text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidConfigError(
            f"Redis option {name} must be a string, not {type(value).__name__}"
        )
    return value


# Option name -> (parser, what the option sets, with its unit).
_OPTIONS: Mapping[str, tuple[Callable[[str, Any], Any], str]] = {
    "max_connections": (lambda n, v: _parse_int(n, v, 1), "pool size"),
    "pool_timeout": (_parse_seconds, "seconds to wait for a free pooled connection"),
    "socket_timeout": (_parse_seconds, "seconds to wait for a reply"),
    "connect_timeout": (_parse_seconds, "seconds to wait for a connection"),
    "retries": (lambda n, v: _parse_int(n, v, 0), "reconnect attempts per command"),
    "client_name": (_parse_text, "CLIENT SETNAME value"),
    "health_check_interval": (_parse_seconds, "seconds between idle-connection pings"),
    "stale_consumer_timeout": (
        _parse_seconds,
        "seconds after which an idle queue consumer without messages is removed",
    ),
    "username": (_parse_text, "ACL user name"),
    "password": (_parse_text, "password"),
    "db": (lambda n, v: _parse_int(n, v, 0), "database number"),
    "cluster": (_parse_bool, "connect to a Redis Cluster"),
    "tls": (_parse_bool, "use TLS"),
    "tls_skip_verify": (_parse_bool, "accept any server certificate"),
    "ca_file": (_parse_text, "CA bundle path"),
    "cert_file": (_parse_text, "client certificate path"),
    "key_file": (_parse_text, "client key path"),
}


def _read_options(target: ConfigTarget) -> dict[str, Any]:
    raw = target.options()
    unknown = sorted(set(raw) - set(_OPTIONS))
    if unknown:
        known = ", ".join(sorted(_OPTIONS))
        raise InvalidConfigError(
            f"unknown Redis option(s) {', '.join(unknown)} in "
            f"{target.masked_location()!r}; known options are {known}"
        )
    return {name: _OPTIONS[name][0](name, value) for name, value in raw.items()}


def _read_db(path: str, options: Mapping[str, Any]) -> int:
    text = path.strip("/")
    if not text:
        return int(options.get("db", 0))
    if not text.isdigit():
        raise InvalidConfigError(
            f"the Redis database in the DSN path must be a number, got {text!r}; "
            "use redis://host:6379/0"
        )
    if "db" in options and options["db"] != int(text):
        raise InvalidConfigError(
            f"the DSN path selects database {text} but the db option is "
            f"{options['db']}; set only one of them"
        )
    return int(text)


def _read_tls(
    target: ConfigTarget, options: Mapping[str, Any], scheme_tls: bool
) -> TlsSettings | None:
    ca_file = target.ca_file or options.get("ca_file")
    cert_file = target.cert_file or options.get("cert_file")
    key_file = target.key_file or options.get("key_file")
    skip_verify = target.tls_skip_verify or bool(options.get("tls_skip_verify", False))
    enabled = scheme_tls or bool(options.get("tls", False))
    if not enabled:
        if ca_file or cert_file or key_file or skip_verify:
            raise InvalidConfigError(
                "TLS files or tls_skip_verify are set but TLS is off; use a "
                "rediss:// DSN or set tls=true"
            )
        return None
    if bool(cert_file) != bool(key_file):
        raise InvalidConfigError(
            "a client certificate needs both cert_file and key_file; "
            f"got cert_file={cert_file!r}, key_file={key_file!r}"
        )
    return TlsSettings(ca_file, cert_file, key_file, skip_verify)


def read_settings(target: ConfigTarget) -> RedisSettings:
    """Build :class:`RedisSettings` from ``target``; raises ``InvalidConfigError``."""
    options = _read_options(target)
    parsed = target.parsed()
    cluster = "+cluster" in parsed.scheme or bool(options.get("cluster", False))
    if parsed.hosts:
        hosts = tuple(
            (host or "127.0.0.1", port or DEFAULT_PORT) for host, port in parsed.hosts
        )
    else:
        hosts = ((parsed.host or "127.0.0.1", parsed.port or DEFAULT_PORT),)
    if len(hosts) > 1 and not cluster:
        raise InvalidConfigError(
            f"{target.masked_location()!r} lists {len(hosts)} hosts but is not a "
            "cluster DSN; use redis+cluster://host:port,host:port"
        )
    db = _read_db(parsed.path, options)
    if cluster and db != 0:
        raise InvalidConfigError(
            f"Redis Cluster has only database 0, but database {db} was requested"
        )
    timeout = 5.0 if target.timeout is None else to_seconds(target.timeout, "timeout")
    return RedisSettings(
        hosts=hosts,
        cluster=cluster,
        db=db,
        username=options.get("username", parsed.username),
        password=options.get("password", parsed.password),
        tls=_read_tls(target, options, parsed.tls),
        max_connections=options.get("max_connections", 50),
        pool_timeout=options.get("pool_timeout", timeout),
        socket_timeout=options.get("socket_timeout", timeout) or None,
        connect_timeout=options.get("connect_timeout", timeout) or None,
        retries=options.get("retries", 3),
        client_name=options.get("client_name"),
        health_check_interval=options.get("health_check_interval", 0.0),
        stale_consumer_timeout=options.get("stale_consumer_timeout", 3600.0),
    )
