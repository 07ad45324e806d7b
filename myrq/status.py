"""Job states and how they are spelled on the wire.

The strings are part of the storage format (they are what the Redis hash's
``status`` field holds) and match the original design: ``pending``,
``running``, ``finished``, ``failed``, ``timeout``.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """Where a job is in its life.

    ``SCHEDULED`` waiting for its time (enqueue_at/enqueue_in, or its next retry)
    ``DEFERRED``  waiting for the jobs it depends on to finish
    ``PENDING``   waiting on its queue
    ``RUNNING``   claimed by a worker, which holds a lease on it
    ``FINISHED``  ran and returned; ``job.result`` holds the value
    ``FAILED``    raised, could not be run, or was abandoned; ``job.error`` says why
    ``TIMEOUT``   ran past its timeout and was stopped; ``job.error`` says so
    ``CANCELED``  will not run: canceled, not started within its ``ttl``, or a
                  job it depends on did not finish
    ``STOPPED``   was running when ``job.stop()`` asked its worker to stop it
    """

    SCHEDULED = "scheduled"
    DEFERRED = "deferred"
    PENDING = "pending"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELED = "canceled"
    STOPPED = "stopped"

    @property
    def is_terminal(self) -> bool:
        """True once the job will not run again by itself."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.TIMEOUT, JobStatus.CANCELED, JobStatus.STOPPED}
)
