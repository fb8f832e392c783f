"""``datafx kv get|set|rm|exists|ttl|expire`` on memory and SQLite."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from click.testing import Result

Run = Callable[..., Result]


def test_set_then_get_returns_json(datafx: Run) -> None:
    result = datafx("kv", "set", "pkg:httpx", '{"name": "httpx", "rank": 96}')
    assert result.exit_code == 0, result.output
    result = datafx("kv", "get", "pkg:httpx")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"name": "httpx", "rank": 96}


def test_get_pretty_indents(datafx: Run) -> None:
    datafx("kv", "set", "k", '{"a": [1, 2]}')
    result = datafx("kv", "get", "--pretty", "k")
    assert result.stdout == '{\n  "a": [\n    1,\n    2\n  ]\n}\n'


def test_set_keeps_unicode_and_big_integers(datafx: Run) -> None:
    value = '{"summary": "Ünïcødé ✓ שלום", "n": 123456789012345678901234567890}'
    datafx("kv", "set", "unicode key ✓", value)
    result = datafx("kv", "get", "unicode key ✓")
    assert json.loads(result.stdout) == json.loads(value)


def test_set_string_flag_stores_text(datafx: Run) -> None:
    datafx("kv", "set", "--string", "greeting", "hello world")
    result = datafx("kv", "get", "greeting")
    assert result.stdout == '"hello world"\n'


def test_set_rejects_invalid_json(datafx: Run) -> None:
    result = datafx("kv", "set", "k", "hello world")
    assert result.exit_code == 2
    assert "not valid JSON" in result.stderr
    assert "--string" in result.stderr


def test_set_reads_stdin_for_dash(datafx: Run) -> None:
    datafx("kv", "set", "k", "-", input='[1, "two"]')
    assert json.loads(datafx("kv", "get", "k").stdout) == [1, "two"]


def test_raw_bytes_round_trip(datafx: Run) -> None:
    result = datafx("kv", "set", "--raw", "blob", "-", input=b"\x00\xffnot json")
    assert result.exit_code == 0, result.output
    result = datafx("kv", "get", "--raw", "blob")
    assert result.stdout_bytes == b"\x00\xffnot json"


def test_get_non_json_value_suggests_raw(datafx: Run) -> None:
    datafx("kv", "set", "--raw", "blob", "not json")
    result = datafx("kv", "get", "blob")
    assert result.exit_code == 1
    assert "is not JSON" in result.stderr
    assert "--raw" in result.stderr


def test_get_missing_key_fails(datafx: Run) -> None:
    result = datafx("kv", "get", "nope")
    assert result.exit_code == 1
    assert result.stderr == "Error: key not found: 'nope'\n"
    assert result.stdout == ""


def test_get_empty_key_fails(datafx: Run) -> None:
    result = datafx("kv", "get", "")
    assert result.exit_code == 1
    assert "non-empty" in result.stderr


def test_exists_and_rm(datafx: Run) -> None:
    datafx("kv", "set", "a", "1")
    datafx("kv", "set", "b", "2")
    assert datafx("kv", "exists", "a").stdout == "true\n"
    result = datafx("kv", "rm", "a", "b", "never-set")
    assert result.exit_code == 0, result.output
    assert datafx("kv", "exists", "a").stdout == "false\n"
    assert datafx("kv", "exists", "b").stdout == "false\n"


def test_ttl_of_key_without_expiry_is_none(datafx: Run) -> None:
    datafx("kv", "set", "k", "1")
    result = datafx("kv", "ttl", "k")
    assert result.exit_code == 0, result.output
    assert result.stdout == "none\n"


def test_set_with_ttl_then_expire(datafx: Run) -> None:
    datafx("kv", "set", "--ttl", "60", "k", "1")
    remaining = float(datafx("kv", "ttl", "k").stdout)
    assert 55 < remaining <= 60
    result = datafx("kv", "expire", "k", "600")
    assert result.exit_code == 0, result.output
    remaining = float(datafx("kv", "ttl", "k").stdout)
    assert 590 < remaining <= 600


def test_key_expires_after_ttl(datafx: Run) -> None:
    datafx("kv", "set", "--ttl", "0.2", "k", '"short"')
    assert datafx("kv", "get", "k").stdout == '"short"\n'
    time.sleep(0.3)
    result = datafx("kv", "get", "k")
    assert result.exit_code == 1
    assert "key not found" in result.stderr


def test_set_without_ttl_removes_expiry(datafx: Run) -> None:
    datafx("kv", "set", "--ttl", "60", "k", "1")
    datafx("kv", "set", "k", "2")
    assert datafx("kv", "ttl", "k").stdout == "none\n"


def test_ttl_and_expire_of_missing_key_fail(datafx: Run) -> None:
    result = datafx("kv", "ttl", "nope")
    assert result.exit_code == 1
    assert "key not found: 'nope'" in result.stderr
    result = datafx("kv", "expire", "nope", "10")
    assert result.exit_code == 1
    assert "key not found: 'nope'" in result.stderr


def test_ttl_below_one_millisecond_is_rejected(datafx: Run) -> None:
    result = datafx("kv", "set", "--ttl", "0", "k", "1")
    assert result.exit_code == 2
    assert "--ttl" in result.stderr
    assert datafx("kv", "exists", "k").stdout == "false\n"


def test_string_and_raw_together_are_rejected(datafx: Run) -> None:
    result = datafx("kv", "set", "--string", "--raw", "k", "v")
    assert result.exit_code == 2
    assert "cannot be combined" in result.stderr
