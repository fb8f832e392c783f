"""Fixtures for the command-line tests: a click runner and a DSN per backend.

``memory://`` data lives only while a connection is open, so the memory
fixture keeps one connection to a named database open for the whole test;
each command the test runs then reads the data that the ones before it wrote.
"""

from __future__ import annotations

import asyncio
import importlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from datafx.cli import cli
from datafx.connfx.adapters.memory import MemoryConnection
from datafx.connfx.config import ConfigTarget


def sqlite_available() -> bool:
    try:
        module = importlib.import_module("datafx.connfx.adapters.sqlite")
    except ImportError:
        return False
    return hasattr(module, "factory")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env={"DATAFX_DSN": None})


@pytest.fixture(params=["memory", "sqlite"])
def dsn(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        if not sqlite_available():
            pytest.skip("the SQLite adapter is not installed in this tree")
        yield f"sqlite:///{tmp_path / 'cli.db'}"
        return
    location = f"memory://cli-{uuid.uuid4().hex}"
    holder = MemoryConnection("holder", ConfigTarget.from_dsn(location))
    try:
        yield location
    finally:
        asyncio.run(holder.close())


class Datafx:
    """Runs ``datafx --dsn <dsn> ...`` in the test process."""

    def __init__(self, runner: CliRunner, dsn: str) -> None:
        self.runner = runner
        self.dsn = dsn

    def __call__(self, *args: str, input: str | bytes | None = None) -> Result:
        return self.runner.invoke(
            cli, ["--dsn", self.dsn, *args], input=input, catch_exceptions=False
        )


@pytest.fixture
def datafx(runner: CliRunner, dsn: str) -> Datafx:
    return Datafx(runner, dsn)
