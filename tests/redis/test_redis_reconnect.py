"""Consumers survive a killed client connection and a restarted server.

Every handled message is recorded before its ack, and every successful ack
after it, so the tests can check that no message is handled again once its
ack succeeded and that none is lost.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

import datafx
from datafx.connfx import ConsumerConfig, QueueConfig
from datafx.connfx.adapters.redis import RedisConnection
from datafx.connfx.adapters.redis.localserver import LocalRedis, free_port_block

Connect = Callable[..., Awaitable[RedisConnection]]

FAST = ConsumerConfig(
    block_timeout=0.2, retry_delay=0.05, args={"visibility_timeout": 2.0}
)


class Journal:
    """Handled and acknowledged message ids, in the order they happened."""

    def __init__(self, conn: RedisConnection) -> None:
        self.events: list[tuple[str, str]] = []
        port = conn.queue
        original_ack = port.ack

        async def recording_ack(name: str, group: str, handles: Sequence[str]) -> int:
            acked: int = await original_ack(name, group, handles)
            self.events.extend(("acked", handle) for handle in handles)
            return acked

        port.ack = recording_ack

    def handle(self, message: datafx.Message) -> bool:
        self.events.append(("handled", message.message_id))
        return True

    def handled(self) -> set[str]:
        return {mid for kind, mid in self.events if kind == "handled"}

    def handled_after_ack(self) -> list[str]:
        acked: set[str] = set()
        again = []
        for kind, message_id in self.events:
            if kind == "acked":
                acked.add(message_id)
            elif message_id in acked:
                again.append(message_id)
        return again


async def _wait_for(condition: Callable[[], bool], seconds: float) -> None:
    """Poll ``condition`` until it holds; fail after ``seconds``."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - the journal has no event to await
            await asyncio.sleep(0.02)


async def _kill_clients(admin: Any, client_name: str) -> int:
    """Kill the server-side connections of one client name; return how many."""
    killed = 0
    for client in await admin.client_list():
        if client.get("name") == client_name:
            await admin.client_kill_filter(_id=client["id"])
            killed += 1
    return killed


async def test_consumer_survives_client_kill(connect: Connect, prefix: str) -> None:
    client_name = f"datafx-test-{uuid.uuid4().hex[:8]}"
    conn = await connect(client_name=client_name)
    admin = (await connect()).raw
    queue = datafx.Queue(conn)
    name = await queue.declare_queue(prefix + "q", QueueConfig())
    journal = Journal(conn)
    publisher = datafx.Queue(await connect())
    ids = [await publisher.publish(name, i) for i in range(50)]
    consumer = asyncio.create_task(
        queue.process_messages(name, journal.handle, datafx.Message, FAST)
    )
    try:
        await _wait_for(lambda: len(journal.handled()) >= 10, 10)
        assert await _kill_clients(admin, client_name) >= 1
        ids += [await publisher.publish(name, i) for i in range(50, 100)]
        await _wait_for(lambda: journal.handled() >= set(ids), 20)
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
    assert journal.handled_after_ack() == []
    assert (await queue.stats(name)).length == 0


@pytest.fixture
def own_server(tmp_path: Path) -> Any:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH")
    server = LocalRedis(free_port_block(1, start=17500), tmp_path / "aof", aof=True)
    server.start()
    yield server
    server.stop()


async def test_consumer_survives_server_restart(
    connect: Connect, prefix: str, own_server: LocalRedis
) -> None:
    dsn = f"redis://127.0.0.1:{own_server.port}/0"
    conn = await connect(dsn, retries=1, connect_timeout=0.5)
    queue = datafx.Queue(conn)
    name = await queue.declare_queue(prefix + "q", QueueConfig(durable=True))
    journal = Journal(conn)
    ids = [await queue.publish(name, i) for i in range(50)]
    consumer = asyncio.create_task(
        queue.process_messages(name, journal.handle, datafx.Message, FAST)
    )
    try:
        await _wait_for(lambda: len(journal.handled()) >= 10, 10)
        await asyncio.to_thread(own_server.restart)
        publisher = datafx.Queue(await connect(dsn))
        ids += [await publisher.publish(name, i) for i in range(50, 100)]
        await _wait_for(lambda: journal.handled() >= set(ids), 30)
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
    assert journal.handled_after_ack() == []
    assert (await queue.stats(name)).length == 0


async def test_store_reconnects_after_restart(
    connect: Connect, prefix: str, own_server: LocalRedis
) -> None:
    dsn = f"redis://127.0.0.1:{own_server.port}/0"
    store = datafx.Store(await connect(dsn))
    await store.set(prefix + "k", "durable")
    await asyncio.to_thread(own_server.restart)
    assert await store.get(prefix + "k") == "durable"
