"""Queue and consumer configuration shared by every queue backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from datafx.connfx.config import to_seconds

__all__ = ["ConsumerConfig", "QueueConfig"]


@dataclass(slots=True)
class QueueConfig:
    """How a queue is declared.

    ``max_length`` of 0 means unbounded; when a queue is full the oldest
    message is dropped, unless ``args={"overflow": "reject-publish"}``.
    ``message_ttl`` (seconds or ``timedelta``) drops messages not consumed in time.
    """

    durable: bool = False
    auto_delete: bool = False
    exclusive: bool = False
    max_length: int = 0
    message_ttl: float | timedelta | None = None
    args: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.max_length, bool) or not isinstance(self.max_length, int):
            raise TypeError(
                f"max_length must be an int, not {type(self.max_length).__name__}"
            )
        if self.max_length < 0:
            raise ValueError(
                f"max_length must be 0 (unbounded) or more, got {self.max_length}"
            )
        if self.message_ttl is not None:
            self.message_ttl = to_seconds(self.message_ttl, "message_ttl")

    @property
    def message_ttl_seconds(self) -> float | None:
        return None if self.message_ttl is None else float(self.message_ttl)  # type: ignore[arg-type]


@dataclass(slots=True)
class ConsumerConfig:
    """How a consumer fetches, acknowledges and retries messages.

    ``prefetch_count`` bounds unacked messages held by one consumer.
    ``block_timeout`` is how long one fetch waits for new messages.
    A message handled without success more than ``max_retries`` times goes
    to the dead-letter queue; each retry waits ``retry_delay``.
    """

    auto_ack: bool = False
    exclusive: bool = False
    no_local: bool = False
    no_wait: bool = False
    prefetch_count: int = 10
    block_timeout: float | timedelta = 5.0
    max_retries: int = 3
    retry_delay: float | timedelta = 1.0
    args: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("prefetch_count", "max_retries"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
        if self.prefetch_count < 1:
            raise ValueError(
                f"prefetch_count must be 1 or more, got {self.prefetch_count}"
            )
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {self.max_retries}")
        self.block_timeout = to_seconds(
            self.block_timeout, "block_timeout", allow_zero=True
        )
        self.retry_delay = to_seconds(self.retry_delay, "retry_delay", allow_zero=True)
