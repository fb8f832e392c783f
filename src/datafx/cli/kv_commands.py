"""``datafx kv``: read and write single keys, import and export JSON Lines."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import click
import msgspec

from datafx.cache import Cache
from datafx.cli.jsonl import (
    InputError,
    JsonLinesReader,
    JsonLinesWriter,
    key_of,
    open_input,
)
from datafx.cli.output import note, progress, rate
from datafx.cli.session import Settings, run_with_connection
from datafx.connfx.connection import Connection
from datafx.connfx.errors import UnmarshalError
from datafx.store import Store

__all__ = ["kv"]

_TTL = click.FloatRange(min=0.001)
_BATCH_SIZE = click.IntRange(min=1, max=100_000)


@click.group()
def kv() -> None:
    """Read and write keys, and import or export JSON Lines files."""


@kv.command()
@click.argument("key")
@click.option("--raw", is_flag=True, help="Write the stored bytes to stdout unchanged.")
@click.option("--pretty", is_flag=True, help="Indent the JSON value by two spaces.")
@click.pass_obj
def get(settings: Settings, key: str, raw: bool, pretty: bool) -> None:
    """Print the value of KEY as JSON (exit 1 when the key is missing)."""

    async def read(conn: Connection) -> bytes:
        return await Store(conn).get_raw(key)

    data = run_with_connection(settings, read)
    if raw:
        sys.stdout.buffer.write(data)
        return
    try:
        text = msgspec.json.format(data, indent=2 if pretty else 0)
    except msgspec.DecodeError as exc:
        raise UnmarshalError(
            f"the value of key {key!r} is not JSON ({exc}); "
            "print its bytes with: datafx kv get --raw KEY"
        ) from exc
    click.echo(text.decode("utf-8"))


@kv.command("set")
@click.argument("key")
@click.argument("value")
@click.option(
    "--ttl",
    type=_TTL,
    metavar="SECONDS",
    help="Expire the key after this many seconds (at least 0.001).",
)
@click.option(
    "--string", "as_string", is_flag=True, help="Store VALUE as a JSON string."
)
@click.option("--raw", is_flag=True, help="Store the bytes of VALUE as they are.")
@click.pass_obj
def set_(
    settings: Settings,
    key: str,
    value: str,
    ttl: float | None,
    as_string: bool,
    raw: bool,
) -> None:
    """Store VALUE (JSON text, or - to read it from stdin) under KEY.

    Without --ttl the key never expires, and any earlier expiry is removed.
    """
    if as_string and raw:
        raise click.UsageError("--string and --raw cannot be combined")
    data = sys.stdin.buffer.read() if value == "-" else value.encode("utf-8")
    decoded: object = None
    if as_string:
        decoded = data.decode("utf-8")
    elif not raw:
        try:
            decoded = msgspec.json.decode(data)
        except msgspec.DecodeError as exc:
            raise click.BadParameter(
                f"{exc}; quote text as '\"text\"' or pass --string",
                param_hint="VALUE (not valid JSON)",
            ) from exc

    async def write(conn: Connection) -> None:
        if ttl is not None:
            cache = Cache(conn)
            if raw:
                await cache.set_raw(key, data, ttl=ttl)
            else:
                await cache.set(key, decoded, ttl=ttl)
        elif raw:
            await Store(conn).set_raw(key, data)
        else:
            await Store(conn).set(key, decoded)

    run_with_connection(settings, write)


@kv.command("rm")
@click.argument("keys", nargs=-1, required=True)
@click.pass_obj
def remove(settings: Settings, keys: tuple[str, ...]) -> None:
    """Delete one or more KEYS; a missing key is not an error."""

    async def delete(conn: Connection) -> None:
        await Store(conn).remove_many(keys)

    run_with_connection(settings, delete)


@kv.command()
@click.argument("key")
@click.pass_obj
def exists(settings: Settings, key: str) -> None:
    """Print true when KEY exists (and has not expired), false otherwise."""

    async def check(conn: Connection) -> bool:
        return await Store(conn).exists(key)

    click.echo("true" if run_with_connection(settings, check) else "false")


@kv.command()
@click.argument("key")
@click.pass_obj
def ttl(settings: Settings, key: str) -> None:
    """Print the seconds KEY has left to live, or "none" when it never expires."""

    async def read(conn: Connection) -> float | None:
        remaining = await Cache(conn).get_ttl(key)
        return None if remaining is None else remaining.total_seconds()

    seconds = run_with_connection(settings, read)
    click.echo("none" if seconds is None else f"{seconds:.3f}")


@kv.command()
@click.argument("key")
@click.argument("seconds", type=_TTL)
@click.pass_obj
def expire(settings: Settings, key: str, seconds: float) -> None:
    """Make an existing KEY expire SECONDS from now."""

    async def update(conn: Connection) -> None:
        await Cache(conn).expire(key, seconds)

    run_with_connection(settings, update)


@kv.command("import")
@click.argument("file", metavar="FILE")
@click.option(
    "--key-field",
    default="id",
    show_default=True,
    help="The record field whose value becomes the key.",
)
@click.option("--prefix", default="", help="Text put in front of every key.")
@click.option(
    "--batch-size",
    type=_BATCH_SIZE,
    default=1000,
    show_default=True,
    help="Records written per set_many call.",
)
@click.pass_obj
def import_(
    settings: Settings, file: str, key_field: str, prefix: str, batch_size: int
) -> None:
    """Store every record of a JSON Lines FILE (.jsonl or .jsonl.gz, - for stdin).

    Each line must be a JSON object with the key field. A record replaces
    any value its key had. When a line is invalid, the error names it, and
    the batches before it are already stored. Rerunning the import after
    the fix is safe, because imports replace keys.
    """
    started = time.perf_counter()
    progress_enabled = settings.progress
    totals = _ImportTotals()
    with open_input(file) as source:
        reader = JsonLinesReader(source)

        async def load(conn: Connection) -> None:
            store = Store(conn)
            batch: dict[str, object] = {}
            with progress(source.size, "importing", enabled=progress_enabled) as bar:
                for line_number, record in reader:
                    key = prefix + key_of(record, key_field, source.name, line_number)
                    reader.check_duplicate(key, line_number)
                    batch[key] = record
                    if len(batch) >= batch_size:
                        await store.set_many(batch)
                        totals.stored += len(batch)
                        batch = {}
                        bar.update(source.advance())
                if batch:
                    await store.set_many(batch)
                    totals.stored += len(batch)
                bar.update(source.advance())

        try:
            run_with_connection(settings, load)
        except InputError as exc:
            raise InputError(
                f"{exc.message} ({totals.stored:,} records before it were stored; "
                "fix the file and import it again)"
            ) from exc
    elapsed = time.perf_counter() - started
    if reader.duplicates:
        note(
            f"warning: {reader.duplicates:,} records repeated an earlier key "
            f"(first on line {reader.first_duplicate_line}) and replaced it"
        )
    note(
        f"imported {reader.records:,} records from {source.name} in {elapsed:.2f} s "
        f"({rate(reader.records, elapsed)})"
    )


@dataclass(slots=True)
class _ImportTotals:
    stored: int = 0


@kv.command("export")
@click.option("--prefix", default="", help="Export only keys that start with this.")
@click.option(
    "--output",
    "-o",
    "output",
    default="-",
    metavar="FILE",
    help="Write to FILE (gzip-compressed when it ends in .gz); stdout by default.",
)
@click.option(
    "--batch-size",
    type=_BATCH_SIZE,
    default=1000,
    show_default=True,
    help="Keys read per get_many call.",
)
@click.pass_obj
def export(settings: Settings, prefix: str, output: str, batch_size: int) -> None:
    """Write the value of every key (in key order) as JSON Lines.

    Each value must be JSON; a multi-line value is written on one line.
    """
    started = time.perf_counter()
    with JsonLinesWriter.open(output) as writer:

        async def dump(conn: Connection) -> None:
            store = Store(conn)
            keys = [key async for key in store.scan_keys(prefix)]
            keys.sort()
            with progress(len(keys), "exporting", enabled=settings.progress) as bar:
                for start in range(0, len(keys), batch_size):
                    chunk = keys[start : start + batch_size]
                    try:
                        values = await store.get_many(chunk, msgspec.Raw)
                    except UnmarshalError as exc:
                        raise click.ClickException(
                            f"cannot export: the value of key {exc.key!r} is not "
                            "JSON; "
                            "read it with `datafx kv get --raw KEY`, or export a "
                            "--prefix that holds only JSON values"
                        ) from exc
                    for key in chunk:
                        value = values.get(key)
                        if value is None:
                            writer.skipped += 1
                        else:
                            writer.write(value)
                    bar.update(len(chunk))

        run_with_connection(settings, dump)
    elapsed = time.perf_counter() - started
    if writer.skipped:
        note(f"{writer.skipped:,} keys were removed during the export and skipped")
    destination = "stdout" if output == "-" else output
    note(
        f"exported {writer.count:,} records to {destination} in {elapsed:.2f} s "
        f"({rate(writer.count, elapsed)})"
    )
