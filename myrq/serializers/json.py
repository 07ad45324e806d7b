"""JSON serializer: the default, readable by any language."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from myrq.exceptions import DeserializationError, SerializationError
from myrq.serializers.base import Serializer


def _reject(value: Any) -> Any:
    raise TypeError(
        f"an argument or value of type {type(value).__module__}.{type(value).__qualname__} "
        "is not JSON-encodable"
    )


class JSONSerializer(Serializer):
    """UTF-8 JSON.

    Values round-trip as JSON does: tuples come back as lists and dict keys as
    strings. Anything else (sets, datetimes, custom objects) is refused at
    encode time with an error that names its type.
    """

    name: ClassVar[str] = "json"

    def __init__(self) -> None:
        self._encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_reject)

    def dumps(self, value: Any) -> bytes:
        try:
            return self._encoder.encode(value).encode("utf-8")
        except (TypeError, ValueError, RecursionError) as exc:
            raise SerializationError(
                f"{exc}; convert it to JSON types (str, int, float, bool, None, list, "
                "dict with str keys) or select the pickle serializer"
            ) from exc

    def loads(self, data: bytes) -> Any:
        try:
            return json.loads(data)
        except (ValueError, TypeError, RecursionError) as exc:
            preview = bytes(data[:40]) if isinstance(data, bytes | bytearray) else data
            raise DeserializationError(
                f"stored data is not valid JSON ({exc}); it starts with {preview!r}. "
                "Was it written with another serializer?"
            ) from exc
