"""SQLite queues shared by several processes: durability, redelivery, exclusivity."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import datafx
from datafx import connfx

WORKER = str(Path(__file__).with_name("worker.py"))
WAIT = 20.0


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, WORKER, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()
        if process.stderr:
            process.stderr.close()


async def _open(path: Path, name: str) -> tuple[connfx.Registry, datafx.Queue]:
    registry = connfx.Registry.with_defaults()
    conn = await registry.add_connection("db", f"sqlite:///{path}")
    queue = datafx.Queue(conn)
    await queue.declare_queue(name, connfx.QueueConfig(durable=True))
    return registry, queue


async def _read_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), WAIT)
    if not line:
        stderr = process.stderr.read() if process.stderr else ""
        pytest.fail(f"worker exited early: {stderr}")
    return line.strip()


async def test_message_published_by_another_process(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    path = tmp_path / "queue.db"
    registry, queue = await _open(path, "jobs")
    try:
        received: list[datafx.Message] = []
        config = connfx.ConsumerConfig(block_timeout=0.5)
        async with asyncio.timeout(WAIT):
            async with queue.consume("jobs", config) as messages:
                processes.append(_spawn("publish", str(path), "jobs", "5"))
                async for message in messages:
                    received.append(message)
                    await message.ack()
                    if len(received) == 5:
                        break
        assert [m.decode() for m in received] == [0, 1, 2, 3, 4]
        assert all(m.delivery_count == 1 for m in received)
    finally:
        await registry.close()


async def test_waiting_consumer_sees_other_process_quickly(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    path = tmp_path / "queue.db"
    registry, queue = await _open(path, "jobs")
    try:
        lags: list[float] = []
        config = connfx.ConsumerConfig(block_timeout=5.0)
        async with asyncio.timeout(WAIT):
            async with queue.consume("jobs", config) as messages:
                processes.append(_spawn("publish", str(path), "jobs", "1"))
                message = await anext(messages)
                lags.append(time.time() - message.timestamp.timestamp())
                await message.ack()
        # Other processes' commits are polled every 50 ms; the bound leaves
        # room for a loaded machine.
        assert lags[0] < 0.25
    finally:
        await registry.close()


async def test_killed_consumer_message_redelivered(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    path = tmp_path / "queue.db"
    registry, queue = await _open(path, "jobs")
    try:
        message_id = await queue.publish("jobs", {"order": 1})
        holder = _spawn("hold", str(path), "jobs", "1.0")
        processes.append(holder)
        held_id, count = (await _read_line(holder)).split()
        assert held_id == message_id
        assert count == "1"
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        killed_at = time.monotonic()
        config = connfx.ConsumerConfig(block_timeout=0.5)
        async with asyncio.timeout(WAIT):
            async with queue.consume("jobs", config) as messages:
                message = await anext(messages)
                await message.ack()
        assert message.message_id == message_id
        assert message.delivery_count == 2
        assert message.decode() == {"order": 1}
        # Redelivered only once the 1 s lease of the killed process lapsed.
        assert time.monotonic() - killed_at > 0.5
    finally:
        await registry.close()


async def test_two_processes_never_hold_same_message(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    path = tmp_path / "queue.db"
    registry, queue = await _open(path, "jobs")
    try:
        total = 300
        for i in range(total):
            await queue.publish("jobs", i)
        logs = [tmp_path / "a.log", tmp_path / "b.log"]
        for log in logs:
            worker = _spawn("work", str(path), "jobs", str(log))
            processes.append(worker)
            assert await _read_line(worker) == "ready"
        async with asyncio.timeout(WAIT):
            while True:
                if (await queue.stats("jobs")).length == 0:
                    break
                await asyncio.sleep(0.05)
        lines = [line.split() for log in logs for line in log.read_text().splitlines()]
        handled = [line[0] for line in lines]
        assert len(handled) == total
        assert len(set(handled)) == total
        per_worker = [len(log.read_text().splitlines()) for log in logs]
        assert all(count > 0 for count in per_worker)
    finally:
        await registry.close()
