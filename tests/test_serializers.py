"""Every serializer with every kind of payload."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from myrq.exceptions import DeserializationError, SerializationError
from myrq.serializers import JSONSerializer, PickleSerializer, Serializer, resolve_serializer

SERIALIZERS = [JSONSerializer(), PickleSerializer()]
JSON_VALUES: list[Any] = [
    None, True, False, 0, -1, 2**80, 1.5, "", "héllo ✓ 日本", [], {}, [1, [2, [3]]],
    {"func_name": "a.b", "args": [1, "x", None], "kwargs": {"k": {"nested": [1.25]}}},
]  # fmt: skip


@pytest.mark.parametrize("serializer", SERIALIZERS, ids=lambda s: s.name)
@pytest.mark.parametrize("value", JSON_VALUES, ids=repr)
def test_round_trip(serializer: Serializer, value: Any) -> None:
    data = serializer.dumps(value)
    assert isinstance(data, bytes)
    assert serializer.loads(data) == value


@pytest.mark.parametrize("serializer", SERIALIZERS, ids=lambda s: s.name)
@pytest.mark.parametrize("garbage", [b"", b"\x80\x04garbage", b"{not json", b"\xff" * 10])
def test_garbage_raises_deserialization_error(serializer: Serializer, garbage: bytes) -> None:
    with pytest.raises(DeserializationError, match="another serializer"):
        serializer.loads(garbage)


def test_json_turns_tuples_into_lists() -> None:
    s = JSONSerializer()
    assert s.loads(s.dumps({"t": (1, 2)})) == {"t": [1, 2]}


def test_json_is_utf8_and_compact() -> None:
    assert JSONSerializer().dumps({"a": ["é"]}) == '{"a":["é"]}'.encode()


def test_pickle_round_trips_python_objects() -> None:
    s = PickleSerializer()
    value = {"when": datetime.datetime(2026, 1, 1), "ids": {1, 2}, "t": (1, 2)}
    assert s.loads(s.dumps(value)) == value


def test_pickle_refuses_unpicklable_values_with_a_clear_error() -> None:
    with pytest.raises(SerializationError, match="cannot pickle"):
        PickleSerializer().dumps(lambda: 1)


def test_json_payload_of_pickle_bytes_is_refused_not_unpickled() -> None:
    with pytest.raises(DeserializationError):
        JSONSerializer().loads(PickleSerializer().dumps({"func_name": "os.system"}))


@pytest.mark.parametrize(
    ("spec", "cls"),
    [
        ("json", JSONSerializer),
        ("JSON", JSONSerializer),
        ("pickle", PickleSerializer),
        ("myrq.serializers:PickleSerializer", PickleSerializer),
        ("myrq.serializers.json.JSONSerializer", JSONSerializer),
        (PickleSerializer, PickleSerializer),
    ],
)
def test_resolve_by_name_path_or_class(spec: Any, cls: type) -> None:
    assert type(resolve_serializer(spec)) is cls


def test_resolve_returns_an_instance_unchanged() -> None:
    s = PickleSerializer(protocol=2)
    assert resolve_serializer(s) is s
