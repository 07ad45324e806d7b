"""The job timer: SIGALRM raises JobTimeout in a job that runs past its timeout."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from myrq.durations import MAX_SECONDS
from myrq.exceptions import JobTimeout


class JobAlarm:
    """The worker's job timer.

    :meth:`install` puts one SIGALRM handler in place for a worker's whole
    run (not one per job); each job then only arms and clears the interval timer (two system
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
