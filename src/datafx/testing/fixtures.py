"""The ``backend`` fixture factory and the description of what a backend supports."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio

from datafx.connfx.config import ConfigTarget
from datafx.connfx.connection import Connection
from datafx.connfx.registry import Registry

__all__ = [
    "Backend",
    "BackendSpec",
    "Capabilities",
    "backend_fixture",
    "load_sample_records",
    "sample_data_path",
    "server_reachable",
    "services_required",
]

REQUIRE_SERVICES_VARIABLE = "DATAFX_REQUIRE_SERVICES"


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend offers; the suite checks that the rest fails cleanly."""

    key_value: bool = True
    cache: bool = True
    transactions: bool = True
    queues: bool = False
    streams: bool = False
    # Another connection to the same DSN reads the same data.
    shared_between_connections: bool = True
    # Queue consumers can be cancelled and their messages redelivered at once.
    consumer_groups: bool = True


@dataclass(frozen=True, slots=True)
class BackendSpec:
    """One backend the suite runs on.

    ``dsn`` may be a string or a callable returning one (for a temporary
    file per test). ``server`` is ``(host, port)`` of a server that must
    answer; the test is skipped when it does not, unless the environment
    variable ``DATAFX_REQUIRE_SERVICES=1`` makes it a failure.
    ``hash_tag_keys`` wraps each test's key prefix in a Redis Cluster hash
    tag (``{t1a2b...}:``), so that all keys of one test share a hash slot
    and multi-key transactions can run on a cluster.
    """

    id: str
    dsn: str | Callable[[Any], str]
    capabilities: Capabilities = field(default_factory=Capabilities)
    server: tuple[str, int] | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    marks: Sequence[Any] = ()
    setup: Callable[[], Awaitable[None]] | None = None
    hash_tag_keys: bool = False


@dataclass(slots=True)
class Backend:
    """What each conformance test receives: an open connection and helpers."""

    spec: BackendSpec
    registry: Registry
    conn: Connection
    dsn: str
    prefix: str

    @property
    def capabilities(self) -> Capabilities:
        return self.spec.capabilities

    def key(self, name: str = "key") -> str:
        """Return a key unique to this test, so tests never see each other's data."""
        return f"{self.prefix}{name}"

    async def connect(self, name: str | None = None) -> Connection:
        """Open one more connection to the same backend, closed with the fixture."""
        target = ConfigTarget(dsn=self.dsn, properties=dict(self.spec.properties))
        return await self.registry.add_connection(name or uuid.uuid4().hex, target)


def services_required() -> bool:
    return os.environ.get(REQUIRE_SERVICES_VARIABLE, "") in ("1", "true", "yes")


def server_reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _check_server(spec: BackendSpec) -> None:
    if spec.server is None:
        return
    host, port = spec.server
    if server_reachable(host, port):
        return
    reason = f"{spec.id}: no server answers on {host}:{port}"
    if services_required():
        pytest.fail(f"{reason} and {REQUIRE_SERVICES_VARIABLE}=1 requires it")
    pytest.skip(reason)


def backend_fixture(specs: Sequence[BackendSpec]) -> Any:
    """Return a pytest fixture named ``backend``, parametrized over ``specs``."""

    params = [pytest.param(spec, id=spec.id, marks=list(spec.marks)) for spec in specs]

    @pytest_asyncio.fixture(params=params)
    async def backend(
        request: pytest.FixtureRequest, tmp_path: Any
    ) -> AsyncIterator[Backend]:
        spec: BackendSpec = request.param
        _check_server(spec)
        if spec.setup is not None:
            await spec.setup()
        dsn = spec.dsn(tmp_path) if callable(spec.dsn) else spec.dsn
        registry = Registry.with_defaults()
        target = ConfigTarget(dsn=dsn, properties=dict(spec.properties))
        conn = await registry.add_connection("default", target)
        prefix = f"t{uuid.uuid4().hex[:12]}"
        prefix = f"{{{prefix}}}:" if spec.hash_tag_keys else f"{prefix}:"
        try:
            yield Backend(
                spec=spec, registry=registry, conn=conn, dsn=dsn, prefix=prefix
            )
        finally:
            await registry.close()

    return backend


DATA_VARIABLE = "DATAFX_PYPI_PACKAGES"
_DEFAULT_SAMPLE = ("..", "shared", "data", "pypi-packages.jsonl.gz")


def sample_data_path() -> str | None:
    """Return the path of the real package-metadata sample, or ``None`` when absent.

    ``DATAFX_PYPI_PACKAGES`` names the file; otherwise ``../shared/data`` beside
    the working directory is tried.
    """
    candidates = [
        os.environ.get(DATA_VARIABLE, ""),
        os.path.join(os.getcwd(), *_DEFAULT_SAMPLE),
    ]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


def load_sample_records(limit: int) -> list[dict[str, Any]]:
    """Read the first ``limit`` sample records; skip the test without the file."""
    import gzip
    import json

    path = sample_data_path()
    if path is None:
        pytest.skip(
            f"sample data not found; set {DATA_VARIABLE} to pypi-packages.jsonl.gz"
        )
    opener: Any = gzip.open if path.endswith(".gz") else open
    records: list[dict[str, Any]] = []
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            records.append(json.loads(line))
            if len(records) >= limit:
                break
    return records
