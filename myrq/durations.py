"""Seconds values: durations as users write them, checks for settings, clamps for records."""

from __future__ import annotations

import math
import re
from datetime import timedelta

from myrq.exceptions import ConfigurationError, InvalidJobError

#: Longest timeout or TTL passed on (ten years); longer values from foreign
#: records are clamped rather than overflowing a timer or an EXPIRE.
MAX_SECONDS = 10 * 365 * 24 * 3600.0


#: What a duration may be written as: seconds, a ``timedelta``, or text (``"90s"``).
Duration = float | str | timedelta


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


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h|d|w)")


def parse_duration(value: object, name: str, *, forever: bool = False) -> float:
    """Seconds from a number, a ``timedelta`` or a string like ``"90s"``, ``"5m"``, ``"1h30m"``.

    Units: ``ms``, ``s``, ``m``, ``h``, ``d``, ``w``; a bare number is seconds
    (``"30"`` too). With ``forever`` (TTLs), ``-1`` (or ``"-1"``) is accepted
    and returned as ``-1.0`` (keep forever), and values past ten years are cut
    to ten years, the longest a broker keeps a record.

    Raises:
        InvalidJobError: anything else, naming ``name`` and the value.
    """
    seconds: float | None = None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:  # an int of hundreds of digits
            seconds = math.inf if value > 0 else None
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            parts = _PART.findall(text)
            if parts and "".join(n + u for n, u in parts) == text:
                seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds is not None and forever and seconds == -1:
        return -1.0
    if seconds == math.inf and forever:
        return MAX_SECONDS  # "as long as possible": ten years, what a broker keeps at most
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        extra = ", or -1 to keep forever" if forever else ""
        raise InvalidJobError(
            f"{name} must be a duration: seconds, a timedelta, or a string like '90s', '5m', "
            f"'2h', '1d', '1h30m'{extra}; not {value!r}"
        )
    return min(seconds, MAX_SECONDS) if forever else seconds
