"""The backends the conformance suite runs on.

Each backend joins with one ``BackendSpec``: how to reach it and what it
supports. Server-backed specs skip when their server does not answer, unless
``DATAFX_REQUIRE_SERVICES=1`` is set (CI sets it), which turns that into a failure.
"""

from __future__ import annotations

from pathlib import Path

from datafx.testing import BackendSpec, backend_fixture


def _sqlite_dsn(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'conformance.db'}"


def _memory_dsn(tmp_path: Path) -> str:
    # A name per test: connections to memory://name share one database.
    return f"memory://{tmp_path.name}"


SPECS = [
    BackendSpec("memory", dsn=_memory_dsn),
    BackendSpec("sqlite", dsn=_sqlite_dsn),
]

backend = backend_fixture(SPECS)
