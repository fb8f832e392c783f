"""LISTEN/NOTIFY wake-ups for consumers waiting on PostgreSQL queues.

A publish or release runs ``pg_notify(<channel>, <queue name>)`` in the same
statement, so the notification goes out when it commits. One dedicated
connection per datafx connection LISTENs on the channel (opened on the first
waiting fetch) and wakes the local waiters of that queue within milliseconds,
whichever process published.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

import asyncpg

from datafx.connfx.adapters.sqlbase.names import TableNames

__all__ = ["Wakeups", "channel_name"]

# NOTIFY payloads must be shorter than 8000 bytes; longer names wake everyone.
MAX_PAYLOAD_BYTES = 7900


def channel_name(names: TableNames) -> str:
    """Return the NOTIFY channel of a schema and table prefix (a valid identifier)."""
    digest = hashlib.blake2b(
        f"{names.schema}:{names.prefix}".encode(), digest_size=12
    ).hexdigest()
    return f"datafx_{digest}"


def payload_for(name: str) -> str:
    """Return the notification payload for queue ``name`` (empty wakes every queue)."""
    return name if len(name.encode()) <= MAX_PAYLOAD_BYTES else ""


class Wakeups:
    """Per-queue events that a notification or a local publish sets."""

    def __init__(
        self, connect_arguments: dict[str, Any], channel: str, logger: logging.Logger
    ) -> None:
        self._connect_arguments = connect_arguments
        self.channel = channel
        self._logger = logger
        self._events: dict[str, asyncio.Event] = {}
        self._connection: Any = None
        self._lock = asyncio.Lock()

    def event(self, name: str) -> asyncio.Event:
        """Return the event that the next wake-up of ``name`` sets."""
        event = self._events.get(name)
        if event is None:
            event = self._events[name] = asyncio.Event()
        return event

    def wake(self, name: str) -> None:
        """Wake the waiters of ``name`` (of every queue when ``name`` is empty)."""
        if not name:
            for key in list(self._events):
                self.wake(key)
            return
        event = self._events.pop(name, None)
        if event is not None:
            event.set()

    def _on_notification(
        self, _conn: Any, _pid: int, _channel: str, payload: str
    ) -> None:
        self.wake(payload)

    def _on_termination(self, _conn: Any) -> None:
        self._connection = None
        self._logger.warning(
            "PostgreSQL LISTEN connection closed; it reopens at the next waiting fetch"
        )
        self.wake("")

    async def listen(self) -> bool:
        """Open the LISTEN connection unless it is open; return whether it is.

        A failure is logged and reported as ``False``: waiting fetches then
        fall back to checking the tables once a second.
        """
        if self._connection is not None and not self._connection.is_closed():
            return True
        async with self._lock:
            if self._connection is not None and not self._connection.is_closed():
                return True
            try:
                connection = await asyncpg.connect(**self._connect_arguments)
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                self._logger.warning(
                    "PostgreSQL LISTEN connection failed (%s: %s); waiting "
                    "consumers poll every second instead",
                    type(exc).__name__,
                    exc,
                )
                return False
            try:
                await connection.add_listener(self.channel, self._on_notification)
            except BaseException:
                await connection.close()
                raise
            connection.add_termination_listener(self._on_termination)
            self._connection = connection
            return True

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.remove_termination_listener(self._on_termination)
            await connection.close()
        self.wake("")
