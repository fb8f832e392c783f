"""The command group itself: help, global options, errors, health, protocols, demo."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from datafx.cli import cli
from datafx.cli.demo import SECTIONS

Run = Callable[..., Result]


def test_help_names_default_dsn(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "sqlite:///datafx.db" in result.stdout
    assert "DATAFX_DSN" in result.stdout


def test_default_dsn_is_sqlite_file_in_cwd(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, ["kv", "set", "k", "1"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "datafx.db").is_file()
    assert runner.invoke(cli, ["kv", "get", "k"]).stdout == "1\n"


def test_dsn_comes_from_environment(runner: CliRunner, tmp_path: Path) -> None:
    env = {"DATAFX_DSN": f"sqlite:///{tmp_path / 'env.db'}"}
    result = runner.invoke(cli, ["kv", "set", "k", "1"], env=env)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "env.db").is_file()


def test_malformed_dsn_masks_password(runner: CliRunner) -> None:
    result = runner.invoke(
        cli, ["--dsn", "redis://user:hunter2@host:notaport/0", "health"]
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: invalid DSN ")
    assert "hunter2" not in result.stderr
    assert "***" in result.stderr
    assert result.stderr.count("\n") == 1


def test_dsn_without_scheme_fails(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--dsn", "datafx.db", "kv", "get", "k"])
    assert result.exit_code == 1
    assert "has no scheme" in result.stderr


def test_unknown_protocol_fails(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--dsn", "cassandra://127.0.0.1", "health"])
    assert result.exit_code == 1
    assert "unsupported protocol 'cassandra'" in result.stderr
    assert "memory" in result.stderr


def test_protocol_without_driver_names_extra() -> None:
    # A missing driver makes importing the adapter fail; None in
    # sys.modules makes that import raise ImportError.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    code = (
        "import sys; sys.modules['redis'] = None; "
        "from datafx.cli import main; "
        "sys.argv = ['datafx', '--dsn', 'redis://127.0.0.1:6379/0', 'health']; main()"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert completed.returncode == 1
    assert 'pip install "datafx[redis]"' in completed.stderr


def test_health_reports_ready(datafx: Run) -> None:
    result = datafx("health")
    assert result.exit_code == 0, result.output
    assert "state:    ready" in result.stdout
    assert "latency:" in result.stdout


def test_protocols_lists_builtins(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["protocols"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert "installed" in lines["memory"]
    assert "installed" in lines["sqlite"]
    assert 'pip install "datafx[redis]"' in lines["redis"]


def test_demo_runs_every_section(datafx: Run) -> None:
    result = datafx("demo")
    assert result.exit_code == 0, result.output
    assert f"Done: {len(SECTIONS)} of {len(SECTIONS)} sections ran" in result.stdout
    assert "KeyNotFoundError: key not found: 'demo:cache:short-lived'" in result.stdout
    assert "after the rollback: await store.exists('demo:pkg:draft')\n    -> False" in (
        result.stdout
    )


def test_demo_removes_its_keys(datafx: Run) -> None:
    datafx("demo")
    result = datafx("kv", "export", "--prefix", "demo:")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""


def test_python_m_datafx_runs(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "datafx", "--dsn", "memory://", "kv", "exists", "k"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == "false\n"


def test_version_option(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.startswith("datafx, version ")
