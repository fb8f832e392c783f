"""Errors specific to the Redis adapter and the driver errors it translates.

Most driver exceptions are left to the data layer, which wraps them into
``BackendError``. This module covers the cases that need their own meaning:
an exhausted pool, a conflicting transaction and a client used from the
wrong event loop.
"""

from __future__ import annotations

import asyncio

from datafx.connfx.errors import BackendError, PoolTimeoutError

__all__ = ["EventLoopGuard", "EventLoopMismatchError", "pool_timeout_error"]


class EventLoopMismatchError(BackendError, RuntimeError):
    """A Redis connection was used from an event loop other than the one that opened it.

    redis.asyncio sockets belong to the loop that created them, so such a
    call would hang or fail with an unrelated error inside the driver.
    """


class EventLoopGuard:
    """Checks that every call runs on the loop that opened the connection."""

    __slots__ = ("loop", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop = asyncio.get_running_loop()

    def check(self) -> None:
        if asyncio.get_running_loop() is not self.loop:
            raise EventLoopMismatchError(
                f"Redis connection {self.name!r} was opened on another event loop; "
                "redis.asyncio connections cannot move between loops, so open one "
                "connection per event loop (for example one per thread)",
                protocol="redis",
            )


def pool_timeout_error(max_connections: int, timeout: float | None) -> PoolTimeoutError:
    """Build the error raised when no pooled connection frees up in time."""
    waited = "without waiting" if not timeout else f"within {timeout:g} s"
    return PoolTimeoutError(
        f"no free connection in the Redis pool of {max_connections} connections "
        f"{waited}; raise max_connections or pool_timeout, or hold connections "
        "for a shorter time",
        protocol="redis",
        operation="acquire connection",
    )
