"""Timeouts and lifetimes: the job alarm, and checks and clamps for seconds values."""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from myrq.exceptions import ConfigurationError, JobTimeout

#: Longest timeout or TTL passed on (ten years); longer values from foreign
#: records are clamped rather than overflowing a timer or an EXPIRE.
MAX_SECONDS = 10 * 365 * 24 * 3600.0


@contextmanager
def alarm(seconds: float) -> Iterator[None]:
    """Raise JobTimeout in the main thread after ``seconds``; always cleared on exit.

    An interval timer that was already running (pytest-timeout's, say) is
    suspended meanwhile and re-armed afterwards with the time it had left
    (at least 1 ms, so one that fell due during the job fires right after it).
    """

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise JobTimeout(f"job exceeded its timeout of {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    outer_delay, outer_interval = 0.0, 0.0
    started = time.monotonic()
    try:
        outer_delay, outer_interval = signal.setitimer(
            signal.ITIMER_REAL, min(seconds, MAX_SECONDS)
        )
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        # Runs even if the alarm fired inside the inner finally (it fires only once).
        signal.signal(signal.SIGALRM, previous)
        if outer_delay > 0:
            left = max(outer_delay - (time.monotonic() - started), 0.001)
            signal.setitimer(signal.ITIMER_REAL, left, outer_interval)


class JobAlarm:
    """The worker's job timer: :func:`alarm` without a handler swap per job.

    :meth:`install` puts one SIGALRM handler in place for a worker's whole
    run; each job then only arms and clears the interval timer (two system
    calls instead of four, and no handler objects made per job). An outer
    interval timer (pytest-timeout's, say) is suspended during each job and
    re-armed after it with the time it had left; if it fires between jobs,
    the previous handler gets the signal.
    """

    def __init__(self) -> None:
        self._seconds: float | None = None  # the running job's timeout, while armed
        self._previous: Any = signal.SIG_DFL
        self._installed = False

    def install(self) -> None:
        self._previous = signal.signal(signal.SIGALRM, self._on_alarm)
        self._installed = True

    def uninstall(self) -> None:
        if self._installed:
            signal.signal(signal.SIGALRM, self._previous)
            self._installed = False

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        if self._seconds is not None:
            raise JobTimeout(f"job exceeded its timeout of {self._seconds:g}s")
        if callable(self._previous):
            self._previous(signum, frame)

    @contextmanager
    def __call__(self, seconds: float) -> Iterator[None]:
        """Raise JobTimeout after ``seconds``; always cleared on exit."""
        if not self._installed:  # used outside a worker's run: just for this job
            self.install()
            try:
                with self(seconds):
                    yield
            finally:
                self.uninstall()
            return
        started = time.monotonic()
        self._seconds = seconds
        outer_delay, outer_interval = 0.0, 0.0
        try:
            outer_delay, outer_interval = signal.setitimer(
                signal.ITIMER_REAL, min(seconds, MAX_SECONDS)
            )
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            self._seconds = None
            if outer_delay > 0:
                left = max(outer_delay - (time.monotonic() - started), 0.001)
                signal.setitimer(signal.ITIMER_REAL, left, outer_interval)


def ttl_for_broker(seconds: float) -> float | None:
    """A ``*_ttl`` setting as the broker takes it: negative (forever) or not finite is None."""
    if seconds < 0 or not math.isfinite(seconds):
        return None
    return min(float(seconds), MAX_SECONDS)


def check_seconds(name: str, value: object, *, minimum: float) -> None:
    """Raise ConfigurationError unless ``value`` is a finite number >= ``minimum``."""
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value < minimum
    ):
        raise ConfigurationError(
            f"{name} must be a finite number of seconds >= {minimum:g}, not {value!r}"
        )
