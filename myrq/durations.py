"""Seconds values: checks for settings and clamps for values read from records."""

from __future__ import annotations

import math

from myrq.exceptions import ConfigurationError

#: Longest timeout or TTL passed on (ten years); longer values from foreign
#: records are clamped rather than overflowing a timer or an EXPIRE.
MAX_SECONDS = 10 * 365 * 24 * 3600.0


def ttl_for_broker(seconds: float) -> float | None:
    """A ``*_ttl`` setting as the broker takes it: negative (forever) or not finite is None."""
    if seconds < 0 or not math.isfinite(seconds):
        return None
    return min(float(seconds), MAX_SECONDS)


def check_seconds(
    name: str, value: object, *, minimum: float, maximum: float | None = None
) -> None:
    """Raise ConfigurationError unless ``value`` is a finite number in range."""
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        most = "" if maximum is None else f" and <= {maximum:g}"
        raise ConfigurationError(
            f"{name} must be a finite number of seconds >= {minimum:g}{most}, not {value!r}"
        )
