"""``datafx queue`` and ``datafx stream``: publish, consume and inspect messages."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click
import msgspec

from datafx.cli.output import echo_json
from datafx.cli.session import Settings, run_with_connection
from datafx.connfx.connection import Connection
from datafx.connfx.queueing import (
    OVERFLOW_REJECT_PUBLISH,
    ConsumerConfig,
    GroupInfo,
    QueueConfig,
)
from datafx.message import HeaderValue, Message, StreamEntry
from datafx.queue import Queue
from datafx.stream import QueueStream

__all__ = ["queue", "stream"]

_COUNT = click.IntRange(min=1)
_SECONDS = click.FloatRange(min=0)


def _parse_value(value: str, as_string: bool) -> Any:
    if as_string:
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(
            f"{value!r} is not JSON ({exc.msg}); quote strings as '\"text\"' "
            "or pass --string",
            param_hint="VALUE",
        ) from None


def _parse_headers(pairs: tuple[str, ...]) -> dict[str, HeaderValue]:
    """Parse ``name=value`` pairs; JSON numbers and booleans keep their type."""
    headers: dict[str, HeaderValue] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(
                f"{pair!r} is not name=value", param_hint="--header"
            )
        value: HeaderValue = text
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            parsed = text
        if isinstance(parsed, bool | int | float):
            value = parsed
        headers[name] = value
    return headers


def _body(data: bytes) -> Any:
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError:
        return data.decode("utf-8", errors="replace")


def _message_record(message: Message) -> dict[str, Any]:
    return {
        "id": message.message_id,
        "delivery_count": message.delivery_count,
        "timestamp": message.timestamp.isoformat(),
        "headers": message.headers,
        "body": _body(message.body),
    }


def _entry_record(entry: StreamEntry | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {
        "id": entry.entry_id,
        "timestamp": entry.timestamp.isoformat(),
        "headers": entry.headers,
        "body": _body(entry.body),
    }


def _group_record(group: GroupInfo) -> dict[str, Any]:
    return {
        "name": group.name,
        "consumers": group.consumers,
        "pending": group.pending,
        "lag": group.lag,
        "last_delivered_id": group.last_delivered_id,
        "entries_read": group.entries_read,
    }


_header_option = click.option(
    "--header",
    "headers",
    multiple=True,
    metavar="NAME=VALUE",
    help="A message header; repeat for more. Numbers and true/false keep their type.",
)
_string_option = click.option(
    "--string", "as_string", is_flag=True, help="Send VALUE as a JSON string."
)


async def _print_messages(subscription: Any, count: int, wait: float, ack: bool) -> int:
    """Print up to ``count`` messages as JSON lines; stop after ``wait`` idle."""
    printed = 0
    async with subscription as messages:
        while printed < count:
            try:
                async with asyncio.timeout(wait):
                    message = await anext(messages)
            except TimeoutError:
                break
            echo_json(_message_record(message))
            if ack:
                await message.ack()
            printed += 1
    return printed


# -- queue --------------------------------------------------------------------


@click.group()
def queue() -> None:
    """Declare queues, publish and consume messages, and show queue statistics."""


@queue.command()
@click.argument("name")
@click.option(
    "--max-length",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Keep at most this many messages (0 for no limit).",
)
@click.option(
    "--message-ttl",
    type=click.FloatRange(min=0.001),
    metavar="SECONDS",
    help="Drop messages not consumed within this many seconds.",
)
@click.option(
    "--reject-when-full",
    is_flag=True,
    help="Reject publishes to a full queue instead of dropping the oldest message.",
)
@click.pass_obj
def declare(
    settings: Settings,
    name: str,
    max_length: int,
    message_ttl: float | None,
    reject_when_full: bool,
) -> None:
    """Create queue NAME (declaring an existing queue changes nothing)."""
    args = {"overflow": OVERFLOW_REJECT_PUBLISH} if reject_when_full else {}
    config = QueueConfig(
        durable=True, max_length=max_length, message_ttl=message_ttl, args=args
    )

    async def run(conn: Connection) -> str:
        return await Queue(conn).declare_queue(name, config)

    click.echo(run_with_connection(settings, run))


@queue.command()
@click.argument("name")
@click.argument("value")
@_header_option
@_string_option
@click.pass_obj
def publish(
    settings: Settings,
    name: str,
    value: str,
    headers: tuple[str, ...],
    as_string: bool,
) -> None:
    """Publish VALUE (JSON) to queue NAME and print the message id."""
    body = _parse_value(value, as_string)
    header_values = _parse_headers(headers)

    async def run(conn: Connection) -> str:
        return await Queue(conn).publish(name, body, headers=header_values)

    click.echo(run_with_connection(settings, run))


@queue.command()
@click.argument("name")
@click.option(
    "--count", type=_COUNT, default=1, show_default=True, help="Messages to read."
)
@click.option("--group", help="Consumer group; it is created at new messages.")
@click.option("--consumer", help="Consumer name (unique per process by default).")
@click.option(
    "--wait",
    type=_SECONDS,
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="Stop when no message arrives for this long.",
)
@click.option(
    "--no-ack",
    is_flag=True,
    help="Hand messages back instead of acknowledging them.",
)
@click.pass_obj
def consume(
    settings: Settings,
    name: str,
    count: int,
    group: str | None,
    consumer: str | None,
    wait: float,
    no_ack: bool,
) -> None:
    """Print messages of queue NAME as JSON lines and acknowledge them."""
    config = ConsumerConfig(prefetch_count=min(count, 100), block_timeout=wait)

    async def run(conn: Connection) -> int:
        subscription = Queue(conn).consume(name, config, group, consumer)
        return await _print_messages(subscription, count, wait, not no_ack)

    run_with_connection(settings, run)


@queue.command()
@click.argument("name")
@click.pass_obj
def stats(settings: Settings, name: str) -> None:
    """Print the length, settings and consumer groups of queue NAME as JSON."""

    async def run(conn: Connection) -> dict[str, Any]:
        info = await Queue(conn).stats(name)
        return {
            "name": info.name,
            "length": info.length,
            "max_length": info.max_length,
            "message_ttl": info.message_ttl,
            "last_id": info.last_generated_id,
            "groups": [_group_record(g) for g in info.groups],
        }

    click.echo(json.dumps(run_with_connection(settings, run), indent=2))


# -- stream -------------------------------------------------------------------


@click.group()
def stream() -> None:
    """Append to streams, read them through consumer groups, trim and inspect them."""


@stream.command()
@click.argument("name")
@click.argument("value")
@_header_option
@_string_option
@click.pass_obj
def send(
    settings: Settings,
    name: str,
    value: str,
    headers: tuple[str, ...],
    as_string: bool,
) -> None:
    """Append VALUE (JSON) to stream NAME and print the entry id."""
    body = _parse_value(value, as_string)
    header_values = _parse_headers(headers)

    async def run(conn: Connection) -> str:
        return await QueueStream(conn).send_message(name, body, headers=header_values)

    click.echo(run_with_connection(settings, run))


@stream.command()
@click.argument("name")
@click.option("--group", required=True, help="Consumer group to read through.")
@click.option("--consumer", default="cli", show_default=True, help="Consumer name.")
@click.option(
    "--start",
    type=click.Choice(["0", "$"]),
    default="0",
    show_default=True,
    help="Where a new group starts: 0 for every entry, $ for new ones only.",
)
@click.option(
    "--count", type=_COUNT, default=10, show_default=True, help="Entries to read."
)
@click.option(
    "--wait",
    type=_SECONDS,
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="Stop when no entry arrives for this long.",
)
@click.option(
    "--no-ack", is_flag=True, help="Leave the entries pending to the consumer."
)
@click.pass_obj
def read(
    settings: Settings,
    name: str,
    group: str,
    consumer: str,
    start: str,
    count: int,
    wait: float,
    no_ack: bool,
) -> None:
    """Print entries of stream NAME for GROUP as JSON lines and acknowledge them."""
    config = ConsumerConfig(prefetch_count=min(count, 100), block_timeout=wait)

    async def run(conn: Connection) -> int:
        streams = QueueStream(conn)
        await streams.create_consumer_group(name, group, start)
        subscription = streams.consume(name, group, consumer, config)
        return await _print_messages(subscription, count, wait, not no_ack)

    run_with_connection(settings, run)


@stream.command()
@click.argument("name")
@click.pass_obj
def info(settings: Settings, name: str) -> None:
    """Print the length, first and last entries and group count of stream NAME."""

    async def run(conn: Connection) -> dict[str, Any]:
        found = await QueueStream(conn).get_stream_info(name)
        return {
            "name": found.name,
            "length": found.length,
            "groups": found.groups,
            "last_generated_id": found.last_generated_id,
            "first_entry": _entry_record(found.first_entry),
            "last_entry": _entry_record(found.last_entry),
        }

    click.echo(json.dumps(run_with_connection(settings, run), indent=2))


@stream.command()
@click.argument("name")
@click.pass_obj
def groups(settings: Settings, name: str) -> None:
    """Print each consumer group of stream NAME: consumers, pending and lag."""

    async def run(conn: Connection) -> list[GroupInfo]:
        return await QueueStream(conn).get_consumer_group_info(name)

    for group in run_with_connection(settings, run):
        echo_json(_group_record(group))


@stream.command()
@click.argument("name")
@click.argument("max_len", type=click.IntRange(min=0))
@click.pass_obj
def trim(settings: Settings, name: str, max_len: int) -> None:
    """Keep the newest MAX_LEN entries of stream NAME; print how many were removed."""

    async def run(conn: Connection) -> int:
        return await QueueStream(conn).trim_stream(name, max_len)

    click.echo(run_with_connection(settings, run))
