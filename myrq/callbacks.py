"""Callbacks: a function the worker calls when a job succeeds, fails or is stopped.

Given at enqueue as ``on_success=``, ``on_failure=`` or ``on_stopped=``: a
module-level function, its ``"pkg.module.func"`` name, or a :class:`Callback`
with a timeout of its own. The record keeps the function's name (signed with
the job), and the worker resolves it through its allow-list, as it does the
job's function.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from myrq.durations import parse_duration
from myrq.exceptions import InvalidJobError
from myrq.functions import function_name

#: How long a callback may run unless it says otherwise (seconds), as in RQ.
DEFAULT_CALLBACK_TIMEOUT = 60.0


@dataclass(frozen=True)
class Callback:
    """A callback and how long it may run.

    Called as RQ calls them: ``on_success(job, connection, result)``,
    ``on_failure(job, connection, exc_type, exc_value, traceback)``,
    ``on_stopped(job, connection)``; ``connection`` is the worker's broker.
    """

    func: str
    timeout: float = DEFAULT_CALLBACK_TIMEOUT

    def __init__(
        self,
        func: Callable[..., Any] | str,
        timeout: float | str | timedelta | None = None,
    ) -> None:
        object.__setattr__(self, "func", function_name(func))
        seconds = (
            DEFAULT_CALLBACK_TIMEOUT if timeout is None else parse_duration(timeout, "timeout")
        )
        if not seconds > 0:
            raise InvalidJobError(f"a callback's timeout must be above 0 seconds, not {timeout!r}")
        object.__setattr__(self, "timeout", seconds)

    @classmethod
    def of(cls, value: object, option: str) -> Callback | None:
        """A Callback from what a user passed as ``option`` (None stays None)."""
        if value is None or isinstance(value, Callback):
            return value
        if callable(value) or isinstance(value, str):
            return cls(value)
        raise InvalidJobError(
            f"{option} must be a function, its 'module.function' name or myrq.Callback(...), "
            f"not {value!r}"
        )

    def to_bytes(self) -> bytes:
        return json.dumps({"func": self.func, "timeout": self.timeout}).encode()

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> Callback | None:
        """The stored callback, or None when absent or unreadable."""
        if not raw:
            return None
        try:
            data = json.loads(raw)
            return cls(str(data["func"]), float(data.get("timeout", DEFAULT_CALLBACK_TIMEOUT)))
        except (ValueError, TypeError, KeyError, InvalidJobError, RecursionError):
            return None
