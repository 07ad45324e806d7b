"""Registries: a queue's jobs in one state, counted and listed by the broker.

Every state has one per queue (see ``Broker.registry``): ``pending`` is the
queue itself, ``scheduled`` its schedule, ``running`` the jobs claimed from it,
``deferred`` the jobs waiting for dependencies, and each ended state
(``finished``, ``failed``, ``timeout``, ``canceled``, ``stopped``) the jobs
that ended so and whose records are still kept. The names of RQ's
registries are :class:`~myrq.Queue` properties (``q.failed_job_registry``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

from myrq.exceptions import InvalidArgumentError
from myrq.status import TERMINAL_STATUSES, JobStatus

if TYPE_CHECKING:
    from myrq.backends import Broker
    from myrq.job import Job
    from myrq.queue import Queue


class Registry:
    """``queue``'s jobs in ``state``: ``len()``, ``in``, ids, jobs, requeue."""

    def __init__(self, queue: Queue, state: JobStatus | str) -> None:
        try:
            self.state = JobStatus(state)
        except ValueError:
            raise InvalidArgumentError(
                f"there is no registry of state {state!r}: use one of "
                f"{', '.join(s.value for s in JobStatus)}"
            ) from None
        self.queue = queue

    def __repr__(self) -> str:
        return f"Registry({self.queue.name!r}, {self.state.value!r})"

    @property
    def count(self) -> int:
        """How many jobs are in it (read from the broker, no record is loaded)."""
        return self.queue.broker.registry_count(self.queue.name, self.state.value)

    def __len__(self) -> int:
        return self.count

    def __contains__(self, item: object) -> bool:
        job_id = getattr(item, "id", item)
        return job_id in self.get_job_ids()

    def get_job_ids(self, start: int = 0, end: int = -1) -> list[str]:
        """Ids from ``start`` to ``end`` inclusive (-1: the last), in the registry's order.

        Pending jobs in queue order, scheduled ones by due time, the others by
        when they entered the state (ended ones by when their records expire).
        """
        return self.queue.broker.registry(self.queue.name, self.state.value, start, end)

    @property
    def job_ids(self) -> list[str]:
        return self.get_job_ids()

    def jobs(self, start: int = 0, end: int = -1) -> list[Job[Any]]:
        """The jobs from ``start`` to ``end`` whose records still exist."""
        found = []
        for job_id in self.get_job_ids(start, end):
            job = self.queue.fetch_job(job_id)
            if job is not None:
                found.append(job)
        return found

    def __iter__(self) -> Iterator[Job[Any]]:
        return iter(self.jobs())

    def requeue(self, job: Job[Any] | str) -> bool:
        """Run an ended job of this registry again (see :meth:`myrq.Job.requeue`)."""
        if self.state not in TERMINAL_STATUSES:
            raise InvalidArgumentError(
                f"only ended jobs can be requeued; this registry holds {self.state.value} jobs"
            )
        return self.queue.broker.requeue(job if isinstance(job, str) else job.id)

    def requeue_all(self) -> int:
        """Run every job of this (ended) registry again; return how many went back."""
        done = 0
        while True:
            ids = self.get_job_ids(0, 499)
            moved = sum(1 for job_id in ids if self.requeue(job_id))
            done += moved
            if len(ids) < 500 or not moved:
                return done


class QueueRegistries:
    """A :class:`~myrq.Queue`'s registries and the steps over them (mixed into Queue)."""

    name: str
    broker: Broker

    if TYPE_CHECKING:

        def fetch_job(self, job_id: str) -> Job[Any] | None: ...

    def registry(self, state: JobStatus | str) -> Registry:
        """This queue's jobs in ``state`` (any :class:`JobStatus`): count, ids, jobs."""
        return Registry(cast("Queue", self), state)

    @property
    def scheduled_job_registry(self) -> Registry:
        return self.registry(JobStatus.SCHEDULED)

    @property
    def deferred_job_registry(self) -> Registry:
        return self.registry(JobStatus.DEFERRED)

    @property
    def started_job_registry(self) -> Registry:
        """Running jobs (RQ's name)."""
        return self.registry(JobStatus.RUNNING)

    @property
    def finished_job_registry(self) -> Registry:
        return self.registry(JobStatus.FINISHED)

    @property
    def failed_job_registry(self) -> Registry:
        """Failed jobs (timed-out ones are in ``registry("timeout")``)."""
        return self.registry(JobStatus.FAILED)

    @property
    def canceled_job_registry(self) -> Registry:
        return self.registry(JobStatus.CANCELED)

    def requeue_failed(
        self, states: Sequence[JobStatus | str] = (JobStatus.FAILED, JobStatus.TIMEOUT)
    ) -> int:
        """Run every failed (and timed-out) job of this queue again; return how many."""
        return sum(self.registry(state).requeue_all() for state in states)

    def empty(self) -> int:
        """Delete the jobs waiting on this queue (not scheduled or running); return how many."""
        return self.broker.empty(self.name)
