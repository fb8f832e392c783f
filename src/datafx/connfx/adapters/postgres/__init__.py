"""The PostgreSQL backend (``postgres://``, ``postgresql://``), built on asyncpg."""

from datafx.connfx.adapters.postgres.connection import (
    PostgresConnection,
    PostgresFactory,
)

__all__ = ["PostgresConnection", "PostgresFactory", "factory"]

factory = PostgresFactory()
