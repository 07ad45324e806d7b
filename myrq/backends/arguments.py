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


def whole(name: str, value: object, *, minimum: int, maximum: int = 10**6) -> int:
    """A count, limit or attempt number: a whole number from ``minimum`` to ``maximum``."""
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise InvalidArgumentError(
            f"{name} must be a whole number from {minimum} to {maximum}, not {value!r}"
        )
    return value


def retry_ms(delay: object) -> int:
    """A finish's retry delay for a step: None -> -1 (final), else whole ms >= 0."""
    if delay is None:
        return -1
    return math.ceil(_seconds("retry_delay", delay, minimum=0, allow_zero=True) * 1000)


def schedule_ms(at: object, delay: object, ttl: object) -> tuple[int, int, int]:
    """An enqueue's timing for a step: (due ms since the epoch or 0, delay ms, ttl ms or 0)."""
    if at is not None and delay is not None:
        raise InvalidArgumentError("give a job either at or delay, not both")
    due = 0 if at is None else math.ceil(_moment(at) * 1000)
    wait = (
        0
        if delay is None
        else math.ceil(_seconds("delay", delay, minimum=0, allow_zero=True) * 1000)
    )
    keep = (
        0
        if ttl is None
        else max(1, math.ceil(_seconds("ttl", ttl, minimum=0, allow_zero=False) * 1000))
    )
    return due, wait, keep


def _moment(value: object) -> float:
    """A point in time: seconds since the epoch, finite and after 1970."""
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or not 0 < value < 1e11
    ):
        raise InvalidArgumentError(f"at must be a time in seconds since the epoch, not {value!r}")
    return float(value)


def fields(record: object, name: str = "fields") -> None:
    """A record's fields: str names, bytes values (every broker stores exactly these)."""
    if not hasattr(record, "items"):
        raise InvalidArgumentError(f"{name} must be a mapping of str to bytes, not {record!r}")
    for key, value in record.items():
        if not isinstance(key, str) or not isinstance(value, bytes):
            raise InvalidArgumentError(
                f"{name} must map str names to bytes values; {key!r} holds a "
                f"{type(value).__name__} ({value!r:.40})"
            )


def job_id(value: object) -> str:
    """A job id given to a step: a non-empty str."""
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError(f"a job id must be a non-empty str, not {value!r}")
    return value


_STATES = frozenset(
    ("scheduled", "deferred", "pending", "running", "finished", "failed", "timeout",
     "canceled", "stopped")
)  # fmt: skip


def state(value: object) -> str:
    """A registry's state: one of ``myrq.backends.control.REGISTRY_STATES``."""
    if value not in _STATES:
        raise InvalidArgumentError(
            f"there is no registry of state {value!r}: use one of {', '.join(sorted(_STATES))}"
        )
    return str(value)


def missing_parents(missing: list[tuple[str, str]], total: int) -> str:
    """The error for jobs whose dependencies do not exist: ``(job id, parent id)`` pairs."""
    listed = ", ".join(f"{job!r} (depends on {parent!r})" for job, parent in missing[:5])
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    others = total - len(missing)
    stored = f"; the other {others} job(s) of this call were handled" if others else ""
    return (
        f"cannot enqueue {listed}{more}: no job with that id exists (never enqueued, deleted,"
        f" or its record expired){stored}. Enqueue the dependency first, or keep its record"
        " longer (result_ttl)"
    )
