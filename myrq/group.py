"""A group of jobs enqueued together: how many ended how, and waiting for them all."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from myrq.durations import parse_duration
from myrq.exceptions import JobFailedError, NoSuchJobError, WaitTimeout
from myrq.status import JobStatus

if TYPE_CHECKING:
    from myrq.job import Job


class Group(list["Job[Any]"]):
    """The jobs of one :meth:`myrq.Queue.enqueue_many`, in order (a list of :class:`~myrq.Job`)."""

    def __init__(self, jobs: Iterable[Job[Any]] = ()) -> None:
        super().__init__(jobs)
        self._gone: set[str] = set()  # ids whose records were gone at the last refresh

    def refresh(self) -> None:
        """Re-read every job's record (a job whose record is gone keeps its last)."""
        self._gone.clear()
        for job in self:
            try:
                job.refresh()
            except NoSuchJobError:
                self._gone.add(job.id)

    def counts(self) -> dict[str, int]:
        """How many jobs are in each status now (``"gone"``: record deleted or expired)."""
        self.refresh()
        return dict(Counter("gone" if j.id in self._gone else j.status.value for j in self))

    @property
    def done(self) -> bool:
        """True once every job has ended (or its record is gone)."""
        counts = self.counts()
        return all(s == "gone" or JobStatus(s).is_terminal for s in counts)

    def wait(self, timeout: float | str | timedelta | None = None) -> list[Any]:
        """Block until every job has ended; return their results, in order.

        Raises:
            JobFailedError: a job did not finish (the first one, in order).
            WaitTimeout: they had not all ended within ``timeout``.
            NoSuchJobError: a job's record is gone.
        """
        limit = None if timeout is None else parse_duration(timeout, "timeout")
        deadline = None if limit is None else time.monotonic() + limit
        for job in self:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                job.wait(timeout=left)
            except JobFailedError:
                continue  # reported below, in order, once all have ended
            except WaitTimeout:
                raise WaitTimeout(f"the group's jobs had not all ended within {limit:g}s") from None
        results = []
        for job in self:
            if job.status is not JobStatus.FINISHED:
                raise JobFailedError(job, job.error)
            results.append(job.result)
        return results
