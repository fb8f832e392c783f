"""Codecs turn values into bytes and back.

The default :class:`JsonCodec` is built on msgspec, which encodes and decodes
JSON about ten times faster than the standard library and validates while it
decodes into dataclasses, TypedDicts, ``datetime``, ``UUID``, ``Decimal`` and
``Enum``. Pydantic models go through pydantic's own validation. Any object with
``encode`` and ``decode`` methods (see :class:`Codec`) can replace it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

import msgspec

from datafx.connfx.errors import MarshalError, UnmarshalError

__all__ = ["Codec", "JsonCodec", "default_codec"]

T = TypeVar("T")


@runtime_checkable
class Codec(Protocol):
    """Encodes values to bytes and decodes bytes into a requested type."""

    content_type: str

    def encode(self, value: Any) -> bytes:
        """Encode ``value``; raise ``MarshalError`` naming its type when it cannot."""
        ...

    def decode(self, data: bytes, type_: type[T] | None = None) -> T:
        """Decode ``data`` into ``type_`` (plain JSON values when ``None``).

        Raises ``UnmarshalError`` when the bytes are not valid for ``type_``.
        """
        ...


def _is_pydantic_model(obj: Any) -> bool:
    return hasattr(obj, "model_dump") and hasattr(type(obj), "model_validate_json")


def _encode_hook(obj: Any) -> Any:
    if _is_pydantic_model(obj):
        return obj.model_dump(mode="python")
    raise NotImplementedError(
        f"values of type {type(obj).__name__} cannot be encoded as JSON"
    )


def _find_non_finite(value: Any) -> float | None:
    """Return the first NaN or infinite float inside ``value``, if any."""
    if isinstance(value, float):
        return None if math.isfinite(value) else value
    if isinstance(value, dict):
        for item in value.values():
            found = _find_non_finite(item)
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for item in value:
            found = _find_non_finite(item)
            if found is not None:
                return found
    return None


class JsonCodec:
    """JSON through msgspec.

    msgspec writes NaN and Infinity as ``null``, which would silently change
    the value, so any encoded output that contains ``null`` is checked for
    non-finite floats and rejected with ``MarshalError``. Output without
    ``null`` cannot hide one, so the common case costs no extra pass.
    """

    content_type = "application/json"

    def __init__(self) -> None:
        self._encoder = msgspec.json.Encoder(
            enc_hook=_encode_hook, decimal_format="string"
        )
        self._decoders: dict[Any, Callable[[bytes], Any]] = {}
        self._plain = msgspec.json.Decoder()

    def encode(self, value: Any) -> bytes:
        try:
            data = self._encoder.encode(value)
        except (TypeError, NotImplementedError, ValueError, OverflowError) as exc:
            raise MarshalError(
                f"cannot encode value of type {type(value).__name__} as JSON: {exc}"
            ) from exc
        if b"null" in data:
            self._reject_non_finite(value)
        return data

    def _reject_non_finite(self, value: Any) -> None:
        try:
            builtins = msgspec.to_builtins(value, enc_hook=_encode_hook)
        except (TypeError, NotImplementedError, ValueError):  # pragma: no cover
            return
        found = _find_non_finite(builtins)
        if found is not None:
            raise MarshalError(
                f"cannot encode value of type {type(value).__name__}: it contains "
                f"the non-finite float {found!r}, which JSON cannot represent; "
                "store it as a string or None instead"
            )

    def decode(self, data: bytes, type_: type[T] | None = None) -> T:
        decoder = self._decoders.get(type_)
        if decoder is None:
            decoder = self._make_decoder(type_)
            self._decoders[type_] = decoder
        try:
            return decoder(data)  # type: ignore[no-any-return]
        except (msgspec.ValidationError, msgspec.DecodeError, ValueError) as exc:
            name = getattr(type_, "__name__", repr(type_)) if type_ else "JSON"
            raise UnmarshalError(
                f"cannot decode stored bytes into {name}: {exc}"
            ) from exc

    def _make_decoder(self, type_: Any) -> Callable[[bytes], Any]:
        if type_ is None or type_ is Any or type_ is object:
            return self._plain.decode
        if isinstance(type_, type) and hasattr(type_, "model_validate_json"):
            return type_.model_validate_json  # type: ignore[no-any-return]
        try:
            return msgspec.json.Decoder(type_).decode
        except TypeError as exc:
            raise UnmarshalError(f"cannot decode into type {type_!r}: {exc}") from exc


_DEFAULT = JsonCodec()


def default_codec() -> JsonCodec:
    """Return the process-wide JSON codec."""
    return _DEFAULT
