"""The Redis backend: ``redis://``, ``rediss://`` (TLS) and ``redis+cluster://``.

Built on redis.asyncio with the hiredis parser. Module layout: ``config``
(DSN options), ``client`` (driver client and pool), ``connection``,
``keyvalue`` (key-value and cache ports), ``transactions`` (WATCH and
MULTI/EXEC) and ``errors``.
"""

from datafx.connfx.adapters.redis.connection import RedisConnection, RedisFactory
from datafx.connfx.adapters.redis.errors import EventLoopMismatchError

__all__ = ["EventLoopMismatchError", "RedisConnection", "RedisFactory", "factory"]

factory = RedisFactory()
