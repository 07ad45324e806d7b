"""Enqueue after commit: hold enqueues until a transaction commits, drop them on rollback.

A job enqueued inside a database transaction must not run if the transaction
rolls back, nor start before the rows it reads are committed::

    with myrq.defer_until_commit(), db.transaction():
        order = db.insert_order(...)
        q.enqueue(tasks.ship, order.id)  # held: the job has its id, nothing is stored yet
    # committed: the held jobs are sent now, in one round trip per broker

The block sends what it holds when it ends without an exception and drops it
when an exception leaves it. Put it *outside* the transaction's own block, so
that it ends after the commit (and sees a commit that fails). Blocks nest like
savepoints: an inner block that fails drops its own jobs only; one that ends
well hands them to the outer block, which sends them all.

For a framework that tells commits and rollbacks apart from any block,
:func:`hold` starts holding in the current context and returns the
:class:`PendingJobs`, whose :meth:`~PendingJobs.commit` or
:meth:`~PendingJobs.rollback` it calls. A framework that tracks transactions
itself registers a *holder* with :func:`add_holder`: a function that, given
the queue of an enqueue, returns the :class:`PendingJobs` to add it to (and
arranges its commit), or None to send it now. The Django integration is one
(:mod:`myrq.contrib.django`).

Held jobs are sent by the worker-independent producer path: the
``before_enqueue`` hooks ran at the enqueue, ``after_enqueue`` runs once a job
is stored, and an eager queue (:mod:`myrq.eager`) runs its jobs at the commit.
Between the commit and the send a crash loses the held jobs: this trades the
"job runs on a rolled-back row" bug for at-most-once delivery of that window.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from myrq import eager
from myrq.exceptions import JobExistsError, JobFailedError
from myrq.hooks import Hooks, call

if TYPE_CHECKING:
    from myrq.backends import Broker
    from myrq.job import Job
    from myrq.queue import Queue

logger = logging.getLogger("myrq.transaction")

_Held = tuple["Queue", "Job[Any]", Sequence[Hooks]]


class PendingJobs:
    """Jobs held until :meth:`commit` sends them or :meth:`rollback` drops them.

    Args:
        parent: the enclosing batch, which a commit hands the jobs to.
        hand_over: at a commit without an open parent, offer the jobs to the
            holders (:func:`add_holder`) before sending them, so that a
            :func:`defer_until_commit` block inside a framework's transaction
            waits for that transaction. A holder's own batches leave it False.
    """

    def __init__(self, parent: PendingJobs | None = None, *, hand_over: bool = False) -> None:
        self.parent = parent
        self.hand_over = hand_over
        self.held: list[_Held] = []
        self.closed = False

    def __len__(self) -> int:
        return len(self.held)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<PendingJobs {len(self.held)} job(s), {state}>"

    def add(self, queue: Queue, job: Job[Any], hooks: Sequence[Hooks] = ()) -> None:
        """Hold ``job`` (prepared by ``queue``); ``hooks`` hear ``after_enqueue`` once sent."""
        self.held.append((queue, job, hooks))

    def commit(self) -> None:
        """The transaction committed: send the held jobs (to the enclosing batch, if one is open).

        A second call does nothing.

        Raises:
            JobExistsError, BrokerError, JobFailedError: as the enqueues would
                have; every job is attempted first (see :func:`send`).
        """
        if self.closed:
            return
        self.closed = True
        held, self.held = self.held, []
        parent = _open(self.parent)
        if parent is not None:
            parent.held.extend(held)
        else:
            send(_hand_over(held) if self.hand_over else held)

    def rollback(self) -> None:
        """The transaction rolled back: drop the held jobs (they were never stored)."""
        if self.closed:
            return
        self.closed = True
        if self.held:
            logger.debug("dropped %d job(s) held for a transaction that rolled back", len(self))
        self.held = []


_current: ContextVar[PendingJobs | None] = ContextVar("myrq_pending_jobs", default=None)
_holders: list[Callable[[Queue], PendingJobs | None]] = []


def _open(pending: PendingJobs | None) -> PendingJobs | None:
    """``pending`` or the nearest enclosing batch still open."""
    while pending is not None and pending.closed:
        pending = pending.parent
    return pending


def hold() -> PendingJobs:
    """Hold this context's enqueues (this thread's, this asyncio task's) from now on.

    The caller ends it with :meth:`PendingJobs.commit` or
    :meth:`PendingJobs.rollback`; from then on enqueues go to the enclosing
    batch, if any, or are sent at once.
    """
    pending = PendingJobs(_open(_current.get()), hand_over=True)
    _current.set(pending)
    return pending


@contextmanager
def defer_until_commit() -> Iterator[PendingJobs]:
    """Hold enqueues made inside; send them if the block ends well, drop them if it raises."""
    pending = PendingJobs(_open(_current.get()), hand_over=True)
    token = _current.set(pending)
    try:
        yield pending
    except BaseException:
        pending.rollback()
        raise
    finally:
        _current.reset(token)
    pending.commit()


def add_holder(holder: Callable[[Queue], PendingJobs | None]) -> None:
    """Ask ``holder(queue)`` where each enqueue outside a :func:`defer_until_commit` goes."""
    if holder not in _holders:
        _holders.append(holder)


def remove_holder(holder: Callable[[Queue], PendingJobs | None]) -> None:
    """Stop asking a holder given to :func:`add_holder`."""
    if holder in _holders:
        _holders.remove(holder)


def holding(queue: Queue) -> PendingJobs | None:
    """The batch an enqueue on ``queue`` joins now, or None: it is sent at once."""
    pending = _open(_current.get())
    if pending is not None:
        return pending
    for holder in _holders:
        pending = _open(holder(queue))
        if pending is not None:
            return pending
    return None


def _hand_over(held: Sequence[_Held]) -> list[_Held]:
    """Give held jobs to a framework holder that holds now; return the others."""
    rest = []
    for entry in held:
        for holder in _holders:
            pending = _open(holder(entry[0]))
            if pending is not None:
                pending.add(*entry)
                break
        else:
            rest.append(entry)
    return rest


def divert(queue: Queue, jobs: Sequence[Job[Any]], hooks: Sequence[Hooks]) -> bool:
    """``Queue``'s divert point: hold ``jobs``, or run them now on an eager queue.

    Returns False when the queue is to store them itself, as usual.
    """
    pending = holding(queue)
    if pending is not None:
        for job in jobs:
            pending.add(queue, job, hooks)
        return True
    if queue.eager is not None:
        eager.enqueue(queue, jobs, hooks)
        return True
    return False


def send(held: Sequence[_Held]) -> None:
    """Store held jobs, in order: runs of plain queues on one broker in one round trip each,
    jobs of eager queues one by one, each run as it is stored.

    Every job is attempted before anything is raised: the first broker error,
    else the refused ids (:class:`JobExistsError`), else the first failed
    eager job's :class:`~myrq.JobFailedError`.
    """
    refused: list[str] = []
    errors: list[Exception] = []
    i = 0
    while i < len(held):
        queue = held[i][0]
        run = [held[i]] if queue.eager is not None else _run_of(held, i, queue.broker)
        i += len(run)
        try:
            if queue.eager is not None:
                eager.enqueue(queue, [run[0][1]], run[0][2])
            else:
                refused.extend(_store(run))
        except JobExistsError as exc:
            refused.extend(exc.job_ids)
        except Exception as exc:  # BrokerError, JobFailedError: the rest still go out
            errors.append(exc)
    broker_errors = [e for e in errors if not isinstance(e, JobFailedError)]
    if broker_errors:
        raise broker_errors[0]
    if refused:
        raise JobExistsError(refused)
    if errors:
        raise errors[0]


def _run_of(held: Sequence[_Held], start: int, broker: Broker) -> list[_Held]:
    """The entries from ``start`` on of plain queues of ``broker``, up to the first other."""
    run: list[_Held] = []
    for entry in held[start:]:
        if entry[0].eager is not None or entry[0].broker is not broker:
            break
        run.append(entry)
    return run


def _store(run: Sequence[_Held]) -> list[str]:
    """One ``enqueue_many`` for jobs of plain queues on one broker; returns the refused ids."""
    requests = []
    for _, job, _ in run:
        assert job.request is not None  # prepared by its queue
        requests.append(replace(job.request, fields=job._fields))
    refused = run[0][0].broker.enqueue_many(requests)
    for _, job, hooks in run:
        if job.id not in refused:
            call(hooks, "after_enqueue", job)
    return refused
