"""The Broker contract: byte-level storage for jobs and queues.

A broker stores job records (a flat mapping of field name to bytes), keeps
named FIFO queues of job ids, and hands queued jobs to workers under a lease.
It knows nothing of functions, serializers or retries: that policy lives in
:mod:`myrq.job`, :mod:`myrq.queue` and :mod:`myrq.worker`.

The contract is written so that it can be built on Redis (hash + list +
sorted set, one Lua script per step), on SQL tables (one transaction per
step) or in memory (dicts under a lock). Every method marked *atomic* must be
carried out whole or not at all. Brokers written in Python can implement the
much smaller :class:`myrq.backends.store.Store` instead and get every step
from :class:`myrq.backends.store_broker.StoreBroker`.

The fields a broker reads or writes itself are listed in :mod:`myrq.schema`;
it stores all others opaquely.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence

from myrq.backends.control import ControlSteps
from myrq.backends.values import (
    CronEntry,
    CronJob,
    Delivery,
    EnqueueRequest,
    Fields,
    FinishRequest,
    Reaped,
)
from myrq.exceptions import InvalidJobError, JobExistsError
from myrq.schema import F_STATUS, F_STOP


class Broker(ControlSteps, ABC):
    """Storage for jobs and queues. Subclass it to add a backend.

    Thread safety: a broker instance is shared by a worker's main thread and
    its heartbeat thread, so every method must be safe to call concurrently.
    """

    #: A description safe to print (no passwords), e.g. ``redis://host:6379/0``.
    url: str = ""

    #: True when the broker follows the batch rule, so a worker may claim
    #: several jobs at once: a ``dequeue`` with ``count > 1`` sets ``batch=1``
    #: on the jobs it claims; ``reap`` requeues such a job uncounted (its
    #: worker died, and whether it had started is unknown) and sets
    #: ``solo=1``; a solo job is claimed only alone. Without it a worker
    #: claims one job at a time, so every attempt is counted exactly.
    batch_claims: bool = False

    # -- producing ---------------------------------------------------------

    @abstractmethod
    def enqueue(
        self,
        queue: str,
        job_id: str,
        fields: Fields,
        *,
        at: float | None = None,
        delay: float | None = None,
        front: bool = False,
        ttl: float | None = None,
    ) -> None:
        """Store a job record and append its id to ``queue``. Atomic.

        The record is stored with ``fields`` exactly (plus ``status=pending``
        if absent) and replaces any earlier record of the same id that had
        ended. The stored record never expires while it waits or runs.

        The job is due at ``at`` (seconds since the epoch) or ``delay`` seconds
        from now (broker clock), else at once. Due later, it waits as
        ``scheduled`` and a claim of its queue moves it there when due. Due now,
        it goes to the end of the queue, or the front with ``front``. With a
        ``ttl``, a claim after ``due + ttl`` cancels it (``canceled``, error
        ``JobExpired``) instead of running it; the field ``expires_at`` is
        written for that and removed by the first claim. A resend of the same
        enqueue (same ``created_at`` and payload) finds its own record and
        succeeds without writing.

        Raises:
            JobExistsError: a record with this id is ``scheduled``,
                ``pending`` or ``running``; nothing was written.
            BrokerConnectionError: the storage cannot be reached; nothing was
                written, or the step was done whole (never half).
        """

    def enqueue_many(self, requests: Sequence[EnqueueRequest]) -> list[str]:
        """Enqueue several jobs; each one is atomic, the batch need not be.

        Each request is :meth:`enqueue`'s arguments, plus its dependencies: a
        job with ``depends_on`` waits ``deferred`` (in the ``deferred``
        registry, field ``pending_deps`` counting the jobs not ended yet, and
        ``allow_failure=1`` when set) until they have all finished; then it
        goes to the end of its queue (its ``ttl`` counting from then). When
        one of them ends otherwise (failed, timeout, canceled, stopped), the
        job is canceled (error ``DependencyFailed``), and so on down the
        chain, unless it allows failure: then it is released once they have
        all ended. The step that ends a job does this; dependencies that had
        ended before the enqueue count at once. Parents are marked
        ``has_dependents=1``.

        Returns:
            The ids that were *not* enqueued because a live job held them.

        Raises:
            InvalidJobError: a job depends on a job that does not exist; that
                job was not stored, the others were (the message names them).

        Backends override this to batch round trips, and must to support
        dependencies: this default stores jobs one by one with :meth:`enqueue`.
        """
        if any(req.depends_on for req in requests):
            raise InvalidJobError(
                f"{type(self).__name__} does not support depends_on: it must override "
                "enqueue_many (see docs/writing-a-broker.md)"
            )
        refused: list[str] = []
        for req in requests:
            try:
                self.enqueue(
                    req.queue, req.job_id, req.fields,
                    at=req.at, delay=req.delay, front=req.front, ttl=req.ttl,
                )  # fmt: skip
            except JobExistsError:
                refused.append(req.job_id)
        return refused

    # -- consuming ---------------------------------------------------------

    @abstractmethod
    def dequeue(
        self,
        queues: Sequence[str],
        worker: str,
        lease: float,
        timeout: float = 0,
        count: int = 1,
        *,
        claim_id: str | None = None,
    ) -> list[Delivery]:
        """Take up to ``count`` ids from the first non-empty queue(s) and claim them.

        Queues are tried in the order given. Taking an id off its queue and
        recording the claim is one atomic step, so a worker dying at any point
        leaves the job either queued or leased, never lost. A claim sets
        ``status=running``, ``started_at``, ``worker`` and a new ``lease``
        token, sets ``queue`` to the queue it came from, increments
        ``attempts``, makes sure the record cannot expire while it runs, and
        records a lease that expires ``lease`` seconds from now. With
        ``count > 1`` on a broker with :attr:`batch_claims`, the batch rule
        applies (``batch``/``solo``, see that attribute).

        Ids whose record is missing or whose status is not claimable are
        taken off the queue (nothing is written for them) and returned
        unclaimed, so the caller can report them. So are jobs whose ``ttl``
        had passed: those are canceled (``note="expired"``).

        Before taking ids off a queue, the claim moves that queue's scheduled
        jobs that are due onto it (status ``pending``), in one atomic step with
        the claim. A waiting dequeue wakes when the next one falls due.

        With ``timeout > 0`` and nothing queued, waits up to ``timeout``
        seconds for a job to arrive, without busy polling; returns ``[]`` if
        none did.

        ``claim_id`` names this claim (the broker makes one when it is None).
        Called again with the same ``claim_id`` after a claim was carried out
        (a resend after a lost reply), it returns the jobs that claim took that
        it still holds, and claims nothing more, so no job is left leased to a
        claim nobody saw. Lease tokens are ``worker:claim_id:n``.

        Raises:
            InvalidArgumentError: a lease, timeout or count out of range.
        """

    @abstractmethod
    def renew(self, job_id: str, token: str, lease: float) -> bool:
        """Extend a held lease to ``lease`` seconds from now. Atomic.

        Returns:
            False if ``token`` no longer holds the job (the lease expired and
            was reaped, or the job was deleted); nothing was changed.
        """

    def renew_many(self, held: Sequence[tuple[str, str]], lease: float) -> list[int]:
        """:meth:`renew` each ``(job_id, token)``; one round trip where the broker can.

        Returns one integer per job: 0 the token no longer holds it, 1
        renewed, 2 renewed and someone asked to stop it (:meth:`stop`). This
        default renews one by one, then reads the record of each renewed job.
        """
        out = []
        for job_id, token in held:
            ok = self.renew(job_id, token, lease)
            stop = ok and (self.get(job_id) or {}).get(F_STOP) == b"1"
            out.append(2 if stop else int(ok))
        return out

    @abstractmethod
    def finish(self, job_id: str, token: str, fields: Fields, ttl: float | None) -> bool:
        """Record a claimed job's outcome and end its lease. Atomic.

        ``fields`` (which include the final ``status``, and ``ended_at``, which
        the worker reckons on the broker's clock as ``started_at`` plus the
        time since the claim) are written into the record; the lease ends, and
        the ``lease`` field keeps the token, holding nothing once the status is
        final (so a caller whose reply was lost can tell its own write). ``ttl`` sets the record's
        lifetime from now: ``None`` keeps it forever, ``0`` deletes it at once,
        otherwise it is rounded up to whole milliseconds (see
        :mod:`myrq.backends.arguments`).

        Returns:
            False if ``token`` no longer holds the job: nothing was written
            (fencing: a worker that lost its lease cannot overwrite the state
            another worker set, nor re-create a deleted record).
        """

    def finish_many_and_dequeue(
        self,
        finishes: Sequence[FinishRequest],
        *,
        queues: Sequence[str],
        worker: str,
        lease: float,
        count: int = 1,
        claim_id: str | None = None,
    ) -> tuple[list[bool], list[Delivery]]:
        """:meth:`finish` each of ``finishes``, then :meth:`dequeue` without blocking.

        A :class:`FinishRequest` with ``retry_delay`` is not final: its fields
        are written, ``attempts`` is set to 0 and the job goes back on its
        queue (``retry_delay`` 0) or waits as scheduled; the record keeps no
        expiry.

        A busy worker's one step per batch of jobs. Brokers that can should do
        it all in one round trip (the Redis broker runs one script); this
        default calls the two. Each finish is atomic on its own; the whole
        need not be. ``count=0`` claims nothing.

        Returns:
            what :meth:`finish` returned for each, and what :meth:`dequeue` returned
        """
        if any(f.retry_delay is not None for f in finishes):
            raise NotImplementedError(f"{type(self).__name__} must implement retries")
        written = [self.finish(f.job_id, f.token, f.fields, f.ttl) for f in finishes]
        if count < 1:
            return written, []
        claimed = self.dequeue(queues, worker, lease, timeout=0, count=count, claim_id=claim_id)
        return written, claimed

    @abstractmethod
    def release(self, job_id: str, token: str) -> bool:
        """Give a claimed job back: to the front of its queue, ``pending``. Atomic.

        The claim's attempt is not counted (``attempts`` is decremented).
        Used on shutdown for jobs taken but not finished.

        Returns:
            False if ``token`` no longer holds the job; nothing was changed.
        """

    @abstractmethod
    def reap(
        self, max_attempts: int, failure_ttl: float | None = None, limit: int = 100
    ) -> list[Reaped]:
        """Deal with up to ``limit`` leases that have expired. Atomic per job.

        A job whose lease expired (its worker died or hung) goes back to the
        end of its queue as ``pending``; if it has already been claimed
        ``max_attempts`` times (``0``: no limit) it is instead marked
        ``failed`` with an ``error`` saying it was abandoned, and kept for the
        record's ``failure_ttl`` field (``-1`` forever, ``0`` deleted at once;
        read as :func:`myrq.schema.parse_ttl_ms` does), or for ``failure_ttl``
        seconds if the record has no usable one (``None``: forever). A job
        whose queue key cannot take it back (a foreign key of another type) is
        left as it is and reported ``blocked``.
        """

    @abstractmethod
    def repair(
        self, job_ids: Sequence[str], max_attempts: int, failure_ttl: float | None = None
    ) -> list[Reaped]:
        """Deal with jobs left ``running`` without a lease, as :meth:`reap` deals with expired ones.

        For operators (``myrq repair``): if the leases were lost (an eviction,
        an operator's ``DEL``), their records would stay ``running`` for good.
        Each of ``job_ids`` whose record is ``running`` and which holds no lease
        is requeued, or failed past ``max_attempts``; others are left alone.
        Atomic per job.
        """

    # -- inspecting --------------------------------------------------------

    @abstractmethod
    def lease_deadline(self, job_id: str) -> float | None:
        """When the job's lease expires (seconds since the epoch, broker clock), or None."""

    @abstractmethod
    def get(self, job_id: str) -> dict[str, bytes] | None:
        """Return the job's record, or None if there is none."""

    @abstractmethod
    def delete(self, job_id: str) -> bool:
        """Delete a job's record, its queue entries and its lease.

        Returns:
            True if a record existed.
        """

    @abstractmethod
    def queue_length(self, queue: str) -> int:
        """Number of ids waiting on ``queue``."""

    @abstractmethod
    def queued_ids(self, queue: str, start: int = 0, stop: int = -1) -> list[str]:
        """Ids on ``queue`` from position ``start`` to ``stop`` inclusive (``-1``: the end)."""

    @abstractmethod
    def queue_names(self) -> list[str]:
        """Names of the queues that have ever been enqueued to, sorted."""

    @abstractmethod
    def job_ids(self) -> Iterator[str]:
        """Iterate over the ids of every stored job record (for tools, not hot paths)."""

    @abstractmethod
    def leased_ids(self) -> list[str]:
        """Ids of the jobs currently held under a lease."""

    def status_counts(self) -> dict[str, int]:
        """Number of stored jobs in each status. Backends may override for speed."""
        counts: dict[str, int] = {}
        for job_id in self.job_ids():
            rec = self.get(job_id)
            if rec is None:
                continue
            status = rec.get(F_STATUS, b"").decode("utf-8", "replace") or "(none)"
            counts[status] = counts.get(status, 0) + 1
        return counts

    # -- lifecycle ---------------------------------------------------------

    def ping(self) -> None:
        """Check the storage is reachable. Raises BrokerConnectionError if not."""

    def startup_warnings(self) -> list[str]:
        """Problems of the storage's setup that a starting worker should log.

        For example a Redis whose eviction policy may drop queued jobs. The
        default finds none; a broker that cannot check returns ``[]``.
        """
        return []

    def close(self) -> None:
        """Release connections. The broker must not be used afterwards."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


__all__ = [
    "Broker",
    "CronEntry",
    "CronJob",
    "Delivery",
    "EnqueueRequest",
    "Fields",
    "FinishRequest",
    "Reaped",
]
