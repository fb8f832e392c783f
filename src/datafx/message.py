"""``Message``: one delivered queue message or stream entry, and header encoding."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar, overload

import msgspec

from datafx.codec import Codec
from datafx.connfx.errors import MarshalError, UnmarshalError

if TYPE_CHECKING:
    from datafx.queue import Lease

__all__ = ["HeaderValue", "Message", "StreamEntry", "decode_headers", "encode_headers"]

T = TypeVar("T")

HeaderValue = str | int | float | bool
"""The types a header value may have; they survive the round trip unchanged."""

_HEADER_ENCODER = msgspec.json.Encoder()
_HEADER_DECODER = msgspec.json.Decoder(dict[str, str | int | float | bool])


def check_headers(headers: Mapping[str, Any] | None) -> dict[str, HeaderValue]:
    """Return a copy of ``headers`` after checking every key and value type."""
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise TypeError(
            f"headers must be a mapping of str to str/int/float/bool, "
            f"not {type(headers).__name__}"
        )
    checked: dict[str, HeaderValue] = {}
    for key, value in headers.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"header names must be non-empty str, got {key!r}")
        if not isinstance(value, str | int | float | bool):
            raise TypeError(
                f"header {key!r} has a value of type {type(value).__name__}; "
                "header values must be str, int, float or bool, so convert it "
                "(for example with str()) or put it in the message body"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(
                f"header {key!r} is the non-finite float {value!r}, which cannot "
                "be stored; send it as a string"
            )
        checked[key] = value
    return checked


def encode_headers(headers: Mapping[str, HeaderValue]) -> bytes:
    """Encode checked headers into the block that queue ports store (JSON)."""
    if not headers:
        return b""
    return _HEADER_ENCODER.encode(headers)


def decode_headers(data: bytes) -> dict[str, HeaderValue]:
    """Decode a header block written by :func:`encode_headers`."""
    if not data:
        return {}
    try:
        return _HEADER_DECODER.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise UnmarshalError(f"cannot decode message headers: {exc}") from exc


def _type_name(type_: Any) -> str:
    return str(getattr(type_, "__name__", None) or repr(type_))


class StreamEntry:
    """A stored stream entry as ``get_stream_info`` reports it (no delivery state)."""

    __slots__ = ("_codec", "body", "entry_id", "headers", "timestamp")

    def __init__(
        self,
        entry_id: str,
        body: bytes,
        headers: dict[str, HeaderValue],
        timestamp: datetime,
        codec: Codec,
    ) -> None:
        self.entry_id = entry_id
        self.body = body
        self.headers = headers
        self.timestamp = timestamp
        self._codec = codec

    def decode(self, type_: Any = None) -> Any:
        """Decode the body into ``type_``; raises ``UnmarshalError`` on a mismatch."""
        return self._codec.decode(self.body, type_)

    def __repr__(self) -> str:
        return f"<StreamEntry id={self.entry_id} bytes={len(self.body)}>"


class Message:
    """A message delivered to a consumer.

    ``delivery_count`` is 1 on the first delivery and rises with every
    redelivery to the same group, across processes and restarts.
    ``timestamp`` is the publish time (UTC), ``published_at`` the same in
    seconds since the Unix epoch. Settle the message once with
    :meth:`ack` or :meth:`nack`; later calls do nothing.
    """

    __slots__ = (
        "_codec",
        "_lease",
        "body",
        "consumer_group",
        "delivery_count",
        "headers",
        "message_id",
        "published_at",
        "receipt_handle",
        "settled",
        "stream_name",
    )

    def __init__(
        self,
        *,
        body: bytes,
        headers: dict[str, HeaderValue],
        message_id: str,
        published_at: float,
        delivery_count: int,
        receipt_handle: str,
        consumer_group: str | None,
        stream_name: str,
        codec: Codec,
        lease: Lease | None = None,
    ) -> None:
        self.body = body
        self.headers = headers
        self.message_id = message_id
        self.published_at = published_at
        self.delivery_count = delivery_count
        self.receipt_handle = receipt_handle
        self.consumer_group = consumer_group
        self.stream_name = stream_name
        self.settled = lease is None
        self._codec = codec
        self._lease = lease

    @property
    def timestamp(self) -> datetime:
        """The publish time as an aware UTC ``datetime``."""
        return datetime.fromtimestamp(self.published_at, UTC)

    @overload
    def decode(self) -> Any: ...

    @overload
    def decode(self, type_: type[T]) -> T: ...

    def decode(self, type_: Any = None) -> Any:
        """Decode the body into ``type_`` (plain JSON values when ``None``).

        Raises ``UnmarshalError`` naming the message when the body does not fit.
        """
        try:
            return self._codec.decode(self.body, type_)
        except UnmarshalError as exc:
            raise UnmarshalError(
                f"cannot decode message {self.message_id} of {self.stream_name!r} "
                f"into {_type_name(type_) if type_ is not None else 'JSON'}: {exc}"
            ) from exc

    async def ack(self) -> None:
        """Acknowledge the message: it is never delivered to this group again."""
        if self.settled or self._lease is None:
            return
        self.settled = True
        await self._lease.ack([self])

    async def nack(self, requeue: bool = True) -> None:
        """Reject the message.

        With ``requeue=True`` it is delivered again after the consumer's
        ``retry_delay``, unless it has already been delivered more than
        ``max_retries`` times: then it goes to the dead-letter queue.
        With ``requeue=False`` it goes to the dead-letter queue at once.
        """
        if self.settled or self._lease is None:
            return
        self.settled = True
        if requeue:
            await self._lease.retry(self, "the consumer rejected it")
        else:
            await self._lease.dead_letter(self, "rejected without requeue")

    def __repr__(self) -> str:
        return (
            f"<Message id={self.message_id} queue={self.stream_name!r} "
            f"group={self.consumer_group!r} delivery={self.delivery_count} "
            f"bytes={len(self.body)}>"
        )


def timestamp_to_datetime(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def check_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise TypeError(
        f"raw message bodies must be bytes, not {type(value).__name__}; "
        "use publish() to send encoded values"
    )


def encode_value(codec: Codec, value: Any) -> bytes:
    """Encode a message body; raises ``MarshalError`` before anything is sent."""
    try:
        return codec.encode(value)
    except MarshalError:
        raise
    except (TypeError, ValueError) as exc:
        raise MarshalError(
            f"cannot encode message body of type {type(value).__name__}: {exc}"
        ) from exc
