"""Checks of the values a broker step takes, the same for every broker.

Each built-in broker calls these at its boundary, so that a NaN lease or a
negative count gets one clear error everywhere (and never leases a job
forever on one broker and raises a raw ValueError on another). Times are
turned into whole milliseconds here, rounded up, so every broker keeps a
record exactly as long.
"""

from __future__ import annotations

import math

from myrq.exceptions import InvalidArgumentError
from myrq.schema import MAX_TTL_MS

_MAX_SECONDS = MAX_TTL_MS / 1000


def _seconds(name: str, value: object, *, minimum: float, allow_zero: bool) -> float:
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value < minimum
        or (value == 0 and not allow_zero)
    ):
        bound = f">= {minimum:g}" if allow_zero else f"> {minimum:g}"
        raise InvalidArgumentError(
            f"{name} must be a finite number of seconds {bound}, not {value!r}"
        )
    return float(min(value, _MAX_SECONDS))


def lease_ms(lease: object) -> int:
    """A lease (finite seconds > 0; over ten years is cut to ten) in whole ms, at least 1."""
    return max(1, math.ceil(_seconds("lease", lease, minimum=0, allow_zero=False) * 1000))


def ttl_ms(ttl: object) -> int:
    """A record lifetime for a step: ``None`` -> -1 (forever), 0 -> 0 (delete now), else ms.

    Positive values are rounded up to whole milliseconds (a TTL of 0.4 ms keeps
    the record 1 ms, it does not delete it) and cut to ten years.
    """
    if ttl is None:
        return -1
    seconds = _seconds("ttl", ttl, minimum=0, allow_zero=True)
    return 0 if seconds == 0 else min(math.ceil(seconds * 1000), MAX_TTL_MS)


def wait_seconds(timeout: object) -> float:
    """How long a dequeue may wait (seconds >= 0)."""
    return _seconds("timeout", timeout, minimum=0, allow_zero=True)


def whole(name: str, value: object, *, minimum: int) -> int:
    """A count, limit or attempt number: a whole number >= ``minimum``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InvalidArgumentError(f"{name} must be a whole number >= {minimum}, not {value!r}")
    return value
