"""The consumer loop's recovery from backend failures, on a memory connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import pytest

import datafx
from datafx import connfx


async def test_loop_survives_failed_fetch(caplog: pytest.LogCaptureFixture) -> None:
    async with connfx.Registry.with_defaults() as registry:
        conn = await registry.add_connection("m", "memory://")
        queue = datafx.Queue(conn)
        await queue.declare_queue("jobs")
        await queue.publish("jobs", "survived")
        port = conn.queue
        real_fetch = port.fetch
        failures = 2

        async def flaky_fetch(*args: Any, **kwargs: Any) -> Any:
            nonlocal failures
            if failures:
                failures -= 1
                raise ConnectionResetError("connection reset by peer")
            return await real_fetch(*args, **kwargs)

        port.fetch = flaky_fetch
        seen: list[str] = []
        handled = asyncio.Event()

        def handler(value: str) -> bool:
            seen.append(value)
            handled.set()
            return True

        caplog.set_level(logging.WARNING, logger="datafx.queue")
        config = connfx.ConsumerConfig(block_timeout=0.05)
        task = asyncio.create_task(queue.process_messages("jobs", handler, str, config))
        try:
            async with asyncio.timeout(5):
                await handled.wait()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert seen == ["survived"]
        warnings = [r.getMessage() for r in caplog.records]
        assert sum("retrying in" in text for text in warnings) == 2
        assert any("ConnectionResetError" in text for text in warnings)
