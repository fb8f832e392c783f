"""Run a queue write to its end even when the task that asked for it is cancelled."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["Completion"]

T = TypeVar("T")


class Completion:
    """Shields writes (publish, ack, release) from the caller's cancellation.

    A cancelled statement leaves its effect unknown (the server may have run
    it) and costs the pool a connection. A shielded write finishes in the
    background instead; the caller still sees ``CancelledError`` at once.
    A write that fails after its caller was cancelled is logged.
    """

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._tasks: set[asyncio.Future[Any]] = set()

    async def run(self, operation: Coroutine[Any, Any, T], what: str) -> T:
        task = asyncio.ensure_future(operation)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(lambda done: self._report(done, what))
            raise

    def _report(self, task: asyncio.Future[Any], what: str) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._logger.warning(
                "%s failed after its caller was cancelled: %s: %s",
                what,
                type(exc).__name__,
                exc,
            )
