"""Graceful shutdown: SIGTERM/SIGINT, the grace period, and stopping the running job.

A first SIGTERM or SIGINT sets the worker's stop event: it takes no new job
and finishes the one it runs. A second signal, or the end of the grace period,
raises :class:`ShutdownNow` inside the running job, through the
:class:`~myrq.worker.guard.JobGuard` (only in the job's own code: a job that
has returned counts as returned); the worker then puts the job back on its
queue, uncounted.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

from myrq.worker.alarm import raw_getsignal

if TYPE_CHECKING:
    from myrq.worker.guard import JobGuard

logger = logging.getLogger("myrq.worker")


class ShutdownNow(BaseException):
    """Raised in the running job by a second SIGTERM/SIGINT or the end of the grace period."""


class Shutdown:
    """Signal handling for one worker's run."""

    def __init__(
        self, worker_name: str, grace_period: float | None, stop: threading.Event, guard: JobGuard
    ) -> None:
        self.worker_name = worker_name
        self.grace_period = grace_period
        self.stop = stop
        self.guard = guard
        self._grace_over = False
        self._timer: threading.Timer | None = None
        self._handler = self._handle  # one bound method, so identity checks work
        self._installed = False
        #: Whether a job runs now (a concurrent worker replaces both).
        self.busy: Callable[[], bool] = lambda: guard.running
        #: Stop the running job(s) now, from the handler; None: interrupt the guard's job.
        self.interrupt_now: Callable[[FrameType | None], None] | None = None

    def install(self) -> Callable[[], None]:
        """Install the SIGTERM/SIGINT handlers (main thread only); return their undo."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        for sig in previous:
            signal.signal(sig, self._handler)
        self._installed = True

        def restore() -> None:
            self._installed = False
            for sig, old in previous.items():
                signal.signal(sig, old)

        return restore

    def ensure_installed(self) -> None:
        """Before each job: put the handlers back if the last job (or a library) replaced them.

        Otherwise one job that reset SIGTERM would turn graceful shutdown off
        for the rest of the worker's run.
        """
        if not self._installed:
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            if raw_getsignal(sig) is not self._handler:
                signal.signal(sig, self._handler)
                logger.warning(
                    "worker %s: a job replaced the %s handler; put back so that graceful "
                    "shutdown keeps working",
                    self.worker_name,
                    signal.Signals(sig).name,
                )

    def close(self) -> None:
        """Cancel the grace timer, if one runs."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer.join()
            self._timer = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._grace_over:
            self._grace_over = False
            if self.busy():
                logger.warning(
                    "worker %s: grace period of %gs is over: stopping the current job "
                    "and putting it back on its queue",
                    self.worker_name,
                    self.grace_period,
                )
                self._now(frame)
        elif not self.stop.is_set():
            grace = "" if self.grace_period is None else f" (grace period {self.grace_period:g}s)"
            logger.info(
                "worker %s got %s: finishing the current job%s, then exiting "
                "(send it again to stop now)",
                self.worker_name,
                name,
                grace,
            )
            self.stop.set()
            # Started even between jobs: one may be starting right now. At the
            # end of the period, only a job still running is interrupted.
            if self.grace_period is not None:
                self._timer = threading.Timer(self.grace_period, self._end_grace, args=(signum,))
                self._timer.daemon = True
                self._timer.start()
        elif self.busy():
            logger.warning(
                "worker %s got %s again: stopping the current job and putting it back on its queue",
                self.worker_name,
                name,
            )
            self._now(frame)

    def _now(self, frame: FrameType | None) -> None:
        if self.interrupt_now is not None:
            self.interrupt_now(frame)
        else:
            self.guard.interrupt(ShutdownNow(), frame)

    def _end_grace(self, signum: int) -> None:
        """Timer thread: the grace period is over; interrupt the job in the main thread."""
        if self.busy():
            self._grace_over = True
            ident = threading.main_thread().ident
            if ident is not None:
                signal.pthread_kill(ident, signum)
