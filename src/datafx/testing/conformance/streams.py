"""Conformance tests for streams through ``datafx.QueueStream``.

Every test takes the ``backend`` fixture (a :class:`datafx.testing.Backend`)
and bounds every wait with ``asyncio.timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import datafx
from datafx.connfx import ConsumerConfig
from datafx.testing.fixtures import Backend

WAIT = 5.0  # Upper bound of every wait; a correct backend needs far less.


async def stop(task: asyncio.Task[Any]) -> None:
    """Cancel a consumer loop; fail when it does not stop within ``WAIT`` seconds."""
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=WAIT)
    if not done:
        pytest.fail(f"a cancelled consumer loop did not stop within {WAIT} s")
    with contextlib.suppress(asyncio.CancelledError):
        task.result()


def fast_config(**kwargs: Any) -> ConsumerConfig:
    return ConsumerConfig(block_timeout=0.1, retry_delay=0.05, **kwargs)


def _stream(backend: Backend) -> datafx.QueueStream:
    if not backend.capabilities.streams:
        pytest.skip(f"{backend.spec.id} has no streaming behavior")
    return datafx.QueueStream(backend.conn)


def _id_key(entry_id: str) -> tuple[int, ...]:
    """Order ids numerically: ``"12"`` and Redis-style ``"1700000000000-3"``."""
    return tuple(int(part) for part in entry_id.split("-"))


async def read(
    stream: datafx.QueueStream,
    name: str,
    group: str,
    consumer: str,
    count: int,
    *,
    ack: bool = True,
) -> list[datafx.Message]:
    """Read ``count`` entries as ``consumer`` of ``group``, fetching no more."""
    received: list[datafx.Message] = []
    config = fast_config(prefetch_count=count)
    async with asyncio.timeout(WAIT):
        async with stream.consume(name, group, consumer, config) as entries:
            async for entry in entries:
                received.append(entry)
                if ack:
                    await entry.ack()
                if len(received) >= count:
                    break
    return received


async def read_nothing(
    stream: datafx.QueueStream, name: str, group: str, consumer: str, wait: float = 0.3
) -> datafx.Message | None:
    async with asyncio.timeout(WAIT):
        async with stream.consume(name, group, consumer, fast_config()) as entries:
            try:
                async with asyncio.timeout(wait):
                    return await anext(entries)
            except TimeoutError:
                return None


async def _group(stream: datafx.QueueStream, name: str, group: str) -> Any:
    infos = await stream.get_consumer_group_info(name)
    [info] = [g for g in infos if g.name == group]
    return info


async def test_stream_behavior_matches_capabilities(backend: Backend) -> None:
    if backend.capabilities.streams:
        datafx.QueueStream(backend.conn)
        return
    with pytest.raises(datafx.ConnectionNotSupportedError):
        datafx.QueueStream(backend.conn)


async def test_entry_ids_increase(backend: Backend) -> None:
    stream = _stream(backend)
    name = backend.key("s")
    ids = [await stream.send_message(name, i) for i in range(30)]
    keys = [_id_key(i) for i in ids]
    assert keys == sorted(keys)
    assert len(set(ids)) == 30


async def test_group_from_beginning_reads_all(backend: Backend) -> None:
    stream = _stream(backend)
    name = backend.key("s")
    for i in range(3):
        await stream.send_message(name, i, headers={"n": i})
    assert await stream.create_consumer_group(name, "all", "0") is True
    assert await stream.create_consumer_group(name, "all", "0") is False
    entries = await read(stream, name, "all", "c1", 3)
    assert [e.decode() for e in entries] == [0, 1, 2]
    assert [e.headers for e in entries] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert {e.consumer_group for e in entries} == {"all"}


async def test_group_at_new_reads_only_new(backend: Backend) -> None:
    stream = _stream(backend)
    name = backend.key("s")
    await stream.send_message(name, "old")
    await stream.create_consumer_group(name, "new-only", "$")
    await stream.send_message(name, "new")
    [entry] = await read(stream, name, "new-only", "c1", 1)
    assert entry.decode() == "new"
    assert await read_nothing(stream, name, "new-only", "c1") is None


async def test_group_after_entry_id_reads_later_entries(backend: Backend) -> None:
    stream = _stream(backend)
    name = backend.key("s")
    first = await stream.send_message(name, "first")
    await stream.send_message(name, "second")
    await stream.create_consumer_group(name, "after-first", first)
    [entry] = await read(stream, name, "after-first", "c1", 1)
    assert entry.decode() == "second"


async def test_invalid_start_ids_are_rejected(backend: Backend) -> None:
    stream = _stream(backend)
    name = backend.key("s")
    await stream.send_message(name, "entry")
    for bad in ("-1", "abc", "1.5", "99999999999999999999999", "1-2-3"):
        with pytest.raises(ValueError, match="start_id"):
            await stream.create_consumer_group(name, f"g{bad}", bad)
    info = await stream.get_consumer_group_info(name)
    assert info == []


async def test_groups_each_read_every_entry(backend: Backend) -> None:
    stream = _stream(backend)
    name = backend.key("s")
    await stream.create_consumer_group(name, "a", "0")
    await stream.create_consumer_group(name, "b", "0")
    for i in range(4):
        await stream.send_message(name, i)
    a = await read(stream, name, "a", "c", 4)
    b = await read(stream, name, "b", "c", 4)
    assert [e.decode() for e in a] == [0, 1, 2, 3]
    assert [e.decode() for e in b] == [0, 1, 2, 3]
    info = await stream.get_stream_info(name)
    assert info.length == 4  # acknowledged entries stay until trimmed


async def test_pending_until_acked(backend: Backend) -> None:
    stream = _stream(backend)
    name = backend.key("s")
    await stream.create_consumer_group(name, "g", "0")
    for i in range(3):
        await stream.send_message(name, i)
    entries = await read(stream, name, "g", "c1", 3, ack=False)
    info = await _group(stream, name, "g")
    assert info.pending == 3
    assert info.consumers >= 1
    for entry in entries:
        await entry.ack()
    info = await _group(stream, name, "g")
    assert info.pending == 0
    # A closed stream consumer does not hand entries back: they were acked.
    assert await read_nothing(stream, name, "g", "c1") is None


async def test_cancelled_consumer_leaves_entries_pending(backend: Backend) -> None:
    stream = _stream(backend)
    name = backend.key("s")
    await stream.create_consumer_group(name, "g", "0")
    await stream.send_message(name, "work")
    started = asyncio.Event()

    async def stuck(value: Any) -> bool:
        started.set()
        await asyncio.Event().wait()
        return True

    task = asyncio.create_task(
        stream.process_messages_from_group(name, "g", "c1", stuck, config=fast_config())
    )
    async with asyncio.timeout(WAIT):
        await started.wait()
    await stop(task)
    assert (await _group(stream, name, "g")).pending == 1
    assert await read_nothing(stream, name, "g", "c2", wait=0.2) is None
    await asyncio.sleep(0.1)
    [claimed] = await stream.claim_pending_messages(name, "g", "c2", 0.05, 10)
    assert claimed.decode() == "work"
    assert claimed.delivery_count == 2
    await claimed.ack()
    assert (await _group(stream, name, "g")).pending == 0


async def test_claim_pages_through_idle_entries(backend: Backend) -> None:
    stream = _stream(backend)
    name = backend.key("s")
    await stream.create_consumer_group(name, "g", "0")
    for i in range(5):
        await stream.send_message(name, i)
    await read(stream, name, "g", "dead", 5, ack=False)
    assert await stream.claim_pending_messages(name, "g", "c2", 30.0, 10) == []
    await asyncio.sleep(0.15)
    pages = []
    for _ in range(4):
        pages.append(
            await stream.claim_pending_messages(
                name, "g", "c2", timedelta(seconds=0.1), 2
            )
        )
    assert [len(p) for p in pages] == [2, 2, 1, 0]
    claimed = [e.decode() for page in pages for e in page]
    assert claimed == [0, 1, 2, 3, 4]


async def test_trimmed_pending_entries_are_dropped(backend: Backend) -> None:
    stream = _stream(backend)
    name = backend.key("s")
    await stream.create_consumer_group(name, "g", "0")
    for i in range(4):
        await stream.send_message(name, i)
    await read(stream, name, "g", "dead", 4, ack=False)
    assert await stream.trim_stream(name, 1) == 3
    await asyncio.sleep(0.1)
    claimed = await stream.claim_pending_messages(name, "g", "c2", 0.05, 10)
    assert [e.decode() for e in claimed] == [3]
    assert all(e.body for e in claimed)
    assert (await _group(stream, name, "g")).pending == 1


async def test_stream_info(backend: Backend) -> None:
    stream = _stream(backend)
    name = backend.key("s")
    before = datetime.now(UTC) - timedelta(seconds=5)
    ids = [
        await stream.send_message(name, {"n": i}, headers={"i": i}) for i in range(5)
    ]
    await stream.create_consumer_group(name, "g1", "0")
    await stream.create_consumer_group(name, "g2", "$")
    info = await stream.get_stream_info(name)
    assert info.length == 5
    assert info.groups == 2
    assert info.last_generated_id == ids[-1]
    assert info.first_entry is not None
    assert info.last_entry is not None
    assert info.first_entry.entry_id == ids[0]
    assert info.first_entry.decode() == {"n": 0}
    assert info.first_entry.headers == {"i": 0}
    assert info.last_entry.entry_id == ids[-1]
    assert info.last_entry.decode() == {"n": 4}
    assert info.last_entry.timestamp >= before
    await stream.trim_stream(name, 2)
    info = await stream.get_stream_info(name)
    assert info.length == 2
    assert info.first_entry is not None
    assert info.first_entry.entry_id == ids[3]
    assert info.last_generated_id == ids[-1]


async def test_empty_stream_info(backend: Backend) -> None:
    stream = _stream(backend)
    name = backend.key("s")
    await stream.create_consumer_group(name, "g", "$")
    info = await stream.get_stream_info(name)
    assert info.length == 0
    assert info.first_entry is None
    assert info.last_entry is None
    assert info.groups == 1


async def test_missing_stream_info_raises(backend: Backend) -> None:
    stream = _stream(backend)
    with pytest.raises(datafx.QueueNotFoundError):
        await stream.get_stream_info(backend.key("missing"))
    with pytest.raises(datafx.QueueNotFoundError):
        await stream.get_consumer_group_info(backend.key("missing"))


async def test_consume_missing_stream_raises(backend: Backend) -> None:
    stream = _stream(backend)
    async with asyncio.timeout(WAIT):
        with pytest.raises(datafx.QueueNotFoundError):
            await stream.process_messages_from_group(
                backend.key("missing"), "g", "c", lambda v: True, config=fast_config()
            )


async def test_group_info_lag_and_last_delivered(backend: Backend) -> None:
    stream = _stream(backend)
    name = backend.key("s")
    await stream.create_consumer_group(name, "g", "0")
    ids = [await stream.send_message(name, i) for i in range(5)]
    info = await _group(stream, name, "g")
    assert info.lag == 5
    assert info.entries_read == 0
    assert info.pending == 0
    await read(stream, name, "g", "c1", 2)
    info = await _group(stream, name, "g")
    assert info.last_delivered_id == ids[1]
    assert info.entries_read == 2
    assert info.lag == 3
    assert info.pending == 0
    assert info.consumers == 1


async def test_trim_keeps_newest(backend: Backend) -> None:
    stream = _stream(backend)
    name = backend.key("s")
    for i in range(10):
        await stream.send_message(name, i)
    assert await stream.trim_stream(name, 4) == 6
    assert await stream.trim_stream(name, 4) == 0
    await stream.create_consumer_group(name, "g", "0")
    entries = await read(stream, name, "g", "c", 4)
    assert [e.decode() for e in entries] == [6, 7, 8, 9]
    with pytest.raises(ValueError, match="max_len"):
        await stream.trim_stream(name, -1)


async def test_failed_entries_retry_then_dead_letter(backend: Backend) -> None:
    stream = _stream(backend)
    name = backend.key("s")
    await stream.create_consumer_group(name, "g", "0")
    await stream.send_message(name, "bad", headers={"k": "v"})
    counts: list[int] = []

    def handler(entry: datafx.Message) -> bool:
        counts.append(entry.delivery_count)
        return False

    task = asyncio.create_task(
        stream.process_messages_from_group(
            name, "g", "c1", handler, datafx.Message, fast_config(max_retries=1)
        )
    )
    try:
        async with asyncio.timeout(WAIT):
            while True:
                if len(counts) >= 2 and not (await _group(stream, name, "g")).pending:
                    break
                await asyncio.sleep(0.02)
    finally:
        await stop(task)
    assert counts == [1, 2]
    dlq = name + ".dlq"
    info = await stream.get_stream_info(dlq)
    assert info.length == 1
    assert info.last_entry is not None
    assert info.last_entry.decode() == "bad"
    assert info.last_entry.headers["k"] == "v"
    assert "max_retries=1" in str(info.last_entry.headers["x-dead-letter-reason"])


async def test_unencodable_entry_sends_nothing(backend: Backend) -> None:
    stream = _stream(backend)
    name = backend.key("s")
    await stream.send_message(name, 1)
    with pytest.raises(datafx.MarshalError):
        await stream.send_message(name, {"x": math.inf})
    with pytest.raises(TypeError):
        await stream.send_message(name, 1, headers={"bad": None})  # type: ignore[dict-item]
    assert (await stream.get_stream_info(name)).length == 1
