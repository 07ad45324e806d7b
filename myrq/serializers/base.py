"""The Serializer contract: Python values to bytes and back."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar


class Serializer(ABC):
    """Encodes job payloads and results.

    A serializer turns the payload ``{"func_name": str, "args": list,
    "kwargs": dict}`` and a job's return value into bytes and back. Brokers
    only ever see the bytes.

    Subclass it and give ``name`` a value to plug in your own; select it by
    dotted path (``"pkg.module:MySerializer"``) or pass an instance.
    """

    #: Short name used in config and logs, e.g. ``"json"``.
    name: ClassVar[str] = ""

    @abstractmethod
    def dumps(self, value: Any) -> bytes:
        """Encode ``value``.

        Raises:
            SerializationError: the value (or something inside it) cannot be
                encoded; the message names its type.
        """

    @abstractmethod
    def loads(self, data: bytes) -> Any:
        """Decode bytes produced by :meth:`dumps`.

        Raises:
            DeserializationError: the bytes are not valid for this serializer.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
