"""Run an initialization coroutine once, on first use, from many tasks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

__all__ = ["Once"]


class Once:
    """Awaits ``setup`` the first time :meth:`ensure` is called.

    Concurrent callers wait for the same run. A failed or cancelled run is
    forgotten, so the next call tries again.
    """

    __slots__ = ("_done", "_lock", "_setup")

    def __init__(self, setup: Callable[[], Awaitable[None]]) -> None:
        self._setup = setup
        self._done = False
        self._lock = asyncio.Lock()

    @property
    def done(self) -> bool:
        return self._done

    async def ensure(self) -> None:
        if self._done:
            return
        async with self._lock:
            if not self._done:
                await self._setup()
                self._done = True
