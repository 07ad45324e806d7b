"""Hooks: code of yours that runs around enqueues and jobs (metrics, tracing, error reporting).

Subclass :class:`Hooks`, override what you need, and pass instances as
``Queue(hooks=[...])`` and ``Worker(hooks=[...])``, or :func:`install` them
for every queue and worker of the process (for ``myrq worker``, install them
in a module the worker imports: ``--import myapp.hooks``). Worker methods are called in the
worker's main thread, producer methods in the thread that enqueues. A hook
that raises is logged and changes nothing: not the enqueue, not the job's
outcome, not the other hooks.

RQ's exception handlers carry over as they are: ``Worker(exception_handlers=
[handler])`` calls ``handler(job, exc_type, exc_value, traceback)`` for each
failed or timed-out run, in order, until one returns ``False``; a handler
that raises :class:`~myrq.NoRetry` also cancels the job's remaining retries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from myrq.codec import ErrorInfo
from myrq.status import JobStatus

if TYPE_CHECKING:
    from myrq.job import Job
    from myrq.worker import Worker

logger = logging.getLogger("myrq.hooks")


@dataclass(frozen=True)
class JobOutcome:
    """How one run of a job ended, as :meth:`Hooks.after_job` sees it."""

    status: JobStatus
    #: Why it did not finish (None when it finished).
    error: ErrorInfo | None
    #: The exception itself when the job ran in the worker's process (None when
    #: isolated in a child, or when it finished).
    exception: BaseException | None
    #: Seconds it ran.
    elapsed: float
    #: True when it will run again (a retry); the status is then the run's own.
    will_retry: bool
    #: The return value, encoded by the serializer (None unless finished).
    result: bytes | None = None
    #: The job's function (``"<refused>"`` when it could not be decoded or verified).
    func_name: str = "<refused>"


class Hooks:
    """Called around enqueues and jobs; every method does nothing by default."""

    # -- producers ---------------------------------------------------------------

    def before_enqueue(self, job: Job[Any]) -> None:
        """The job is built and about to be stored. Changes to ``job.meta`` are stored."""

    def after_enqueue(self, job: Job[Any]) -> None:
        """The job was stored."""

    # -- workers -----------------------------------------------------------------

    def worker_started(self, worker: Worker) -> None:
        """The worker is about to take its first job."""

    def worker_stopped(self, worker: Worker) -> None:
        """The worker has stopped taking jobs and written their outcomes."""

    def before_job(self, job: Job[Any]) -> None:
        """The job is about to run (its record as claimed)."""

    def after_job(self, job: Job[Any], outcome: JobOutcome) -> None:
        """The job ran; its outcome is about to be recorded (with others, in one step)."""


#: The former name of :class:`Hooks`, for worker-only hooks.
WorkerHooks = Hooks

#: ``handler(job, exc_type, exc_value, traceback)``; False stops the chain.
ExceptionHandler = Callable[..., Any]

_installed: list[Hooks] = []


def install(*hooks: Hooks) -> None:
    """Use ``hooks`` in every queue and worker of this process (as well as their own)."""
    for hook in hooks:
        if not isinstance(hook, Hooks):
            raise TypeError(f"a hook must be a myrq.Hooks instance, not {hook!r}")
        if hook not in _installed:
            _installed.append(hook)


def uninstall(*hooks: Hooks) -> None:
    """Stop using hooks given to :func:`install` (all of them when none are named)."""
    if not hooks:
        _installed.clear()
    for hook in hooks:
        if hook in _installed:
            _installed.remove(hook)


def active(own: Iterable[Hooks]) -> list[Hooks]:
    """The installed hooks, then ``own``."""
    return [*_installed, *own] if _installed else list(own)


def call(hooks: Iterable[Hooks], method: str, *args: Any) -> None:
    """Call ``method`` of each hook; an exception is logged and changes nothing."""
    for hook in hooks:
        try:
            getattr(hook, method)(*args)
        except Exception:
            logger.exception("hook %r raised in %s (ignored)", hook, method)
