"""Connection configuration: ``ConfigTarget`` and the ways to build one."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from datafx.connfx.dsn import (
    ParsedDSN,
    is_secret_option,
    mask_dsn,
    parse_dsn,
    protocol_for_scheme,
)
from datafx.connfx.errors import InvalidConfigError

__all__ = ["ConfigTarget", "to_seconds"]


def to_seconds(
    value: float | timedelta, field_name: str, *, allow_zero: bool = False
) -> float:
    """Convert a duration given as seconds or ``timedelta`` to seconds.

    Raises ``ValueError`` naming ``field_name`` for a negative, non-finite or
    (unless ``allow_zero``) zero duration, and ``TypeError`` for other types.
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise TypeError(
            f"{field_name} must be seconds (float) or a timedelta, "
            f"not {type(value).__name__}"
        )
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise ValueError(f"{field_name} must be a finite duration, got {value!r}")
    if seconds < 0 or (seconds == 0 and not allow_zero):
        bound = "zero or more" if allow_zero else "greater than zero"
        raise ValueError(f"{field_name} must be {bound}, got {value!r}")
    return seconds


@dataclass(slots=True)
class ConfigTarget:
    """The location of a backend and the settings to connect with.

    Either ``dsn`` (or its synonym ``url``) or ``host``/``port`` locate the
    server. ``protocol`` may be left empty when the DSN's scheme names it.
    ``properties`` carries adapter options (pool size, table prefix, ...);
    values given there override the DSN's query parameters.
    """

    protocol: str = ""
    dsn: str | None = None
    url: str | None = None
    host: str | None = None
    port: int | None = None
    tls: bool = False
    tls_skip_verify: bool = False
    cert_file: str | None = None
    key_file: str | None = None
    ca_file: str | None = None
    timeout: float | timedelta | None = None
    properties: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.protocol:
            location = self.dsn or self.url
            if not location:
                raise InvalidConfigError(
                    "ConfigTarget needs a protocol or a DSN, as in "
                    "ConfigTarget(dsn='sqlite:///data.db')"
                )
            self.protocol = protocol_for_scheme(parse_dsn(location).scheme)
        else:
            self.protocol = protocol_for_scheme(self.protocol)
        if self.timeout is not None:
            self.timeout = to_seconds(self.timeout, "timeout")

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("dsn", "url") and isinstance(value, str):
                value = mask_dsn(value)
            elif f.name == "properties":
                value = _masked_properties(value)
            shown.append(f"{f.name}={value!r}")
        return f"ConfigTarget({', '.join(shown)})"

    @property
    def location(self) -> str | None:
        """The DSN or URL, whichever was given."""
        return self.dsn or self.url

    def parsed(self) -> ParsedDSN:
        """Return the parsed DSN, with ``host``, ``port`` and ``tls`` applied."""
        location = self.location
        parsed = (
            parse_dsn(location)
            if location
            else ParsedDSN(scheme=self.protocol, protocol=self.protocol)
        )
        if self.host is not None:
            parsed = replace(parsed, host=self.host, hosts=())
        if self.port is not None:
            parsed = replace(parsed, port=self.port, hosts=())
        if self.tls:
            parsed = replace(parsed, tls=True)
        return parsed

    def options(self) -> dict[str, Any]:
        """Return the DSN's query parameters merged with ``properties``."""
        location = self.location
        merged: dict[str, Any] = dict(parse_dsn(location).query) if location else {}
        merged.update(self.properties)
        return merged

    def masked_location(self) -> str:
        """Return the DSN with its password masked, or ``host:port``."""
        if self.location:
            return mask_dsn(self.location)
        return f"{self.protocol}://{self.host or ''}" + (
            f":{self.port}" if self.port else ""
        )

    @classmethod
    def from_dsn(cls, dsn: str, **overrides: Any) -> ConfigTarget:
        """Build a target from a DSN; the protocol comes from its scheme."""
        return cls(dsn=dsn, **overrides)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ConfigTarget:
        """Build a target from a mapping with the field names as keys."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidConfigError(
                f"unknown connection setting(s) {', '.join(unknown)}; "
                f"known settings are {', '.join(sorted(known))}"
            )
        return cls(**dict(data))

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str], section: str = "") -> ConfigTarget:
        """Build a target from a TOML file, optionally from a dotted ``section``."""
        try:
            with open(path, "rb") as handle:
                data: Any = tomllib.load(handle)
        except OSError as exc:
            raise InvalidConfigError(
                f"cannot read configuration file {str(path)!r}: {exc.strerror}"
            ) from exc
        except tomllib.TOMLDecodeError as exc:
            raise InvalidConfigError(
                f"invalid TOML in configuration file {str(path)!r}: {exc}"
            ) from exc
        for part in filter(None, section.split(".")):
            if not isinstance(data, dict) or part not in data:
                raise InvalidConfigError(
                    f"section {section!r} not found in {str(Path(path))!r}"
                )
            data = data[part]
        if not isinstance(data, dict):
            raise InvalidConfigError(
                f"section {section!r} of {str(path)!r} is not a table"
            )
        return cls.from_mapping(data)

    @classmethod
    def from_env(
        cls, prefix: str = "DATAFX_", environ: Mapping[str, str] | None = None
    ) -> ConfigTarget:
        """Build a target from variables such as ``<prefix>DSN`` and ``<prefix>HOST``.

        Variables named ``<prefix>PROPERTY_<NAME>`` become ``properties[name]``.
        """
        env = os.environ if environ is None else environ
        data: dict[str, Any] = {}
        properties: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "properties":
                continue
            raw = env.get(prefix + f.name.upper())
            if raw is None:
                continue
            data[f.name] = _coerce_env(f.name, raw)
        property_prefix = prefix + "PROPERTY_"
        for name, raw in env.items():
            if name.startswith(property_prefix):
                properties[name[len(property_prefix) :].lower()] = raw
        if not data.get("dsn") and not data.get("url") and not data.get("protocol"):
            raise InvalidConfigError(
                f"no connection configured: set {prefix}DSN, as in "
                f"{prefix}DSN=sqlite:///data.db"
            )
        return cls(properties=properties, **data)


def _coerce_env(name: str, raw: str) -> Any:
    if name in ("tls", "tls_skip_verify"):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if name == "port":
        if not raw.isdigit():
            raise InvalidConfigError(f"port must be a number, got {raw!r}")
        return int(raw)
    if name == "timeout":
        try:
            return float(raw)
        except ValueError:
            raise InvalidConfigError(
                f"timeout must be seconds as a number, got {raw!r}"
            ) from None
    return raw


def _masked_properties(properties: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: "***" if is_secret_option(name) or name.lower().endswith("key") else value
        for name, value in properties.items()
    }
