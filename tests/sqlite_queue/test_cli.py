"""The ``datafx queue`` and ``datafx stream`` commands and the orders demo on SQLite."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from datafx.cli import cli

Invoke = Callable[..., Result]


@pytest.fixture
def run(tmp_path: Path) -> Invoke:
    runner = CliRunner(env={"DATAFX_DSN": None})
    dsn = f"sqlite:///{tmp_path / 'cli.db'}"

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, ["--dsn", dsn, *args], catch_exceptions=False)

    return invoke


def test_queue_publish_consume_stats(run: Invoke) -> None:
    assert run("queue", "declare", "jobs", "--max-length", "10").output == "jobs\n"
    published = run(
        "queue", "publish", "jobs", '{"a": 1}', "--header", "n=3", "--header", "w=x"
    )
    assert published.exit_code == 0
    run("queue", "publish", "jobs", "two", "--string")
    stats = json.loads(run("queue", "stats", "jobs").output)
    assert stats["length"] == 2
    assert stats["max_length"] == 10
    consumed = run("queue", "consume", "jobs", "--count", "5", "--wait", "0.3")
    lines = [json.loads(line) for line in consumed.output.splitlines()]
    assert [line["body"] for line in lines] == [{"a": 1}, "two"]
    assert lines[0]["headers"] == {"n": 3, "w": "x"}
    assert lines[0]["id"] == published.output.strip()
    assert json.loads(run("queue", "stats", "jobs").output)["length"] == 0


def test_queue_consume_no_ack_hands_back(run: Invoke) -> None:
    run("queue", "declare", "jobs")
    run("queue", "publish", "jobs", "1")
    first = run("queue", "consume", "jobs", "--no-ack", "--wait", "0.3")
    again = run("queue", "consume", "jobs", "--wait", "0.3")
    assert json.loads(first.output)["delivery_count"] == 1
    assert json.loads(again.output)["delivery_count"] == 2


def test_queue_errors_exit_with_message(run: Invoke) -> None:
    missing = run("queue", "consume", "nope", "--wait", "0.1")
    assert missing.exit_code == 1
    assert "not found: 'nope'" in missing.output
    assert "datafx queue declare" in missing.output
    run("queue", "declare", "full", "--max-length", "1", "--reject-when-full")
    run("queue", "publish", "full", "1")
    rejected = run("queue", "publish", "full", "2")
    assert rejected.exit_code == 1
    assert "full" in rejected.output
    bad_header = run("queue", "publish", "full", "1", "--header", "novalue")
    assert bad_header.exit_code == 2


def test_stream_commands(run: Invoke) -> None:
    first = run("stream", "send", "events", '{"n": 1}', "--header", "k=v").output
    run("stream", "send", "events", '{"n": 2}')
    last = run("stream", "send", "events", '{"n": 3}').output
    read = run("stream", "read", "events", "--group", "g", "--count", "2")
    assert [json.loads(line)["body"] for line in read.output.splitlines()] == [
        {"n": 1},
        {"n": 2},
    ]
    info = json.loads(run("stream", "info", "events").output)
    assert info["length"] == 3
    assert info["first_entry"]["id"] == first.strip()
    assert info["first_entry"]["headers"] == {"k": "v"}
    assert info["last_generated_id"] == last.strip()
    [group] = [
        json.loads(line)
        for line in run("stream", "groups", "events").output.splitlines()
    ]
    assert group["name"] == "g"
    assert group["lag"] == 1
    assert group["pending"] == 0
    assert run("stream", "trim", "events", "1").output == "2\n"
    assert json.loads(run("stream", "info", "events").output)["length"] == 1


def test_demo_runs_orders_section(run: Invoke) -> None:
    result = run("demo")
    assert result.exit_code == 0, result.output
    assert "order processing" in result.output
    assert "fulfilled orders: [1001, 1002, 1003, 1005]" in result.output
    assert "delivered 3 times (max_retries=2)" in result.output
    assert "lag=2" in result.output
    second = run("demo")
    assert second.exit_code == 0, second.output
    assert "fulfilled orders: [1001, 1002, 1003, 1005]" in second.output
