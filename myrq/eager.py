"""Eager mode: a queue that runs each job inside ``enqueue``, with a worker's own parts.

``Queue(..., eager=True)`` (or ``MYRQ_EAGER=1``, ``[tool.myrq] eager = true``,
``myrq.configure(eager=True)`` for queues made without an ``eager`` argument)
stores each job as usual, claims it at once and runs it in the calling thread
through :meth:`myrq.Worker.process`: the same checks of the stored payload
(size, then signature), decoding, allow-list, timeout, retry policy, hooks,
exception handlers and callbacks as a worker, and the outcome written to the
broker by the worker's own step. So ``job.result``, ``job.get_status()``,
``job.wait()`` and the registries read as after a worker's run, and a function
outside the allow-list fails its job with ``FunctionNotAllowed`` as a worker
would fail it.

What runs in the call, and what is left:

- The job itself. It is stored at the front of its queue and claimed at once
  (one claim at a time per process), so jobs already waiting on the queue are
  neither run nor overtaken for long: they stay for a worker.
- Its retries without a wait, at once, until it succeeds or its tries are
  spent. A retry with a wait is left ``scheduled`` in the broker, as a worker
  leaves it: sleeping through a backoff inside ``enqueue`` would stall the
  caller for up to the policy's cap, and skipping the wait would change the
  policy. A burst worker (``Worker([...]).work(burst=True)``) runs it when due.
- A job due later (``enqueue_in``, ``enqueue_at``) is stored ``scheduled`` and
  not run, for the same reason.
- A job whose dependencies have not all finished is stored ``deferred``. It
  runs inside the eager run, in this process, that finishes the last of them;
  if a worker finishes them instead, it is that worker's to run.

A run that ends ``failed``, ``timeout`` or ``stopped`` raises
:class:`~myrq.JobFailedError` at the call (``Eager(raise_on_failure=False)``
turns that off), chained to the job's own exception when there is one. A run
that waits for a retry has not ended and raises nothing.

Timeouts are enforced in the main thread only (SIGALRM), as for a worker run
in a thread: an eager job enqueued from another thread runs without a time
limit. Its lease is its timeout plus a minute, since no heartbeat renews it.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from myrq import config
from myrq.backends import Delivery, EnqueueRequest
from myrq.durations import MAX_SECONDS
from myrq.exceptions import ConfigurationError, JobExistsError, JobFailedError, NoSuchJobError
from myrq.hooks import ExceptionHandler, Hooks, JobOutcome, call
from myrq.schema import ENDED, F_CKEY, F_STATUS, F_TIMEOUT, S_PENDING, parse_number
from myrq.status import JobStatus

if TYPE_CHECKING:
    from myrq.job import Job
    from myrq.queue import Queue
    from myrq.worker import Worker

logger = logging.getLogger("myrq.eager")

#: Runs of one job in one call, at most (its retries without a wait included).
MAX_RUNS = 1002
#: Eagerly enqueued jobs remembered while they wait for their dependencies.
MAX_WAITING = 10_000
#: A claim's lease beyond the job's timeout (no heartbeat renews it).
LEASE_MARGIN = 60.0
#: Longest wait, in seconds, for another thread's eager job ahead on the queue to be claimed.
CLAIM_PATIENCE = 5.0
_ENDED_BADLY = (JobStatus.FAILED, JobStatus.TIMEOUT, JobStatus.STOPPED, JobStatus.CANCELED)


@dataclass(frozen=True)
class Eager:
    """How a queue runs its jobs inside ``enqueue``: ``Queue(..., eager=Eager(...))``.

    Args:
        raise_on_failure: raise :class:`~myrq.JobFailedError` at the call when
            the job ends ``failed``, ``timeout`` or ``stopped`` (the default,
            as tests want: a failure is not silent).
        allow: module prefixes whose functions may run, added to the
            configured ones (``MYRQ_ALLOW``), as ``Worker(allow=...)``.
        exception_handlers: RQ-style handlers, as ``Worker(exception_handlers=...)``.
    """

    raise_on_failure: bool = True
    allow: Sequence[str] | str = ()
    exception_handlers: Sequence[ExceptionHandler] = ()

    @classmethod
    def of(cls, value: bool | Eager | None) -> Eager | None:
        """A queue's ``eager`` argument as settings; None: not eager (``MYRQ_EAGER`` when None)."""
        if value is None:
            value = config.eager()
        if isinstance(value, Eager):
            return value
        if value is True:
            return cls()
        if value is False:
            return None
        raise ConfigurationError(f"eager must be True, False or an Eager(...), not {value!r}")


class _Seen(Hooks):
    """The last outcome of each job the eager worker ran (for the live exception)."""

    def __init__(self) -> None:
        self.outcomes: dict[str, tuple[Job[Any], JobOutcome]] = {}

    def after_job(self, job: Job[Any], outcome: JobOutcome) -> None:
        self.outcomes[job.id] = (job, outcome)


_claiming = threading.Lock()  # this process's eager stores and claims, one at a time
_in_flight: set[str] = set()  # eager jobs this process is running (under _claiming)
_waiting_lock = threading.Lock()
#: parent id (or _KEY + concurrency key) -> eager jobs that wait for it
_waiting: dict[str, list[tuple[str, Queue]]] = {}
_KEY = "\x00key:"  # no job id holds a control character: no clash with parent ids
_waiting_count = 0


def enqueue(queue: Queue, jobs: Sequence[Job[Any]], hooks: Sequence[Hooks]) -> None:
    """Store each of ``jobs`` (prepared by ``queue``) and run it now, in order.

    ``hooks`` are told ``after_enqueue`` once a job is stored, before it runs.
    Every job is stored and run before anything is raised.

    Raises:
        JobExistsError: live jobs held some of the ids; those were not stored.
        JobFailedError: a job ended ``failed``, ``timeout`` or ``stopped``
            (unless ``raise_on_failure`` is off); the first of them.
    """
    settings = queue.eager or Eager()
    seen = _Seen()
    refused: list[str] = []
    for job in jobs:
        req = job.request
        assert req is not None  # prepared by the queue
        due_now = req.at is None and req.delay is None
        stored = replace(req, fields=job._fields, front=req.front or due_now)
        worker = _worker(queue, settings, job.timeout, seen)
        try:
            delivery = _claim(queue, job.id, worker, store=stored)
        except JobExistsError:
            refused.append(job.id)
            continue
        try:
            call(hooks, "after_enqueue", job)
            if req.depends_on:
                _remember(queue, job.id, req.depends_on)
            if delivery is not None:
                worker.process(delivery)
            _run(queue, job.id, settings, seen)
        finally:
            with _claiming:
                _in_flight.discard(job.id)
        _reread(job, seen)
    if refused:
        raise JobExistsError(refused)
    if settings.raise_on_failure:
        for job in jobs:
            if job.status in _ENDED_BADLY:
                seen_run = seen.outcomes.get(job.id)
                cause = seen_run[1].exception if seen_run is not None else None
                raise JobFailedError(job, job.error) from cause


def _run(queue: Queue, job_id: str, settings: Eager, seen: _Seen) -> None:
    """Run ``job_id`` while it is due, then the eager jobs its end released, in order:
    its dependents, and the jobs that waited for its concurrency key."""
    todo = [(job_id, queue)]
    while todo:
        current, where = todo.pop(0)
        ended, key = _run_one(where, current, settings, seen)
        if ended:
            todo.extend(_released_by(current))
            if key is not None:
                todo.extend(_released_by(_KEY + key))


def _run_one(queue: Queue, job_id: str, settings: Eager, seen: _Seen) -> tuple[bool, str | None]:
    """Claim and run a pending job, and its retries without a wait; True once it has
    ended, with its concurrency key (None: none, or its record is gone)."""
    with _claiming:
        _in_flight.add(job_id)
    try:
        for _ in range(MAX_RUNS):
            record = queue.broker.get(job_id)
            if record is None:
                return True, None  # ended and not kept (result_ttl=0), or deleted
            raw_key = record.get(F_CKEY)
            key = None if raw_key is None else raw_key.decode("utf-8", "replace")
            if record.get(F_STATUS) != S_PENDING:
                return record.get(F_STATUS) in ENDED, key
            worker = _worker(queue, settings, parse_number(record.get(F_TIMEOUT)), seen)
            delivery = _claim(queue, job_id, worker)
            if delivery is None and key is not None and job_id not in queue.job_ids:
                # Parked by the claim: its key's limit is running. It runs here when an
                # eager run of the key ends, in this thread or another (else a worker).
                logger.info("eager: job %s waits for its concurrency key %r", job_id, key)
                _remember(queue, job_id, [_KEY + key])
                return False, None
            if delivery is None:
                logger.warning(
                    "eager: job %s waits behind other jobs on queue %r (put there by another "
                    "client); it was not run here and is left for a worker",
                    job_id,
                    queue.name,
                )
                return False, None
            worker.process(delivery)
        return False, None
    finally:
        with _claiming:
            _in_flight.discard(job_id)


def _claim(
    queue: Queue, job_id: str, worker: Worker, store: EnqueueRequest | None = None
) -> Delivery | None:
    """Claim ``job_id`` if it is first on its queue (storing it first, when given).

    Storing and claiming are one step for this process's threads. A job of
    another eager thread ahead of it is waited for (that thread claims it
    soon); one that nobody here runs is not: None. Anything else the claim
    took (a due job moved ahead of ours) is given back, uncounted.

    Raises:
        JobExistsError: ``store`` was refused: a live job holds the id.
    """
    broker = queue.broker
    lease = worker.settings.lease_ttl
    deadline = time.monotonic() + CLAIM_PATIENCE
    while True:
        with _claiming:
            if store is not None:
                if broker.enqueue_many([store]):
                    raise JobExistsError(job_id)
                store = None
                _in_flight.add(job_id)
            head = broker.queued_ids(queue.name, 0, 0)
            if head == [job_id]:
                taken = broker.dequeue([queue.name], worker.name, lease, timeout=0, count=1)
                break
            ours_ahead = bool(head) and head[0] in _in_flight
        if not ours_ahead or time.monotonic() > deadline:
            return None
        time.sleep(0.002)
    mine = None
    for delivery in taken:
        if delivery.job_id == job_id:
            mine = delivery if delivery.claimed else None
        elif delivery.claimed:
            broker.release(delivery.job_id, delivery.token or "")
    return mine


def _worker(queue: Queue, settings: Eager, timeout: float | None, seen: _Seen) -> Worker:
    """A worker for one claim of the queue's jobs; its lease outlasts the job's timeout."""
    from myrq.worker import Worker  # noqa: PLC0415 - the worker imports the queue

    lease = min((timeout or queue.default_timeout) + LEASE_MARGIN, MAX_SECONDS)
    return Worker(
        [queue.name],
        broker=queue.broker,
        serializer=queue.serializer,
        name=f"eager.{socket.gethostname()}.{os.getpid()}.{random.getrandbits(32):08x}",
        lease_ttl=lease,
        default_timeout=queue.default_timeout,
        result_ttl=-1 if queue.result_ttl is None else queue.result_ttl,
        failure_ttl=-1 if queue.failure_ttl is None else queue.failure_ttl,
        allow=settings.allow,
        secret_key=queue._secret_key or b"",
        max_payload_size=queue.max_payload_size,
        prefetch=1,
        hooks=[*queue.hooks, seen],
        exception_handlers=settings.exception_handlers,
    )


def _reread(job: Job[Any], seen: _Seen) -> None:
    """The job as stored now; as its last run left it when its record is not kept."""
    try:
        job.refresh()
    except NoSuchJobError:
        last = seen.outcomes.get(job.id)
        if last is not None:
            job._fields = dict(last[0]._fields)


def _remember(queue: Queue, job_id: str, parents: Sequence[str]) -> None:
    """An eager job that waits for ``parents``: run it when an eager run ends the last one."""
    global _waiting_count
    with _waiting_lock:
        if _waiting_count >= MAX_WAITING:
            logger.warning(
                "eager: %d jobs already wait for their dependencies in this process; job %s "
                "is left for a worker when its dependencies finish",
                _waiting_count,
                job_id,
            )
            return
        _waiting_count += 1
        for parent in parents:
            _waiting.setdefault(parent, []).append((job_id, queue))


def _released_by(parent: str) -> list[tuple[str, Queue]]:
    """The eager jobs that waited for ``parent``, now that it ended."""
    global _waiting_count
    with _waiting_lock:
        children = _waiting.pop(parent, [])
        _waiting_count -= len(children)
    return children
