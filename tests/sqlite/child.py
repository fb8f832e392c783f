"""A second process for the SQLite tests: ``python child.py DSN ACTION KEY [JSON]``.

Actions: ``get`` prints the key's JSON value or ``MISSING``; ``ttl`` prints
the remaining seconds, ``none`` or ``MISSING``; ``set`` stores the JSON value.
"""

from __future__ import annotations

import asyncio
import json
import sys

import datafx
from datafx import connfx


async def main(dsn: str, action: str, key: str, value: str | None) -> None:
    async with connfx.Registry.with_defaults() as registry:
        conn = await registry.add_connection("child", dsn)
        store = datafx.Store(conn)
        if action == "get":
            try:
                print(json.dumps(await store.get(key)))
            except datafx.KeyNotFoundError:
                print("MISSING")
        elif action == "ttl":
            try:
                remaining = await datafx.Cache(conn).get_ttl(key)
            except datafx.KeyNotFoundError:
                print("MISSING")
            else:
                print("none" if remaining is None else remaining.total_seconds())
        elif action == "set":
            await store.set(key, json.loads(value or "null"))
        else:
            raise SystemExit(f"unknown action {action!r}; use get, ttl or set")


if __name__ == "__main__":
    arguments = sys.argv[1:]
    if len(arguments) not in (3, 4):
        raise SystemExit(__doc__)
    asyncio.run(main(arguments[0], arguments[1], arguments[2], [*arguments, None][3]))
