"""DSN parsing and password masking.

A DSN is a URL whose scheme names the protocol: ``redis://user:pass@host:6379/0``.
User names and passwords may contain any character when percent-encoded
(``p%40ss`` for ``p@ss``). Embedded backends have their own forms:

- ``sqlite:///relative.db`` (relative to the working directory),
  ``sqlite:////absolute/path.db`` and ``sqlite://:memory:``;
- ``memory://`` (private to the connection) and ``memory://name`` (shared by
  every connection to ``name`` in the process).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from datafx.connfx.errors import InvalidConfigError

__all__ = [
    "SCHEME_ALIASES",
    "TLS_SCHEMES",
    "ParsedDSN",
    "is_secret_option",
    "mask_dsn",
    "parse_dsn",
    "protocol_for_scheme",
]

# Scheme (lower case) -> protocol name. A scheme not listed is its own protocol.
SCHEME_ALIASES: dict[str, str] = {
    "postgresql": "postgres",
    "pgsql": "postgres",
    "rediss": "redis",
    "redis+cluster": "redis",
    "rediss+cluster": "redis",
    "mariadb": "mysql",
    "sqlite3": "sqlite",
    "mongodb+srv": "mongodb",
    "amqps": "amqp",
    "tls": "nats",
    "mem": "memory",
}

# Schemes that mean "connect with TLS".
TLS_SCHEMES = frozenset({"rediss", "rediss+cluster", "amqps", "tls"})

_MASK = "***"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
# Query parameters whose values are secrets, matched on a lower-case name.
_SECRET_WORDS = ("password", "passwd", "secret", "token")
_QUERY_SECRET = re.compile(
    r"(?P<name>[?&;][^=&;#]*(?:" + "|".join(_SECRET_WORDS) + r")[^=&;#]*=)[^&;#]*",
    re.IGNORECASE,
)


def is_secret_option(name: str) -> bool:
    """Return whether an option or query parameter named ``name`` is a secret."""
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def protocol_for_scheme(scheme: str) -> str:
    """Return the protocol name for a DSN scheme (``postgresql`` -> ``postgres``)."""
    scheme = scheme.lower()
    return SCHEME_ALIASES.get(scheme, scheme)


@dataclass(frozen=True, slots=True)
class ParsedDSN:
    """The parts of a DSN. ``password`` is decoded and never shown by ``repr``."""

    scheme: str
    protocol: str
    host: str | None = None
    port: int | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    path: str = ""
    query: dict[str, str] = field(default_factory=dict)
    tls: bool = False
    hosts: tuple[tuple[str, int | None], ...] = ()

    @property
    def database(self) -> str:
        """The path without its leading slash (database name or number)."""
        return self.path.lstrip("/")

    def masked(self) -> str:
        """Return the DSN with the password replaced by ``***``."""
        return self.to_url(mask_password=True)

    def to_url(self, *, mask_password: bool = False) -> str:
        userinfo = ""
        if self.username is not None or self.password is not None:
            userinfo = quote(self.username or "", safe="")
            if self.password is not None:
                secret = _MASK if mask_password else quote(self.password, safe="")
                userinfo += ":" + secret
            userinfo += "@"
        hosts = self.hosts or ((self.host or "", self.port),)
        netloc = ",".join(_format_host(h, p) for h, p in hosts)
        query = "&".join(
            f"{quote(k)}={_MASK if mask_password and is_secret_option(k) else quote(v)}"
            for k, v in self.query.items()
        )
        return f"{self.scheme}://{userinfo}{netloc}{self.path}" + (
            f"?{query}" if query else ""
        )

    def __str__(self) -> str:
        return self.masked()


def _format_host(host: str, port: int | None) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}" if port is not None else host


def mask_dsn(dsn: str) -> str:
    """Return ``dsn`` with any password replaced by ``***``, even if it is malformed.

    Everything between the scheme and the last ``@`` counts as user
    information, so a password with an unencoded ``@``, ``/``, ``#``, ``?``
    or ``:`` is masked whole. A DSN with ``@`` in its query may be masked
    more than needed, never less. Query parameters named like a password or
    token are masked too.
    """
    if not isinstance(dsn, str):
        return repr(type(dsn))
    dsn = _QUERY_SECRET.sub(lambda m: m.group("name") + _MASK, dsn)
    match = _SCHEME.match(dsn)
    if match is None:
        return dsn
    rest = dsn[match.end() :]
    userinfo, at, tail = rest.rpartition("@")
    if not at:
        return dsn
    user, colon, _ = userinfo.partition(":")
    masked = f"{user}:{_MASK}" if colon else userinfo
    return match.group(0) + masked + "@" + tail


def parse_dsn(dsn: str) -> ParsedDSN:
    """Parse ``dsn`` into its parts.

    Raises :class:`InvalidConfigError` for a malformed DSN; the message shows
    the DSN with its password masked.
    """
    if not isinstance(dsn, str) or not dsn.strip():
        raise InvalidConfigError(
            f"invalid DSN {dsn!r}: expected a URL such as 'sqlite:///data.db' "
            "or 'redis://127.0.0.1:6379/0'"
        )
    dsn = dsn.strip()
    scheme, sep, rest = dsn.partition("://")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.\-]*", scheme):
        raise InvalidConfigError(
            f"invalid DSN {mask_dsn(dsn)!r}: it has no scheme; start it with "
            "the protocol, as in 'sqlite:///data.db' or 'redis://127.0.0.1:6379/0'"
        )
    scheme = scheme.lower()
    protocol = protocol_for_scheme(scheme)
    if protocol == "sqlite":
        return _parse_sqlite(scheme, rest, dsn)
    if protocol == "memory":
        return _parse_memory(scheme, rest, dsn)
    return _parse_network(scheme, protocol, dsn)


def _parse_query(query: str, dsn: str) -> dict[str, str]:
    try:
        return dict(parse_qsl(query, keep_blank_values=True, strict_parsing=False))
    except ValueError as exc:
        raise InvalidConfigError(
            f"invalid query string in DSN {mask_dsn(dsn)!r}: {exc}"
        ) from None


def _parse_sqlite(scheme: str, rest: str, dsn: str) -> ParsedDSN:
    path, _, query = rest.partition("?")
    if path == ":memory:" or path == "/:memory:":
        database = ":memory:"
    elif path.startswith("/"):
        # sqlite:///relative.db -> "relative.db"; sqlite:////abs.db -> "/abs.db"
        database = unquote(path[1:])
    else:
        raise InvalidConfigError(
            f"invalid SQLite DSN {dsn!r}: use 'sqlite:///relative.db', "
            "'sqlite:////absolute/path.db' or 'sqlite://:memory:'"
        )
    if not database:
        raise InvalidConfigError(
            f"invalid SQLite DSN {dsn!r}: the file path is empty; "
            "use 'sqlite:///data.db'"
        )
    return ParsedDSN(
        scheme=scheme,
        protocol="sqlite",
        path=database,
        query=_parse_query(query, dsn),
    )


def _parse_memory(scheme: str, rest: str, dsn: str) -> ParsedDSN:
    name, _, query = rest.partition("?")
    return ParsedDSN(
        scheme=scheme,
        protocol="memory",
        host=unquote(name.strip("/")) or None,
        query=_parse_query(query, dsn),
    )


def _parse_network(scheme: str, protocol: str, dsn: str) -> ParsedDSN:
    masked = mask_dsn(dsn)
    try:
        parts = urlsplit(dsn)
    except ValueError as exc:
        raise InvalidConfigError(f"invalid DSN {masked!r}: {exc}") from None
    netloc = parts.netloc
    after_netloc = dsn.split("://", 1)[1][len(netloc) :]
    port_text = netloc.rpartition(":")[2] if ":" in netloc else ""
    if "@" not in netloc and "@" in after_netloc and not port_text.isdigit():
        # "user:pa#ss@host" splits at "#", leaving "user:pa" as host and port.
        raise InvalidConfigError(
            f"invalid DSN {masked!r}: the user name or password seems to contain "
            "an unencoded '/', '?' or '#'; percent-encode it, for example with "
            "urllib.parse.quote(password, safe='')"
        )
    userinfo, at, hostlist = netloc.rpartition("@")
    if not at:
        userinfo, hostlist = "", netloc
    username: str | None = None
    password: str | None = None
    if at:
        user_raw, colon, pass_raw = userinfo.partition(":")
        username = unquote(user_raw) if user_raw else None
        password = unquote(pass_raw) if colon else None
    hosts = tuple(_parse_host(item, masked) for item in hostlist.split(",") if item)
    host, port = hosts[0] if hosts else (None, None)
    return ParsedDSN(
        scheme=scheme,
        protocol=protocol,
        host=host,
        port=port,
        username=username,
        password=password,
        path=unquote(parts.path),
        query=_parse_query(parts.query, dsn),
        tls=scheme in TLS_SCHEMES,
        hosts=hosts,
    )


def _parse_host(item: str, masked: str) -> tuple[str, int | None]:
    if item.startswith("["):
        host, bracket, tail = item[1:].partition("]")
        if not bracket:
            raise InvalidConfigError(
                f"invalid DSN {masked!r}: unclosed '[' in IPv6 host {item!r}"
            )
        port_text = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port_text = item.partition(":")
    if not port_text:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InvalidConfigError(
            f"invalid DSN {masked!r}: port {port_text!r} is not a number "
            "from 1 to 65535"
        )
    return host, int(port_text)
