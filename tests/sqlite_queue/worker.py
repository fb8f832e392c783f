"""A consumer or publisher process for the multi-process SQLite queue tests.

Usage: ``python worker.py MODE DB_PATH QUEUE [ARG]``, where MODE is

- ``publish``: publish ARG messages (0, 1, ...) and exit;
- ``hold``: receive one message, print its id and delivery count, then sleep
  without acknowledging it (the test kills the process);
- ``work``: acknowledge messages until killed, appending
  ``message_id start end`` lines to the file ARG for each one.
"""

from __future__ import annotations

import asyncio
import sys
import time

import datafx
from datafx import connfx


async def main(mode: str, path: str, queue_name: str, arg: str) -> None:
    async with connfx.Registry.with_defaults() as registry:
        conn = await registry.add_connection("db", f"sqlite:///{path}")
        queue = datafx.Queue(conn)
        if mode == "publish":
            for i in range(int(arg)):
                await queue.publish(queue_name, i, headers={"sent": time.time()})
            return
        if mode == "hold":
            config = connfx.ConsumerConfig(args={"visibility_timeout": float(arg)})
            async for message in queue.consume(queue_name, config):
                print(message.message_id, message.delivery_count, flush=True)
                await asyncio.Event().wait()
        if mode == "work":
            with open(arg, "a", encoding="utf-8") as log:  # noqa: ASYNC230

                async def handle(message: datafx.Message) -> bool:
                    start = time.time()
                    await asyncio.sleep(0.002)
                    log.write(f"{message.message_id} {start} {time.time()}\n")
                    log.flush()
                    return True

                print("ready", flush=True)
                config = connfx.ConsumerConfig(prefetch_count=5, block_timeout=0.5)
                await queue.process_messages(
                    queue_name, handle, datafx.Message, config=config
                )


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
