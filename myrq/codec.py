"""The encodings of two record fields that only myrq reads: the payload and the error.

The payload (field ``func``) is the serializer's encoding of
``{"func_name": str, "args": list, "kwargs": dict}``. The error (field
``error``) is always JSON, ``{"type", "message", "traceback"}``, whatever the
serializer: an error is described as plain strings and never rebuilt into a
live exception.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from myrq.exceptions import DeserializationError, SerializationError
from myrq.retry import NoRetry, RetryLater, exception_names
from myrq.serializers import Serializer


@dataclass(frozen=True)
class ErrorInfo:
    """Why a job failed, as plain data (never a live exception object).

    ``type``, ``message`` and ``traceback`` are what the record's ``error``
    field keeps. The other attributes serve the worker's retry decision and
    are not stored: ``types`` names the exception's class and its bases,
    ``retry_in`` is the delay a job asked for with :class:`~myrq.retry.RetryLater`,
    and ``final`` marks an error never worth another try (``NoRetry``, or a job
    that cannot run as written: a function not allowed, an undecodable payload).
    """

    type: str
    message: str
    traceback: str
    types: tuple[str, ...] = field(default=(), compare=False)
    retry_in: float | None = field(default=None, compare=False)
    final: bool = field(default=False, compare=False)

    def to_bytes(self) -> bytes:
        """The record's ``error`` field."""
        return self._json({})

    def to_report(self) -> bytes:
        """:meth:`to_bytes` plus what the retry decision needs (an isolated child's report)."""
        return self._json(
            {"types": list(self.types), "retry_in": self.retry_in, "final": self.final}
        )

    def _json(self, extra: dict[str, Any]) -> bytes:
        return json.dumps(
            {"type": self.type, "message": self.message, "traceback": self.traceback, **extra},
            ensure_ascii=True,  # lone surrogates in a message must not break the encoding
        ).encode("ascii")

    @classmethod
    def from_exception(cls, exc: BaseException, message: str | None = None) -> ErrorInfo:
        """Describe ``exc`` as plain data; never raises, whatever ``exc``'s methods do."""
        kind = type(exc)
        name = (
            kind.__qualname__
            if kind.__module__ == "builtins"
            else f"{kind.__module__}.{kind.__qualname__}"
        )
        try:
            tb = "".join(traceback.format_exception(exc))
        except BaseException:
            tb = f"<the traceback of this {name} could not be formatted>"
        return cls(
            name,
            safe_str(exc) if message is None else message,
            tb,
            types=tuple(exception_names(exc)),
            retry_in=exc.delay if isinstance(exc, RetryLater) else None,
            final=isinstance(exc, NoRetry),
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> ErrorInfo:
        """Read an ``error`` field, or a report (:meth:`to_report`)."""
        try:
            data = json.loads(raw)
            retry_in = data.get("retry_in")
            return cls(
                str(data["type"]),
                str(data["message"]),
                str(data.get("traceback", "")),
                types=tuple(str(t) for t in data.get("types", ())),
                retry_in=float(retry_in) if isinstance(retry_in, int | float) else None,
                final=data.get("final") is True,
            )
        except (ValueError, KeyError, TypeError, RecursionError, AttributeError):
            return cls("UnknownError", raw.decode("utf-8", "replace"), "")

    def refused(self) -> ErrorInfo:
        """This error, marked final: the job cannot run as written, so no try would do better."""
        return replace(self, final=True)

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"


def safe_str(value: object) -> str:
    """``str(value)``, or a placeholder if its ``__str__`` raises."""
    try:
        return str(value)
    except BaseException:
        try:
            return f"<{type(value).__qualname__} whose str() raised>"
        except BaseException:
            return "<unprintable>"


def encode_payload(
    serializer: Serializer, func_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> bytes:
    """The ``func`` field: ``{"func_name": ..., "args": [...], "kwargs": {...}}`` encoded."""
    return serializer.dumps({"func_name": func_name, "args": list(args), "kwargs": dict(kwargs)})


def decode_payload(serializer: Serializer, raw: bytes) -> tuple[str, list[Any], dict[str, Any]]:
    """Decode and check a ``func`` field.

    Raises:
        DeserializationError: undecodable, or not of the expected shape.
    """
    data = serializer.loads(raw)
    if not isinstance(data, dict):
        raise DeserializationError(
            f"job payload decodes to a {type(data).__name__}, expected a mapping with "
            "func_name, args and kwargs"
        )
    func_name = data.get("func_name")
    args = data.get("args") or []
    kwargs = data.get("kwargs") or {}
    if not isinstance(func_name, str) or not func_name:
        raise DeserializationError(f"job payload has no usable func_name: {func_name!r}")
    if not isinstance(args, list | tuple):
        raise DeserializationError(f"job payload args must be a list, not {type(args).__name__}")
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise DeserializationError("job payload kwargs must be a mapping with string keys")
    return func_name, list(args), kwargs


#: The former name of :class:`ErrorInfo` (it is plain data, not an exception).
JobError = ErrorInfo


def encode_meta(meta: Mapping[str, Any]) -> bytes:
    """A job's meta as stored: JSON whatever the serializer.

    Meta is not signed (a job updates it while it runs), so it is never read
    with a serializer that can run code when it decodes (pickle): what a broker
    writer put there stays plain data.

    Raises:
        SerializationError: a value JSON cannot hold (say which, and what to do).
    """
    try:
        return json.dumps(dict(meta), ensure_ascii=True, allow_nan=False).encode("ascii")
    except (TypeError, ValueError, RecursionError) as exc:
        raise SerializationError(
            f"a job's meta is stored as JSON (it is not signed, so never pickled) and this "
            f"one cannot be: {exc}. Keep meta to str, int, float, bool, None, lists and dicts"
        ) from None


def decode_meta(raw: bytes | None) -> dict[str, Any]:
    """The stored meta as a dict (empty when absent or unreadable)."""
    if not raw:
        return {}
    try:
        loaded = json.loads(raw)
    except (ValueError, RecursionError):
        return {}
    return loaded if isinstance(loaded, dict) else {}
