"""``datafx kv import`` and ``kv export``: JSON Lines in, the same records out."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from datafx.testing import sample_data_path

Run = Callable[..., Result]

RECORDS: list[dict[str, Any]] = [
    {"name": "aiosqlite", "version": "0.21.0", "month": "2025-02", "rank": 861},
    {"name": "httpx", "version": "0.28.1", "month": None, "rank": None},
    {"name": "zipp", "version": "3.21.0", "summary": "quotes \" and 'ok' \u2713"},
    {"name": "\u05e9\u05dc\u05d5\u05dd", "version": "1", "summary": "", "big": 2**80},
]

# The 100,000-record sample of package metadata: the file named by
# DATAFX_PYPI_PACKAGES, else the data directory beside the repository.
PYPI_PACKAGES = Path(
    sample_data_path()
    or Path(__file__).resolve().parents[3] / "shared/data/pypi-packages.jsonl.gz"
)


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    path.write_text(text, encoding="utf-8")
    return path


def read_jsonl(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines()]


def test_import_then_export_round_trip(datafx: Run, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "packages.jsonl", RECORDS)
    result = datafx(
        "kv", "import", str(source), "--key-field", "name", "--prefix", "p:"
    )
    assert result.exit_code == 0, result.output
    assert "imported 4 records" in result.stderr
    result = datafx("kv", "export", "--prefix", "p:")
    assert result.exit_code == 0, result.output
    exported = read_jsonl(result.stdout)
    assert exported == sorted(RECORDS, key=lambda r: r["name"])


def test_import_sets_one_key_per_record(datafx: Run, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "packages.jsonl", RECORDS)
    datafx("kv", "import", str(source), "--key-field", "name", "--prefix", "p:")
    result = datafx("kv", "get", "p:httpx")
    assert json.loads(result.stdout) == RECORDS[1]


def test_import_accepts_gzip_and_integer_keys(datafx: Run, tmp_path: Path) -> None:
    records = [{"id": i, "value": i * i} for i in range(2500)]
    source = tmp_path / "numbers.jsonl.gz"
    with gzip.open(source, "wt", encoding="utf-8") as stream:
        for record in records:
            stream.write(json.dumps(record) + "\n")
    result = datafx("kv", "import", str(source), "--batch-size", "1000")
    assert result.exit_code == 0, result.output
    assert "imported 2,500 records" in result.stderr
    assert json.loads(datafx("kv", "get", "1234").stdout) == {
        "id": 1234,
        "value": 1522756,
    }
    exported = read_jsonl(datafx("kv", "export").stdout)
    assert sorted(exported, key=lambda r: r["id"]) == records


def test_import_reads_stdin(datafx: Run) -> None:
    result = datafx("kv", "import", "-", input='{"id": "a", "n": 1}\n\n{"id": "b"}\n')
    assert result.exit_code == 0, result.output
    assert "imported 2 records from stdin" in result.stderr
    assert json.loads(datafx("kv", "get", "a").stdout) == {"id": "a", "n": 1}


def test_export_to_gzip_file(datafx: Run, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "packages.jsonl", RECORDS)
    datafx("kv", "import", str(source), "--key-field", "name")
    target = tmp_path / "out.jsonl.gz"
    result = datafx("kv", "export", "--output", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert f"exported 4 records to {target}" in result.stderr
    with gzip.open(target, "rt", encoding="utf-8") as stream:
        exported = read_jsonl(stream.read())
    assert exported == sorted(RECORDS, key=lambda r: r["name"])


def test_export_writes_multiline_values_on_one_line(datafx: Run) -> None:
    datafx("kv", "set", "--raw", "pretty", "-", input=b'{\n  "a": 1,\n  "b": [2]\n}')
    result = datafx("kv", "export")
    assert result.stdout.count("\n") == 1
    assert json.loads(result.stdout) == {"a": 1, "b": [2]}


def test_export_of_non_json_value_names_the_key(datafx: Run) -> None:
    datafx("kv", "set", "--raw", "blob", "not json")
    result = datafx("kv", "export")
    assert result.exit_code == 1
    assert "'blob'" in result.stderr


def test_import_reports_bad_json_line(datafx: Run, tmp_path: Path) -> None:
    source = tmp_path / "bad.jsonl"
    source.write_text('{"id": "a"}\n{"id": "b"}\n{"id": "c",\n', encoding="utf-8")
    result = datafx("kv", "import", str(source), "--batch-size", "1")
    assert result.exit_code == 1
    assert f"{source} line 3: invalid JSON" in result.stderr
    assert "2 records before it were stored" in result.stderr
    assert datafx("kv", "exists", "b").stdout == "true\n"


def test_import_rejects_record_without_key_field(datafx: Run, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "packages.jsonl", RECORDS)
    result = datafx("kv", "import", str(source), "--key-field", "id")
    assert result.exit_code == 1
    assert "line 1: the record has no field 'id'" in result.stderr
    assert "name, version, month, rank" in result.stderr
    assert "--key-field" in result.stderr


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"id": null}', "got null None"),
        ('{"id": ""}', "got a string ''"),
        ('{"id": 1.5}', "got a number 1.5"),
        ('{"id": true}', "got a boolean True"),
        ('{"id": {"a": 1}}', "got an object"),
    ],
)
def test_import_rejects_unusable_key_values(
    datafx: Run, tmp_path: Path, line: str, expected: str
) -> None:
    source = tmp_path / "keys.jsonl"
    source.write_text(line + "\n", encoding="utf-8")
    result = datafx("kv", "import", str(source))
    assert result.exit_code == 1
    assert (
        "line 1: field 'id' must be a non-empty string or an integer" in result.stderr
    )
    assert expected in result.stderr


def test_import_rejects_non_object_line(datafx: Run, tmp_path: Path) -> None:
    source = tmp_path / "list.jsonl"
    source.write_text('{"id": 1}\n[1, 2]\n', encoding="utf-8")
    result = datafx("kv", "import", str(source))
    assert result.exit_code == 1
    assert "line 2: expected a JSON object, got an array" in result.stderr


def test_import_of_missing_file_fails(datafx: Run, tmp_path: Path) -> None:
    result = datafx("kv", "import", str(tmp_path / "absent.jsonl"))
    assert result.exit_code == 1
    assert f"cannot read {tmp_path / 'absent.jsonl'}: No such file" in result.stderr


def test_import_of_corrupt_gzip_fails(datafx: Run, tmp_path: Path) -> None:
    source = tmp_path / "broken.jsonl.gz"
    data = gzip.compress(b'{"id": 1}\n' * 1000)
    source.write_bytes(data[: len(data) // 2])
    result = datafx("kv", "import", str(source))
    assert result.exit_code == 1
    assert f"cannot read {source}" in result.stderr


def test_import_warns_about_repeated_keys(datafx: Run, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "dup.jsonl", [{"id": 1, "v": 1}, {"id": 1, "v": 2}])
    result = datafx("kv", "import", str(source))
    assert result.exit_code == 0, result.output
    assert "1 records repeated an earlier key (first on line 2)" in result.stderr
    assert json.loads(datafx("kv", "get", "1").stdout) == {"id": 1, "v": 2}


@pytest.mark.slow
def test_pypi_packages_round_trip(datafx: Run, tmp_path: Path) -> None:
    if not PYPI_PACKAGES.is_file():
        pytest.skip(f"{PYPI_PACKAGES} is absent; set DATAFX_PYPI_PACKAGES to a copy")
    result = datafx("kv", "import", str(PYPI_PACKAGES), "--key-field", "name")
    assert result.exit_code == 0, result.output
    assert "imported 100,000 records" in result.stderr
    target = tmp_path / "export.jsonl"
    result = datafx("kv", "export", "--output", str(target))
    assert result.exit_code == 0, result.output
    with gzip.open(PYPI_PACKAGES, "rt", encoding="utf-8") as stream:
        original = [json.loads(line) for line in stream]
    exported = read_jsonl(target.read_text(encoding="utf-8"))
    assert len(exported) == len(original)
    assert sorted(exported, key=lambda r: r["name"]) == sorted(
        original, key=lambda r: r["name"]
    )
