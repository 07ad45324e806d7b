"""Retrying jobs whose function failed: the policy, and what a job may raise to steer it.

A :class:`Retry` travels in the job's record (field ``retry``, JSON, signed
with the payload), so the worker that runs the job decides with the policy
the producer chose. A job waiting for its next try is ``scheduled`` in the
broker (never in a worker's memory) and keeps its id; ``tries`` counts its
failed runs and ``errors`` keeps the error of each (the last 20).

Worker crashes are counted apart, in ``attempts`` (claims of the current
try, see ``max_attempts``): a retry starts the count again.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from myrq.durations import parse_duration
from myrq.exceptions import InvalidJobError

#: Tries a job may ask for with RetryLater when it has no Retry policy.
DEFAULT_RETRY_LATER_MAX = 20


class RetryLater(Exception):
    """Raise it in a job to be run again after ``delay`` seconds (a duration).

    It counts as a failed try: the job's ``retry`` policy's ``max`` bounds
    it, or 20 tries when the job has none. The reason is kept with the try's
    error.
    """

    def __init__(self, delay: object = 0, reason: str = "") -> None:
        self.delay = parse_duration(delay, "RetryLater delay")
        super().__init__(reason or f"asked to run again in {self.delay:g}s")


class NoRetry(Exception):
    """Raise it in a job to end it ``failed`` at once, whatever its retry policy says."""


@dataclass(frozen=True)
class Backoff:
    """Exponential delays: ``base * factor ** n`` (n = tries so far - 1), at most ``cap``.

    ``jitter`` spreads each delay at random over ``[(1 - jitter) * d, d]``,
    so that jobs that failed together do not all come back together.
    """

    base: float = 1.0
    factor: float = 2.0
    cap: float = 3600.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "base", parse_duration(self.base, "Backoff base"))
        object.__setattr__(self, "cap", parse_duration(self.cap, "Backoff cap"))
        if not isinstance(self.factor, int | float) or not 1 <= self.factor <= 100:
            raise InvalidJobError(
                f"Backoff factor must be a number from 1 to 100, not {self.factor!r}"
            )
        if not isinstance(self.jitter, int | float) or not 0 <= self.jitter <= 1:
            raise InvalidJobError(
                f"Backoff jitter must be a number from 0 to 1, not {self.jitter!r}"
            )

    def delay(self, tries: int) -> float:
        raw = min(self.cap, self.base * self.factor ** min(max(tries - 1, 0), 64))
        return raw * (1 - self.jitter * random.random())  # noqa: S311 - not for secrets


@dataclass(frozen=True)
class Retry:
    """How often, and after how long, a failed job runs again.

    ``Retry(max=3)`` retries at once, up to three more runs. ``interval`` is
    the wait before each retry: one duration, or a list (the last one
    repeats: ``[1, 5, 30]``). ``backoff=True`` (or a :class:`Backoff`)
    waits exponentially longer instead, with jitter and a cap. ``on`` lists
    the exception types worth retrying (default: any); ``give_up_on`` those
    that end the job at once. Types match by class and subclass, by name, so
    the worker needs to import nothing to decide.
    """

    max: int = 3
    interval: float | Sequence[float] | str = 0.0
    backoff: Backoff | bool | None = None
    on: Sequence[type[BaseException] | str] = ()
    give_up_on: Sequence[type[BaseException] | str] = ()
    intervals: tuple[float, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.max, int) or isinstance(self.max, bool) or not 0 <= self.max <= 1000:
            raise InvalidJobError(
                f"Retry max must be a whole number from 0 to 1000, not {self.max!r}"
            )
        given = self.interval if isinstance(self.interval, list | tuple) else [self.interval]
        if not given:
            raise InvalidJobError("Retry interval must not be an empty list")
        intervals = tuple(parse_duration(i, "Retry interval") for i in given)
        object.__setattr__(self, "intervals", intervals)
        if self.backoff is True:
            object.__setattr__(self, "backoff", Backoff())
        elif self.backoff is False:
            object.__setattr__(self, "backoff", None)
        elif self.backoff is not None and not isinstance(self.backoff, Backoff):
            raise InvalidJobError(f"Retry backoff must be True or a Backoff, not {self.backoff!r}")
        object.__setattr__(self, "on", tuple(_type_names(self.on, "on")))
        object.__setattr__(self, "give_up_on", tuple(_type_names(self.give_up_on, "give_up_on")))

    def wait(self, tries: int) -> float:
        """Seconds before the next run, after ``tries`` failed runs (1 = the first failed)."""
        if isinstance(self.backoff, Backoff):
            return self.backoff.delay(tries)
        return self.intervals[min(tries - 1, len(self.intervals) - 1)]

    def retries(self, error_types: Iterable[str]) -> bool:
        """True if an exception whose class and bases are named ``error_types`` is retried."""
        names = set(error_types)
        if names & set(self.give_up_on):
            return False
        return not self.on or bool(names & set(self.on))

    # -- the record field --------------------------------------------------------

    def to_bytes(self) -> bytes:
        data: dict[str, Any] = {"max": self.max, "intervals": list(self.intervals)}
        if isinstance(self.backoff, Backoff):
            b = self.backoff
            data["backoff"] = [b.base, b.factor, b.cap, b.jitter]
        if self.on:
            data["on"] = list(self.on)
        if self.give_up_on:
            data["give_up_on"] = list(self.give_up_on)
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Retry:
        """The policy stored in a record. Raises InvalidJobError if it is not one."""
        try:
            data = json.loads(raw)
            backoff = Backoff(*data["backoff"]) if "backoff" in data else None
            return cls(
                max=data["max"],
                interval=list(data["intervals"]),
                backoff=backoff,
                on=list(data.get("on", ())),
                give_up_on=list(data.get("give_up_on", ())),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidJobError(f"the job's retry field is not a retry policy: {exc}") from exc

    @classmethod
    def of(cls, value: object) -> Retry | None:
        """A policy from what users write: a Retry, a number of retries, or None."""
        if value is None or isinstance(value, Retry):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(max=value)
        raise InvalidJobError(f"retry must be a Retry(...) or a number of retries, not {value!r}")


def type_name(kind: type[BaseException]) -> str:
    """``module.QualName`` of an exception class (``builtins.`` for the built-in ones)."""
    return f"{kind.__module__}.{kind.__qualname__}"


def exception_names(exc: BaseException) -> list[str]:
    """The names of ``exc``'s class and every base class, as :class:`Retry` matches them."""
    return [type_name(k) for k in type(exc).__mro__ if issubclass(k, BaseException)]


def _type_names(items: object, label: str) -> list[str]:
    if isinstance(items, type | str):
        items = [items]
    if not isinstance(items, list | tuple):
        raise InvalidJobError(f"Retry {label} must be exception types, not {items!r}")
    names = []
    for item in items:
        if isinstance(item, type) and issubclass(item, BaseException):
            names.append(type_name(item))
        elif isinstance(item, str) and item:
            names.append(item if "." in item else f"builtins.{item}")
        else:
            raise InvalidJobError(f"Retry {label} must be exception types, not {item!r}")
    return names
