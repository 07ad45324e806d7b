"""The job timer: SIGALRM raises JobTimeout in a job that runs past its timeout."""

from __future__ import annotations

import importlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from myrq.durations import MAX_SECONDS
from myrq.exceptions import JobTimeout

logger = logging.getLogger("myrq.worker")

#: ``signal.getsignal`` without its conversion of the result to an enum, which
#: costs microseconds: workers check their handlers before every job.
raw_getsignal: Callable[[int], object] = importlib.import_module("_signal").getsignal


def _raise(exc: BaseException, frame: FrameType | None) -> None:
    raise exc


class JobAlarm:
    """The worker's job timer.

    :meth:`install` puts one SIGALRM handler in place for a worker's whole run
    (not one per job); each job then only arms and disarms the interval timer.
    If a job (or a library it called) replaced the handler, the next
    :meth:`arm` puts it back and logs a warning, so one job cannot switch off
    the timeouts of every later job. An outer interval timer (pytest-timeout's,
    say) is suspended during each job and re-armed after it with the time it
    had left; if it fires between jobs, the previous handler gets the signal.

    :attr:`interrupt` raises the timeout in the job; a
    :class:`~myrq.worker.guard.JobGuard` replaces it with its own.
    """

    def __init__(self) -> None:
        self._seconds: float | None = None  # the running job's timeout, while armed
        self._previous: Any = signal.SIG_DFL
        self._installed = False
        self._handler = self._on_alarm  # one bound method, so identity checks work
        self._outer: tuple[float, float, float] = (0.0, 0.0, 0.0)  # delay, interval, armed at
        self.interrupt: Callable[[BaseException, FrameType | None], None] = _raise
        #: Called in the handler after :meth:`poke` (see :mod:`myrq.worker.stopping`).
        self.on_poke: Callable[[FrameType | None], None] | None = None
        self._poked = False

    def install(self) -> None:
        self._previous = signal.signal(signal.SIGALRM, self._handler)
        self._installed = True

    def uninstall(self) -> None:
        if self._installed:
            signal.signal(signal.SIGALRM, self._previous)
            self._installed = False

    def arm(self, seconds: float) -> None:
        """Start the job's timer (installing the handler if needed, or again if replaced)."""
        if not self._installed:
            self.install()
        elif raw_getsignal(signal.SIGALRM) is not self._handler:
            signal.signal(signal.SIGALRM, self._handler)
            logger.warning(
                "a job replaced the SIGALRM handler; myrq put its own back so that job "
                "timeouts keep working (run jobs that need SIGALRM with --isolate)"
            )
        self._seconds = seconds
        delay, interval = signal.setitimer(signal.ITIMER_REAL, min(seconds, MAX_SECONDS))
        self._outer = (delay, interval, time.monotonic())

    def disarm(self) -> None:
        """Stop the job's timer and re-arm an outer one with the time it had left."""
        signal.setitimer(signal.ITIMER_REAL, 0)
        self._seconds = None
        delay, interval, armed_at = self._outer
        if delay > 0:
            left = max(delay - (time.monotonic() - armed_at), 0.001)
            signal.setitimer(signal.ITIMER_REAL, left, interval)
        self._outer = (0.0, 0.0, 0.0)

    def poke(self) -> None:
        """From another thread: run :attr:`on_poke` in the main thread's signal handler."""
        self._poked = True
        main = threading.main_thread().ident
        if self._installed and main is not None:
            signal.pthread_kill(main, signal.SIGALRM)

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        if self._poked:
            self._poked = False
            if self.on_poke is not None:
                self.on_poke(frame)
            # The job's own timer may have fired at the same moment (the two
            # signals merge): if it has run out, this is its timeout too.
            if self._seconds is None or signal.getitimer(signal.ITIMER_REAL)[0] > 0:
                return
        if self._seconds is not None:
            self.interrupt(JobTimeout(f"job exceeded its timeout of {self._seconds:g}s"), frame)
        elif callable(self._previous):
            self._previous(signum, frame)

    @contextmanager
    def __call__(self, seconds: float) -> Iterator[None]:
        """Raise JobTimeout after ``seconds``; always disarmed on exit (outside a worker)."""
        installed_here = not self._installed
        self.arm(seconds)
        try:
            yield
        finally:
            self.disarm()
            if installed_here:
                self.uninstall()
