"""Background removal of expired rows, in small batches, stopped on close."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

__all__ = ["ExpirySweeper"]


class ExpirySweeper:
    """Calls ``delete_batch(limit)`` every ``interval`` seconds, batch after batch.

    ``delete_batch`` removes at most ``limit`` expired rows without waiting for
    rows that other transactions hold locked, and returns how many it removed.
    Reads never depend on the sweeper: they filter expired rows themselves.
    A failed sweep is logged and tried again at the next interval.
    """

    def __init__(
        self,
        delete_batch: Callable[[int], Awaitable[int]],
        *,
        interval: float,
        batch: int,
        logger: logging.Logger,
        name: str,
    ) -> None:
        self._delete_batch = delete_batch
        self._interval = interval
        self._batch = batch
        self._logger = logger
        self._name = name
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the background task; does nothing when the interval is 0 or it runs."""
        if self._interval <= 0 or self._task is not None:
            return
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        """Cancel the background task and wait for it to end."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            # The sweeper's own cancellation; re-raise if our caller is cancelled too.
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise

    async def sweep_once(self) -> int:
        """Remove expired rows batch by batch; return how many were removed."""
        removed = 0
        while True:
            count = await self._delete_batch(self._batch)
            removed += count
            if count < self._batch:
                return removed
            # Yield between batches so requests on the same loop go first.
            await asyncio.sleep(0)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                removed = await self.sweep_once()
            except Exception as exc:
                self._logger.warning(
                    "%s: removing expired rows failed: %s: %s",
                    self._name,
                    type(exc).__name__,
                    exc,
                )
                continue
            if removed:
                self._logger.debug("%s: removed %d expired rows", self._name, removed)
