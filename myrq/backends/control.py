"""The Broker contract, continued: control, registries, time and workers.

:class:`~myrq.backends.base.Broker` inherits these; they are part of the one
contract (the contract suite tests them on every broker). Each step that
changes something is atomic.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from myrq.backends.values import CronEntry, CronJob, Fields
from myrq.schema import ENDED, F_STATUS

#: The states that have a registry (see :meth:`ControlSteps.registry`).
REGISTRY_STATES = (
    "scheduled", "deferred", "pending", "running",
    "finished", "failed", "timeout", "canceled", "stopped",
)  # fmt: skip


class ControlSteps(ABC):
    """Control, registries, time and workers: see :class:`~myrq.backends.base.Broker`."""

    @abstractmethod
    def get(self, job_id: str) -> dict[str, bytes] | None:
        """Return the job's record, or None if there is none."""

    # -- control -------------------------------------------------------------

    @abstractmethod
    def stop(self, job_id: str) -> str | None:
        """Ask the worker running a job to stop it. Atomic.

        A ``running`` job is marked (field ``stop``); the next renewal of its
        lease tells its worker (:meth:`renew_many` returns 2), which stops it
        and records it ``stopped``. Returns the job's status (``running``
        when marked), or None when there is no job. The caller cancels a job
        that has not started.
        """

    @abstractmethod
    def requeue(self, job_id: str) -> bool:
        """Run an ended job again: back to the end of its queue, ``pending``. Atomic.

        Out of its registry, ``attempts`` and ``tries`` back to 0, its
        ``error``, ``result``, ``ended_at`` and claim fields gone (its
        ``errors`` kept). False when the job had not ended (nothing changed).
        """

    @abstractmethod
    def empty(self, queue: str) -> int:
        """Delete every pending job of ``queue`` (records and queue); return how many."""

    @abstractmethod
    def set_fields(self, job_id: str, fields: Fields) -> bool:
        """Write fields of an existing job (meta, a callback's error). Atomic.

        Never re-creates a job: False when there is none. The caller keeps to
        fields the broker does not manage.
        """

    # -- registries ------------------------------------------------------------

    @abstractmethod
    def registry(self, queue: str, state: str, start: int = 0, stop: int = -1) -> list[str]:
        """Ids of ``queue``'s jobs in ``state`` (one of :data:`REGISTRY_STATES`), from
        ``start`` to ``stop`` inclusive (``-1``: the end).

        Pending ids in queue order, scheduled by due time, the others by when
        they entered the state (ended ones by when they expire). Ids of ended
        jobs whose records expired are left out (and trimmed by
        :meth:`trim_registries`).
        """

    @abstractmethod
    def registry_count(self, queue: str, state: str) -> int:
        """How many of ``queue``'s jobs are in ``state``, without reading any record."""

    @abstractmethod
    def trim_registries(self, queue: str) -> int:
        """Drop the ids of ``queue``'s ended jobs whose records expired; return how many."""

    # -- time -------------------------------------------------------------------

    @abstractmethod
    def cancel(self, job_id: str, ttl: float | None, error: bytes) -> str | None:
        """Cancel a job that has not started. Atomic.

        A ``pending`` job comes off its queue, a ``scheduled`` one off its
        schedule; it becomes ``canceled`` with ``ended_at``, ``error`` and a
        lifetime of ``ttl`` (as :meth:`finish`). Clients waiting for it are told.

        Returns:
            the status it had, or None if it was not pending or scheduled
            (running, ended or missing): nothing was changed.
        """

    @abstractmethod
    def run_now(self, job_id: str) -> bool:
        """Move a ``scheduled`` job onto its queue now, as if it were due. Atomic.

        Returns:
            False if the job was not scheduled; nothing was changed.
        """

    @abstractmethod
    def scheduled(self, queue: str, limit: int = 1000) -> list[tuple[str, float]]:
        """Up to ``limit`` scheduled jobs of ``queue``: ``(job_id, due)``, soonest first.

        ``due`` is in seconds since the epoch on the broker's clock.
        """

    def wait_for_end(self, job_id: str, timeout: float) -> bool:
        """Block until the job has ended (or its record is gone), at most ``timeout`` seconds.

        Returns True once it ended, False at the timeout. The Redis broker
        blocks on a list that the step ending the job pushes to; the memory
        broker on a condition. This default reads the record every 0.2 s.
        """
        import time  # noqa: PLC0415 - only brokers without notifications poll

        deadline = time.monotonic() + timeout
        while True:
            record = self.get(job_id)
            if record is None or record.get(F_STATUS) in ENDED:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(0.2, remaining))

    # -- periodic jobs ---------------------------------------------------------

    @abstractmethod
    def cron_set(self, queue: str, name: str, spec: bytes, version: str, first: CronJob) -> None:
        """Store (or replace) the schedule ``name`` of ``queue`` and schedule its first job.

        The schedule's earlier next job, if still scheduled, is removed.
        """

    @abstractmethod
    def cron_next(self, queue: str, name: str, version: str, job: CronJob) -> bool:
        """Schedule the next job of a schedule, if it is still at ``version``. Atomic.

        Returns False when the schedule was replaced or removed, or a live job
        holds the id already (another worker did it): nothing was changed.
        """

    @abstractmethod
    def cron_remove(self, queue: str, name: str) -> bool:
        """Remove a schedule and its next job (if still scheduled). True if it existed."""

    @abstractmethod
    def crons(self, queue: str) -> dict[str, CronEntry]:
        """The schedules of ``queue`` by name."""

    # -- workers -------------------------------------------------------------

    @abstractmethod
    def register_worker(self, name: str, fields: Fields, ttl: float) -> None:
        """Record a live worker (replacing its earlier record) for ``ttl`` seconds."""

    @abstractmethod
    def unregister_worker(self, name: str) -> None:
        """Forget a worker that stopped."""

    @abstractmethod
    def workers(self) -> dict[str, dict[str, bytes]]:
        """The records of the workers whose registration has not expired, by name."""
