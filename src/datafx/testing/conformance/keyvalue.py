"""Conformance tests for key-value storage through ``datafx.Store``.

Every test takes the ``backend`` fixture (a :class:`datafx.testing.Backend`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypedDict

import pytest

import datafx
from datafx.testing.fixtures import Backend, load_sample_records


@dataclasses.dataclass
class User:
    id: int
    name: str
    joined: datetime
    tags: list[str] = dataclasses.field(default_factory=list)


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Package(TypedDict):
    name: str
    version: str


def _store(backend: Backend) -> datafx.Store:
    return datafx.Store(backend.conn)


async def test_json_values_round_trip(backend: Backend) -> None:
    store = _store(backend)
    values: dict[str, Any] = {
        "dict": {"a": 1, "b": [1, 2, {"c": None}]},
        "list": [1, "two", 3.5, True, None],
        "str": "héllo wörld ✓",
        "empty": "",
        "int": -42,
        "float": 3.25,
        "true": True,
        "false": False,
        "none": None,
    }
    for name, value in values.items():
        await store.set(backend.key(name), value)
    for name, value in values.items():
        got = await store.get(backend.key(name))
        assert got == value, name
        assert type(got) is type(value), name


async def test_integers_of_any_size_round_trip(backend: Backend) -> None:
    store = _store(backend)
    for number in (2**63 - 1, -(2**63), 2**64 + 1, 10**40, -(10**40)):
        await store.set(backend.key("n"), number)
        assert await store.get(backend.key("n")) == number
        assert await store.get(backend.key("n"), int) == number


async def test_typed_reads_decode_rich_types(backend: Backend) -> None:
    store = _store(backend)
    joined = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    user = User(id=1, name="Ada", joined=joined, tags=["x"])
    await store.set(backend.key("user"), user)
    assert await store.get(backend.key("user"), User) == user
    plain = await store.get(backend.key("user"))
    assert plain["name"] == "Ada"

    ident = uuid.uuid4()
    await store.set(backend.key("uuid"), ident)
    assert await store.get(backend.key("uuid"), uuid.UUID) == ident

    await store.set(backend.key("decimal"), Decimal("12.3400"))
    assert await store.get(backend.key("decimal"), Decimal) == Decimal("12.3400")

    await store.set(backend.key("enum"), Color.BLUE)
    assert await store.get(backend.key("enum"), Color) is Color.BLUE

    await store.set(backend.key("date"), date(2020, 2, 29))
    assert await store.get(backend.key("date"), date) == date(2020, 2, 29)

    await store.set(backend.key("typed-dict"), {"name": "x", "version": "1"})
    assert await store.get(backend.key("typed-dict"), Package) == {
        "name": "x",
        "version": "1",
    }


async def test_pydantic_models_round_trip(backend: Backend) -> None:
    pydantic = pytest.importorskip("pydantic")

    class Account(pydantic.BaseModel):  # type: ignore[name-defined,misc]
        id: int
        email: str
        balance: Decimal

    store = _store(backend)
    account = Account(id=7, email="a@example.com", balance=Decimal("10.50"))
    await store.set(backend.key("account"), account)
    assert await store.get(backend.key("account"), Account) == account


async def test_typed_read_validates(backend: Backend) -> None:
    store = _store(backend)
    await store.set(backend.key("user"), {"id": "not a number", "name": "x"})
    with pytest.raises(datafx.UnmarshalError) as info:
        await store.get(backend.key("user"), User)
    message = str(info.value)
    assert backend.key("user") in message
    assert "User" in message
    await store.set_raw(backend.key("garbage"), b"\xff\xfe not json")
    with pytest.raises(datafx.UnmarshalError):
        await store.get(backend.key("garbage"))


async def test_get_missing_raises_key_not_found(backend: Backend) -> None:
    store = _store(backend)
    with pytest.raises(datafx.KeyNotFoundError) as info:
        await store.get(backend.key("missing"))
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, datafx.DataError)
    assert info.value.key == backend.key("missing")
    with pytest.raises(datafx.KeyNotFoundError):
        await store.get_raw(backend.key("missing"))


async def test_set_replaces_value(backend: Backend) -> None:
    store = _store(backend)
    await store.set(backend.key(), {"v": 1})
    await store.set(backend.key(), {"v": 2})
    assert await store.get(backend.key()) == {"v": 2}


async def test_update_replaces_existing_value(backend: Backend) -> None:
    store = _store(backend)
    await store.set(backend.key(), "old")
    await store.update(backend.key(), "new")
    assert await store.get(backend.key()) == "new"


async def test_update_missing_key_creates_nothing(backend: Backend) -> None:
    store = _store(backend)
    with pytest.raises(datafx.KeyNotFoundError):
        await store.update(backend.key("absent"), "value")
    assert not await store.exists(backend.key("absent"))
    with pytest.raises(datafx.KeyNotFoundError):
        await store.update_raw(backend.key("absent"), b"value")
    assert not await store.exists(backend.key("absent"))


async def test_update_raw(backend: Backend) -> None:
    store = _store(backend)
    await store.set_raw(backend.key(), b"one")
    await store.update_raw(backend.key(), b"two")
    assert await store.get_raw(backend.key()) == b"two"


async def test_remove_is_idempotent(backend: Backend) -> None:
    store = _store(backend)
    await store.set(backend.key(), 1)
    await store.remove(backend.key())
    await store.remove(backend.key())
    await store.remove(backend.key("never-existed"))
    assert not await store.exists(backend.key())


async def test_exists_reports_presence(backend: Backend) -> None:
    store = _store(backend)
    assert not await store.exists(backend.key())
    await store.set(backend.key(), None)
    assert await store.exists(backend.key())


async def test_raw_bytes_round_trip(backend: Backend) -> None:
    store = _store(backend)
    payloads = [b"", b"\x00\x01\xff binary \x00", bytes(range(256)) * 64]
    for index, payload in enumerate(payloads):
        await store.set_raw(backend.key(f"raw{index}"), payload)
    for index, payload in enumerate(payloads):
        assert await store.get_raw(backend.key(f"raw{index}")) == payload


async def test_keys_with_special_characters_are_ordinary(backend: Backend) -> None:
    store = _store(backend)
    suffixes = [
        "with space",
        "quote'single",
        'quote"double',
        "percent%s%d%%",
        "colon:and/slash",
        "semi;colon -- DROP TABLE x;",
        "ünïcödé ключ 键 🔑",
        "back\\slash",
        "*?[glob]",
        "{hash}tag",
        "x" * 200,
    ]
    for index, suffix in enumerate(suffixes):
        await store.set(backend.key(suffix), index)
    for index, suffix in enumerate(suffixes):
        assert await store.get(backend.key(suffix)) == index
    found = await store.get_many([backend.key(s) for s in suffixes])
    assert found == {backend.key(s): i for i, s in enumerate(suffixes)}
    await store.remove_many([backend.key(s) for s in suffixes])
    assert await store.get_many([backend.key(s) for s in suffixes]) == {}


async def test_invalid_keys_are_rejected_before_io(backend: Backend) -> None:
    store = _store(backend)
    with pytest.raises(ValueError, match="non-empty"):
        await store.set("", 1)
    with pytest.raises(TypeError, match="str"):
        await store.set(123, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="str"):
        await store.get(None)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="NUL"):
        await store.set(backend.key("nul\x00char"), 1)
    with pytest.raises(ValueError, match="NUL"):
        await store.get_many([backend.key("ok"), backend.key("nul\x00")])
    with pytest.raises(TypeError):
        await store.get_many(backend.key())
    with pytest.raises(TypeError):
        await store.set_many({backend.key(): 1, 5: 2})  # type: ignore[dict-item]
    assert not await store.exists(backend.key())


async def test_non_finite_floats_are_rejected(backend: Backend) -> None:
    store = _store(backend)
    await store.set(backend.key(), {"score": 1.5})
    for bad in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(datafx.MarshalError, match="non-finite"):
            await store.set(backend.key(), {"score": bad})
        with pytest.raises(datafx.MarshalError):
            await store.set(backend.key("list"), [1.0, [None, bad]])
        with pytest.raises(datafx.MarshalError):
            await store.update(backend.key(), {"score": bad})
    assert await store.get(backend.key()) == {"score": 1.5}
    assert not await store.exists(backend.key("list"))
    await store.set(backend.key("nulls"), {"a": None, "b": [None]})
    assert await store.get(backend.key("nulls")) == {"a": None, "b": [None]}


async def test_unencodable_value_names_type(backend: Backend) -> None:
    store = _store(backend)

    class Opaque:
        pass

    with pytest.raises(datafx.MarshalError, match="Opaque"):
        await store.set(backend.key(), Opaque())
    with pytest.raises(datafx.MarshalError, match="Opaque"):
        await store.set(backend.key(), {"nested": [Opaque()]})
    assert not await store.exists(backend.key())


async def test_batch_with_unencodable_value_writes_nothing(backend: Backend) -> None:
    store = _store(backend)
    items: dict[str, Any] = {backend.key("a"): 1, backend.key("b"): float("nan")}
    with pytest.raises(datafx.MarshalError):
        await store.set_many(items)
    assert await store.get_many([backend.key("a"), backend.key("b")]) == {}


async def test_set_many_then_get_many(backend: Backend) -> None:
    store = _store(backend)
    items = {backend.key(f"k{i}"): {"i": i} for i in range(250)}
    await store.set_many(items)
    assert await store.get_many(list(items)) == items
    await store.set_many({})
    assert await store.get_many([]) == {}


async def test_get_many_returns_only_existing_keys(backend: Backend) -> None:
    store = _store(backend)
    await store.set(backend.key("a"), 1)
    await store.set(backend.key("c"), 3)
    keys = [backend.key(k) for k in ("a", "b", "c", "a")]
    assert await store.get_many(keys) == {backend.key("a"): 1, backend.key("c"): 3}


async def test_get_many_typed(backend: Backend) -> None:
    store = _store(backend)
    joined = datetime(2023, 1, 1, tzinfo=UTC)
    users = {backend.key(f"u{i}"): User(i, f"n{i}", joined) for i in range(3)}
    await store.set_many(users)
    assert await store.get_many(list(users), User) == users


async def test_remove_many(backend: Backend) -> None:
    store = _store(backend)
    await store.set_many(
        {backend.key("a"): 1, backend.key("b"): 2, backend.key("c"): 3}
    )
    await store.remove_many([backend.key("a"), backend.key("b"), backend.key("zz")])
    assert await store.get_many([backend.key(k) for k in "abc"]) == {
        backend.key("c"): 3
    }
    await store.remove_many([])


async def test_second_connection_sees_writes(backend: Backend) -> None:
    if not backend.capabilities.shared_between_connections:
        pytest.skip(f"{backend.spec.id}: each connection has its own data")
    other = datafx.Store(await backend.connect())
    await _store(backend).set(backend.key(), {"seen": True})
    assert await other.get(backend.key()) == {"seen": True}


async def test_closed_connection_rejects_operations(backend: Backend) -> None:
    store = _store(backend)
    await store.set(backend.key(), 1)
    await backend.conn.close()
    with pytest.raises(datafx.ConnectionClosedError):
        await store.get(backend.key())
    with pytest.raises(datafx.ConnectionClosedError):
        await store.set(backend.key(), 2)
    status = await backend.conn.health_check()
    assert not status.healthy


async def test_cancelled_operation_propagates_cancellation(backend: Backend) -> None:
    store = _store(backend)

    async def many_writes() -> None:
        i = 0
        while True:
            i += 1
            await store.set(backend.key(f"c{i % 10}"), i)
            await store.get(backend.key(f"c{i % 10}"))
            # The memory backend never suspends on its own.
            await asyncio.sleep(0)

    task = asyncio.create_task(many_writes())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await store.set(backend.key("after"), "ok")
    assert await store.get(backend.key("after")) == "ok"


async def test_concurrent_updates_and_removes_never_resurrect(backend: Backend) -> None:
    store = _store(backend)
    key = backend.key()
    await store.set(key, 0)

    async def updater() -> None:
        for i in range(50):
            try:
                await store.update(key, i)
            except datafx.KeyNotFoundError:
                return

    async def remover() -> None:
        await asyncio.sleep(0)
        await store.remove(key)

    await asyncio.gather(updater(), updater(), remover())
    assert not await store.exists(key)


async def test_real_records_round_trip(backend: Backend) -> None:
    records = load_sample_records(2000)
    store = _store(backend)
    items = {backend.key(record["name"]): record for record in records}
    await store.set_many(items)
    assert await store.get_many(list(items)) == items
    sample = records[len(records) // 2]
    assert await store.get(backend.key(sample["name"])) == sample


__all__ = [name for name in dir() if name.startswith("test_")]
