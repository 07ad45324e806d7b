"""The database side: enqueues held until ``transaction.on_commit``, connections around jobs.

**Enqueue on commit.** :func:`hold_until_commit` is a holder
(:func:`myrq.transaction.add_holder`): an enqueue made while the database
connection is inside ``transaction.atomic()`` joins a
:class:`~myrq.transaction.PendingJobs` whose ``commit`` is registered with
``transaction.on_commit``. Django runs it after the outermost commit, drops it
on rollback, and drops it too when the savepoint it was registered in rolls
back. Consecutive enqueues at the same savepoint depth share one batch (one
callback, one round trip to the broker); an enqueue after a savepoint was
left, or after another ``on_commit`` callback was registered, starts a new
one, so a batch never outlives its savepoint and jobs go out in the order
they and your other callbacks were registered. Under ``TestCase``, which
never commits, run them with ``captureOnCommitCallbacks(execute=True)``.

Telling whether the last batch may still take a job reads two attributes that
Django keeps on the connection without documenting them (``savepoint_ids``,
``run_on_commit``); without them every enqueue gets its own batch, which is
correct, only not batched.

**Connections in the worker.** A worker is a long-lived process that never
sees a request, so Django's ``request_started``/``request_finished`` clean-up
never runs there. :class:`DjangoConnections` does the same around each job:
it forgets the queries logged under ``DEBUG`` and closes the connections that
are broken or older than ``CONN_MAX_AGE`` before and after each job. Jobs run
in the worker's own process (no fork per job, unlike RQ's default worker), so
a connection is never shared by two processes. With ``--isolate`` each job
runs in a forked child: then every connection is closed before each job, so
that the child opens its own instead of writing to its parent's socket.
"""

from __future__ import annotations

from typing import Any

from django.db import (
    DEFAULT_DB_ALIAS,
    close_old_connections,
    connections,
    reset_queries,
    transaction,
)

from myrq.hooks import Hooks, JobOutcome
from myrq.job import Job
from myrq.queue import Queue
from myrq.transaction import PendingJobs

_LAST = "_myrq_commit_batch"  # the connection attribute holding the last batch


class CommitBatch(PendingJobs):
    """Jobs held for one ``on_commit`` callback, at one savepoint depth."""

    def __init__(self, savepoints: tuple[str, ...], callbacks: object) -> None:
        super().__init__()
        self.savepoints = savepoints
        self.callbacks = callbacks  # the connection's list of on_commit callbacks, when known
        self.callback = self.commit  # one object, so it can be found in that list


def hold_until_commit(queue: Queue) -> PendingJobs | None:
    """The batch an enqueue on ``queue`` joins, or None when it is to be sent now.

    None when ``MYRQ["enqueue_on_commit"]`` is False or the connection is not
    in an atomic block.
    """
    from myrq.contrib.django.conf import myrq_settings  # noqa: PLC0415 - read at each call

    values = myrq_settings()
    if not values.get("enqueue_on_commit", True):
        return None
    using = values.get("database", DEFAULT_DB_ALIAS)
    connection = transaction.get_connection(using)
    if not connection.in_atomic_block:
        return None
    savepoints = tuple(getattr(connection, "savepoint_ids", ()) or ())
    callbacks = getattr(connection, "run_on_commit", None)
    last: CommitBatch | None = getattr(connection, _LAST, None)
    if (
        last is not None
        and not last.closed
        and callbacks is not None
        and last.callbacks is callbacks
        and last.savepoints == savepoints
        and _last_callback(callbacks) is last.callback
    ):
        return last
    batch = CommitBatch(savepoints, callbacks)
    transaction.on_commit(batch.callback, using=using)
    setattr(connection, _LAST, batch)
    return batch


def _last_callback(callbacks: Any) -> object:
    """The function of the last ``on_commit`` entry, ``(savepoints, func[, robust])``."""
    try:
        return callbacks[-1][1]
    except (IndexError, KeyError, TypeError):
        return None


class DjangoConnections(Hooks):
    """Around each job in a worker, what Django does around each request (see the module doc).

    Args:
        close_all: close every connection before each job (isolated jobs run
            in a forked child, which must not use its parent's connections).
    """

    def __init__(self, *, close_all: bool = False) -> None:
        self.close_all = close_all

    def before_job(self, job: Job[Any]) -> None:
        reset_queries()
        if self.close_all:
            connections.close_all()
        else:
            close_old_connections()

    def after_job(self, job: Job[Any], outcome: JobOutcome) -> None:
        close_old_connections()
