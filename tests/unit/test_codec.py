"""The JSON codec: rich types, validation and rejected values."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

import datafx
from datafx.codec import JsonCodec


@dataclasses.dataclass
class Point:
    x: int
    y: int


def test_encode_rejects_nested_non_finite_float() -> None:
    codec = JsonCodec()
    with pytest.raises(datafx.MarshalError, match="nan"):
        codec.encode({"a": [1, {"b": float("nan")}]})
    with pytest.raises(datafx.MarshalError, match="inf"):
        codec.encode([Point(1, 2), {"p": float("inf")}])


def test_none_values_are_not_mistaken_for_nan() -> None:
    codec = JsonCodec()
    assert codec.decode(codec.encode({"a": None, "b": "null"})) == {
        "a": None,
        "b": "null",
    }


def test_dataclass_with_non_finite_float_is_rejected() -> None:
    @dataclasses.dataclass
    class Reading:
        value: float
        note: str | None = None

    with pytest.raises(datafx.MarshalError):
        JsonCodec().encode(Reading(float("nan")))


def test_decode_into_dataclass_validates() -> None:
    codec = JsonCodec()
    assert codec.decode(b'{"x": 1, "y": 2}', Point) == Point(1, 2)
    with pytest.raises(datafx.UnmarshalError, match="Point"):
        codec.decode(b'{"x": "one", "y": 2}', Point)


def test_datetime_round_trip_keeps_timezone() -> None:
    codec = JsonCodec()
    moment = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert codec.decode(codec.encode(moment), datetime) == moment


def test_unencodable_type_is_named() -> None:
    with pytest.raises(datafx.MarshalError, match="object"):
        JsonCodec().encode(object())


def test_pydantic_model_with_nan_is_rejected() -> None:
    pydantic = pytest.importorskip("pydantic")

    class Metric(pydantic.BaseModel):  # type: ignore[name-defined,misc]
        value: float

    with pytest.raises(datafx.MarshalError):
        JsonCodec().encode(Metric(value=float("nan")))
    assert JsonCodec().decode(JsonCodec().encode(Metric(value=1.5)), Metric) == Metric(
        value=1.5
    )


async def test_store_uses_a_custom_codec() -> None:
    class Upper:
        content_type = "text/plain"

        def encode(self, value: object) -> bytes:
            return str(value).upper().encode()

        def decode(self, data: bytes, type_: object = None) -> object:
            return data.decode()

    assert isinstance(Upper(), datafx.Codec)
    async with datafx.connfx.Registry.with_defaults() as registry:
        conn = await registry.add_connection("m", "memory://")
        store = datafx.Store(conn, codec=Upper())
        await store.set("k", "shout")
        assert await store.get_raw("k") == b"SHOUT"
        assert await store.get("k") == "SHOUT"
