"""Pickle serializer: any picklable Python value. Opt-in only.

Unpickling runs code chosen by whoever wrote the bytes. Use it only when
everyone who can write to the broker is trusted. A worker configured for JSON
never unpickles anything: the serializer comes from config, never from the
payload.
"""

from __future__ import annotations

import pickle
from typing import Any, ClassVar

from myrq.exceptions import DeserializationError, SerializationError
from myrq.serializers.base import Serializer


class PickleSerializer(Serializer):
    """Python's pickle at the highest protocol."""

    name: ClassVar[str] = "pickle"

    def __init__(self, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        self.protocol = protocol

    def dumps(self, value: Any) -> bytes:
        try:
            return pickle.dumps(value, protocol=self.protocol)
        except (pickle.PicklingError, TypeError, AttributeError, RecursionError) as exc:
            raise SerializationError(
                f"cannot pickle a value of type {type(value).__qualname__}: {exc}"
            ) from exc

    def loads(self, data: bytes) -> Any:
        try:
            return pickle.loads(data)
        except Exception as exc:  # pickle raises many types on bad input
            preview = bytes(data[:40]) if isinstance(data, bytes | bytearray) else data
            raise DeserializationError(
                f"stored data is not a valid pickle ({type(exc).__name__}: {exc}); "
                f"it starts with {preview!r}. Was it written with another serializer?"
            ) from exc
