"""The global settings and the connection runner that every subcommand uses."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from datafx.connfx.config import ConfigTarget
from datafx.connfx.connection import Connection
from datafx.connfx.registry import Registry

__all__ = ["Settings", "run_with_connection"]

T = TypeVar("T")

_logger = logging.getLogger("datafx.cli")


@dataclass(frozen=True, slots=True)
class Settings:
    """The global options, handed to every subcommand as ``ctx.obj``."""

    dsn: str
    progress: bool


def run_with_connection(
    settings: Settings, work: Callable[[Connection], Awaitable[T]]
) -> T:
    """Open a connection to ``settings.dsn``, run ``work`` on it, then close it."""

    async def run() -> T:
        async with Registry.with_defaults(logger=_logger) as registry:
            target = ConfigTarget.from_dsn(settings.dsn)
            conn = await registry.add_connection("default", target)
            return await work(conn)

    return asyncio.run(run())
