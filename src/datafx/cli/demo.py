"""``datafx demo``: a guided run through the data API on the chosen backend.

The demo is a list of sections (:data:`SECTIONS`). Each one needs some
behaviors; a section whose behaviors the connection lacks is skipped with a
note. To add a walk-through, write an async function taking a
:class:`DemoContext` and append a :class:`DemoSection` to ``SECTIONS``.
Every key the demo writes starts with ``demo:`` and is removed at the end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import click

from datafx.cache import Cache
from datafx.cli.session import Settings, run_with_connection
from datafx.connfx.behaviors import Behavior
from datafx.connfx.connection import Connection
from datafx.connfx.errors import KeyNotFoundError
from datafx.store import Store, Transaction, TransactionalStore

__all__ = ["SECTIONS", "DemoContext", "DemoSection", "Package", "demo"]

PREFIX = "demo:"


@dataclass(slots=True)
class Package:
    """Metadata of one published Python package."""

    name: str
    version: str
    month: str | None = None
    rank: int | None = None
    summary: str = ""


PACKAGES = [
    Package("httpx", "0.28.1", "2024-12", 96, "The next generation HTTP client."),
    Package("msgspec", "0.19.0", "2024-12", 1204, "A fast serialization library"),
    Package("aiosqlite", "0.21.0", "2025-02", 861, "asyncio bridge to sqlite3"),
    Package("zipp", "3.21.0", "2024-11", 20, "Backport of pathlib-compatible zipfile"),
]


@dataclass(slots=True)
class DemoContext:
    """The open connection and output helpers that a section works with."""

    conn: Connection
    written: set[str] = field(default_factory=set)

    def key(self, name: str) -> str:
        """Return the demo key for ``name`` and remember it for the cleanup."""
        key = PREFIX + name
        self.written.add(key)
        return key

    def step(self, code: str, result: Any = None) -> None:
        """Print one call and, when given, what it returned."""
        click.echo(f"  {click.style(code, fg='cyan')}")
        if result is not None:
            click.echo(f"    -> {result}")

    def say(self, text: str) -> None:
        click.echo(f"  {text}")


@dataclass(frozen=True, slots=True)
class DemoSection:
    """One part of the demo: a title, the behaviors it needs and its steps."""

    title: str
    run: Callable[[DemoContext], Awaitable[None]]
    needs: frozenset[Behavior] = frozenset()


async def store_section(ctx: DemoContext) -> None:
    store = Store(ctx.conn)
    key = ctx.key("pkg:httpx")
    await store.set(key, PACKAGES[0])
    ctx.step(f"await store.set({key!r}, Package(name='httpx', ...))")
    package = await store.get(key, Package)
    ctx.step(f"await store.get({key!r}, Package)", package)

    await store.update(key, replace(package, version="0.28.2"))
    ctx.step(f"await store.update({key!r}, <version 0.28.2>)")
    updated = await store.get(key, Package)
    ctx.step(f"(await store.get({key!r}, Package)).version", repr(updated.version))
    ctx.step(f"await store.exists({key!r})", await store.exists(key))

    await store.remove(key)
    ctx.step(f"await store.remove({key!r})")
    ctx.step(f"await store.exists({key!r})", await store.exists(key))
    try:
        await store.get(key, Package)
    except KeyNotFoundError as exc:
        ctx.step(f"await store.get({key!r}, Package)", f"KeyNotFoundError: {exc}")

    raw_key = ctx.key("raw:logo")
    await store.set_raw(raw_key, b"\x89PNG\r\n\x1a\n")
    ctx.step(f"await store.set_raw({raw_key!r}, b'\\x89PNG\\r\\n\\x1a\\n')")
    ctx.step(f"await store.get_raw({raw_key!r})", await store.get_raw(raw_key))


async def batch_section(ctx: DemoContext) -> None:
    store = Store(ctx.conn)
    items = {ctx.key(f"pkg:{p.name}"): p for p in PACKAGES}
    await store.set_many(items)
    ctx.step(f"await store.set_many(<{len(items)} packages>)")
    requested = [*list(items)[:2], ctx.key("pkg:missing")]
    found = await store.get_many(requested, Package)
    summary = {key: f"{p.name} {p.version}" for key, p in found.items()}
    ctx.step(f"await store.get_many({requested!r}, Package)", summary)
    ctx.say("    (the missing key is absent from the result)")
    await store.remove_many(items)
    ctx.step(f"await store.remove_many(<{len(items)} keys>)")
    ctx.step("await store.get_many(<the same keys>)", await store.get_many(items))


async def transaction_section(ctx: DemoContext) -> None:
    tx_store = TransactionalStore(ctx.conn)
    store = Store(ctx.conn)
    old_key = ctx.key("pkg:zipp")
    new_key = ctx.key("archive:zipp")
    await store.set(old_key, PACKAGES[3])

    async def move(tx: Transaction) -> None:
        package = await tx.get(old_key, Package)
        await tx.set(new_key, package)
        await tx.remove(old_key)

    await tx_store.execute_transaction(move)
    ctx.step(f"await tx_store.execute_transaction(<move {old_key} to {new_key}>)")
    ctx.step(f"await store.exists({old_key!r})", await store.exists(old_key))
    ctx.step(f"await store.exists({new_key!r})", await store.exists(new_key))

    draft_key = ctx.key("pkg:draft")
    try:
        async with tx_store.transaction() as tx:
            await tx.set(draft_key, Package("draft", "0.0.1"))
            ctx.step(f"inside the transaction: await tx.set({draft_key!r}, ...)")
            ctx.step(f"await tx.exists({draft_key!r})", await tx.exists(draft_key))
            raise RollbackDemoError("changed my mind")
    except RollbackDemoError as exc:
        ctx.step(f"raise {type(exc).__name__}({str(exc)!r}) inside the 'async with'")
    ctx.step(
        f"after the rollback: await store.exists({draft_key!r})",
        await store.exists(draft_key),
    )


class RollbackDemoError(Exception):
    """Raised inside the demo transaction to make it roll back."""


async def cache_section(ctx: DemoContext) -> None:
    cache = Cache(ctx.conn)
    key = ctx.key("cache:top-package")
    await cache.set(key, PACKAGES[3], ttl=timedelta(minutes=1))
    ctx.step(f"await cache.set({key!r}, <zipp>, ttl=timedelta(minutes=1))")
    ctx.step(f"await cache.get_ttl({key!r})", _seconds(await cache.get_ttl(key)))
    await cache.expire(key, 120)
    ctx.step(f"await cache.expire({key!r}, 120)")
    ctx.step(f"await cache.get_ttl({key!r})", _seconds(await cache.get_ttl(key)))
    await cache.set(key, PACKAGES[3])
    ctx.step(f"await cache.set({key!r}, <zipp>)  # no ttl: never expires")
    ctx.step(f"await cache.get_ttl({key!r})", repr(await cache.get_ttl(key)))

    short_key = ctx.key("cache:short-lived")
    await cache.set(short_key, "gone soon", ttl=0.2)
    ctx.step(f"await cache.set({short_key!r}, 'gone soon', ttl=0.2)")
    ctx.step(f"await cache.get({short_key!r})", repr(await cache.get(short_key)))
    await asyncio.sleep(0.3)
    ctx.step("await asyncio.sleep(0.3)")
    try:
        await cache.get(short_key)
    except KeyNotFoundError as exc:
        ctx.step(f"await cache.get({short_key!r})", f"KeyNotFoundError: {exc}")
    await cache.delete(key)
    ctx.step(f"await cache.delete({key!r})")


def _seconds(remaining: timedelta | None) -> str:
    if remaining is None:
        return "None"
    return f"timedelta(seconds={remaining.total_seconds():.3f})"


# The walk-through, in order. Append a DemoSection to add one.
SECTIONS: list[DemoSection] = [
    DemoSection("Store: typed values", store_section, frozenset({Behavior.KEY_VALUE})),
    DemoSection(
        "Store: batches of keys", batch_section, frozenset({Behavior.KEY_VALUE})
    ),
    DemoSection(
        "TransactionalStore: commit and rollback",
        transaction_section,
        frozenset({Behavior.KEY_VALUE, Behavior.TRANSACTIONAL}),
    ),
    DemoSection(
        "Cache: time to live",
        cache_section,
        frozenset({Behavior.KEY_VALUE, Behavior.CACHE}),
    ),
]


async def run_sections(conn: Connection, sections: list[DemoSection]) -> int:
    """Run ``sections`` on ``conn``, remove the demo's keys, return how many ran."""
    ctx = DemoContext(conn)
    ran = 0
    try:
        for number, section in enumerate(sections, start=1):
            click.echo(click.style(f"\n{number}. {section.title}", bold=True))
            missing = section.needs - conn.behaviors
            if missing:
                names = ", ".join(sorted(b.value for b in missing))
                ctx.say(f"skipped: {conn.protocol} does not offer {names}")
                continue
            await section.run(ctx)
            ran += 1
    finally:
        if ctx.written and Behavior.KEY_VALUE in conn.behaviors:
            await Store(conn).remove_many(ctx.written)
    return ran


@click.command()
@click.pass_obj
def demo(settings: Settings) -> None:
    """Walk through the Store, TransactionalStore and Cache APIs on --dsn."""

    async def walk(conn: Connection) -> int:
        click.echo(f"datafx demo on {conn.target.masked_location()}")
        return await run_sections(conn, SECTIONS)

    ran = run_with_connection(settings, walk)
    click.echo(f"\nDone: {ran} of {len(SECTIONS)} sections ran; demo keys removed.")
