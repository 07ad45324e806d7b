"""Stopping a running job on request (``job.stop()``): the worker's side.

``Broker.stop`` marks a running job; the heartbeat's next renewal of its
lease reports the mark (``renew_many`` returns 2) and calls :meth:`StopRequests.request`
from the heartbeat thread. If the job is the one running now, the main
thread is sent SIGALRM (:meth:`~myrq.worker.alarm.JobAlarm.poke`); the handler
raises :class:`~myrq.exceptions.JobStopped` in the job's own code through the
:class:`~myrq.worker.guard.JobGuard` (so it never lands in myrq's code around
the job), and an isolated job's child is killed as the exception unwinds. A
job claimed but not started yet is recorded ``stopped`` without running.

The handler checks, when it runs, that the job asked for is still the one
running: a request that arrives as a job ends never stops the next one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from myrq.codec import ErrorInfo
from myrq.exceptions import JobStopped
from myrq.worker.alarm import JobAlarm
from myrq.worker.guard import JobGuard

#: The error a stopped job records.
STOPPED_TYPE = f"{JobStopped.__module__}.{JobStopped.__qualname__}"
#: Requests remembered for jobs this worker has not reached yet (bounded).
_MAX_REMEMBERED = 10_000


def stopped_error(ran: bool) -> ErrorInfo:
    message = "stopped on request while it ran" if ran else "stopped on request before it ran"
    return ErrorInfo(STOPPED_TYPE, message, "", final=True)


class StopRequests:
    """Jobs someone asked this worker to stop, and the interrupt of the running one."""

    def __init__(self, alarm: JobAlarm, guard: JobGuard) -> None:
        self.alarm = alarm
        self.guard = guard
        self._requested: set[str] = set()
        self._lock = threading.Lock()
        self._current: str | None = None  # the job running in the main thread now
        self._target: str | None = None  # the job the last poke was for
        alarm.on_poke = self._on_poke

    def request(self, job_id: str) -> None:
        """From the heartbeat thread: stop ``job_id`` now if it runs, else before it starts."""
        with self._lock:
            if len(self._requested) < _MAX_REMEMBERED:
                self._requested.add(job_id)
            running = self._current == job_id
        if running:
            self._target = job_id
            self.alarm.poke()

    def take(self, job_id: str) -> bool:
        """True (once) if ``job_id`` was asked to stop before it started."""
        if not self._requested:  # the usual case, without the lock
            return False
        with self._lock:
            if job_id in self._requested:
                self._requested.discard(job_id)
                return True
            return False

    def start(self, job_id: str) -> None:
        """``job_id`` runs in the main thread from now (until :meth:`end`)."""
        self._current = job_id

    def end(self, job_id: str) -> None:
        self._current = None
        if self._requested:
            with self._lock:
                self._requested.discard(job_id)

    @contextmanager
    def running(self, job_id: str) -> Iterator[None]:
        """Mark ``job_id`` as the job running in the main thread while inside."""
        self.start(job_id)
        try:
            yield
        finally:
            self.end(job_id)

    def _on_poke(self, frame: FrameType | None) -> None:
        """In the signal handler: interrupt the job if it is still the one asked for."""
        target, self._target = self._target, None
        if target is not None and target == self._current and self.guard.running:
            self.guard.interrupt(JobStopped(f"job {target} was stopped on request"), frame)
