"""The job's own code, and the only place the worker interrupts it.

Two things interrupt a running job from a signal handler: the job alarm
(:class:`~myrq.exceptions.JobTimeout`, on SIGALRM) and a shutdown that will
not wait (:class:`~myrq.worker.shutdown.ShutdownNow`, on a second SIGTERM or
at the end of the grace period). Python runs a signal handler between two
bytecodes of whatever frame is current, so without care it could land in
myrq's own code around the job: just after the job returned (the job would be
put back or marked timed out although it finished), or inside the timer's
clean-up (leaving the timer armed, to kill the process later).

:meth:`JobGuard.call` runs the job's function, and an interrupt is raised
only when the handler finds the job's own code running (any frame but the
guard's few). When it lands in the guard's frames instead, it is deferred:
raised before the job starts if the job has not started, and dropped if the
job has already returned. So:

- a job that returned counts as returned once control is back in myrq's code,
  even if its alarm fired or a second signal came meanwhile (it is recorded
  ``finished``). A signal handled in the very instruction that returns from
  the job's function still counts as interrupting it: Python offers no finer
  point than that;
- the timer is always disarmed and an outer timer restored, whatever signal
  comes during the clean-up.

The job's function is called through a one-line trampoline (:func:`_job`), a
frame of its own that is not guarded, so a job that is a C function
(``time.sleep`` enqueued directly, say) is interrupted like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from types import FrameType
from typing import Any

from myrq.worker.alarm import JobAlarm
from myrq.worker.calling import call_job


class JobGuard:
    """Runs job functions so that interrupts land only in their own code."""

    def __init__(self, alarm: JobAlarm) -> None:
        self.alarm = alarm
        alarm.interrupt = self.interrupt
        #: True from just before the job's function is resolved until it returned.
        #: Set by the caller, right before :meth:`call` (see there).
        self.running = False
        self.pending: BaseException | None = None
        self._guarded = frozenset(
            {JobGuard.call.__code__, JobAlarm.arm.__code__, JobAlarm.disarm.__code__}
        )

    def call(
        self,
        resolve: Callable[[], Callable[..., Any]],
        args: list[Any],
        kwargs: dict[str, Any],
        timeout: float | None,
    ) -> Any:
        """``resolve()(*args, **kwargs)`` under the alarm (None: no alarm).

        The caller sets ``running = True`` and ``pending = None`` just before,
        so that an interrupt handled as this frame starts is deferred too.
        """
        try:
            if timeout is not None:
                self.alarm.arm(timeout)
            func = resolve()  # the import is inside the timeout: it may hang
            if self.pending is not None:  # came before the job's own code started
                raise self.pending
            return _job(func, args, kwargs)
        finally:
            self.running = False
            if timeout is not None:
                self.alarm.disarm()

    def interrupt(self, exc: BaseException, frame: FrameType | None) -> None:
        """From a signal handler: raise ``exc`` in the job, or defer it (see the module doc)."""
        if frame is not None and frame.f_code in self._guarded:
            self.pending = exc
            return
        raise exc


def _job(func: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> Any:
    """The job's own frame, even when ``func`` is written in C (see the module doc)."""
    return call_job(func, args, kwargs)
