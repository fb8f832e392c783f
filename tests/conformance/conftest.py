"""The backends the conformance suite runs on.

Each backend joins with one ``BackendSpec``: how to reach it and what it
supports. Server-backed specs skip when their server does not answer, unless
``DATAFX_REQUIRE_SERVICES=1`` is set (CI sets it), which turns that into a failure.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from datafx.connfx import ConfigTarget, Registry
from datafx.testing import BackendSpec, Capabilities, backend_fixture, server_reachable


def _sqlite_dsn(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'conformance.db'}"


# One table prefix per test run, so parallel runs never share SQL tables.
SQL_PREFIX = f"cf{uuid.uuid4().hex[:10]}_"
POSTGRES_DSN = "postgres://postgres@127.0.0.1:5432/test"
MYSQL_DSN = "mysql://root@127.0.0.1:3306/test"
SQL_TABLES = (
    "kv",
    "schema_version",
    "queues",
    "queue_messages",
    "queue_groups",
    "queue_pending",
    "queue_consumers",
)


def _redis_cluster_dsn(tmp_path: Path) -> str:
    # Three redis-server processes on free loopback ports, started once for
    # the session and stopped when it ends.
    from datafx.connfx.adapters.redis.localserver import shared_cluster

    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.skip("redis-cluster: redis-server or redis-cli is not on PATH")
    return shared_cluster().dsn


def _memory_dsn(tmp_path: Path) -> str:
    # A name per test: connections to memory://name share one database.
    return f"memory://{tmp_path.name}"


SPECS = [
    BackendSpec(
        "memory",
        dsn=_memory_dsn,
        capabilities=Capabilities(queues=True, streams=True),
    ),
    BackendSpec(
        "sqlite",
        dsn=_sqlite_dsn,
        capabilities=Capabilities(queues=True, streams=True),
    ),
    BackendSpec(
        "redis",
        dsn="redis://127.0.0.1:6379/0",
        server=("127.0.0.1", 6379),
        capabilities=Capabilities(queues=True, streams=True),
        marks=[pytest.mark.server],
    ),
    BackendSpec(
        "redis-cluster",
        dsn=_redis_cluster_dsn,
        capabilities=Capabilities(queues=True, streams=True),
        marks=[pytest.mark.server],
        hash_tag_keys=True,
    ),
    BackendSpec(
        "postgres",
        dsn=POSTGRES_DSN,
        server=("127.0.0.1", 5432),
        properties={"table_prefix": SQL_PREFIX, "pool_size": 4},
        capabilities=Capabilities(queues=True, streams=True),
        marks=[pytest.mark.server],
    ),
    BackendSpec(
        "mysql",
        dsn=MYSQL_DSN,
        server=("127.0.0.1", 3306),
        properties={"table_prefix": SQL_PREFIX, "pool_size": 4},
        capabilities=Capabilities(queues=True, streams=True),
        marks=[pytest.mark.server],
    ),
]

backend = backend_fixture(SPECS)


async def _drop_sql_tables() -> None:
    # Drop every table this run created, whichever SQL server answered.
    async with Registry.with_defaults() as registry:
        for name, dsn, port, quote in (
            ("pg", POSTGRES_DSN, 5432, '"'),
            ("my", MYSQL_DSN, 3306, "`"),
        ):
            if not server_reachable("127.0.0.1", port):
                continue
            conn = await registry.add_connection(name, ConfigTarget(dsn=dsn))
            for suffix in SQL_TABLES:
                await conn.execute(  # type: ignore[attr-defined]
                    f"DROP TABLE IF EXISTS {quote}{SQL_PREFIX}{suffix}{quote}"
                )


@pytest.fixture(scope="session", autouse=True)
def _sql_tables_dropped() -> Iterator[None]:
    yield
    asyncio.run(_drop_sql_tables())
