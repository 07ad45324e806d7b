"""Around a job: the worker's hooks, exception handlers and the job's callbacks.

Hooks (:class:`~myrq.hooks.Hooks`) see each job before it runs and its
outcome after, before the outcome is recorded. Exception handlers (RQ's) see
each failed or timed-out run before its retry is decided: one that raises
:class:`~myrq.NoRetry` cancels the remaining retries. The job's callbacks
(``on_success``, ``on_failure``, ``on_stopped``) run once its final outcome is
recorded; a callback's error never changes that outcome: it is logged and
written to the record (field ``callback_error``), which a late write never
re-creates. Callbacks are resolved through the worker's allow-list, as job
functions are, and run in the worker's process under their own timeout.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from myrq import hooks as lifecycle
from myrq.backends import Broker, Delivery
from myrq.callbacks import Callback
from myrq.codec import ErrorInfo
from myrq.exceptions import BrokerError, FunctionLookupError, JobTimeout
from myrq.hooks import ExceptionHandler, Hooks, JobOutcome
from myrq.job import Job
from myrq.registry import AllowList
from myrq.retry import NoRetry
from myrq.schema import F_CALLBACK_ERROR, F_ON_FAILURE, F_ON_STOPPED, F_ON_SUCCESS
from myrq.serializers import Serializer
from myrq.status import JobStatus
from myrq.worker.guard import JobGuard
from myrq.worker.runner import Outcome
from myrq.worker.shutdown import ShutdownNow
from myrq.worker.threads import thread_timeout

if TYPE_CHECKING:
    from myrq.worker.outbox import Done

logger = logging.getLogger("myrq.worker")

_CALLBACK_FIELDS = frozenset((F_ON_SUCCESS, F_ON_FAILURE, F_ON_STOPPED))
#: Fields of an unverified record a hook may see: none is decoded by the serializer.
_PLAIN_FIELDS = frozenset(
    {"status", "queue", "attempts", "started_at", "worker", "lease", "created_at", "timeout"}
)
_FAILED = (JobStatus.FAILED, JobStatus.TIMEOUT)


class AfterJob:
    """One worker's hooks, exception handlers and callbacks; see the module docstring."""

    def __init__(  # noqa: PLR0917 - the worker's parts
        self,
        broker: Broker,
        serializer: Serializer,
        allow: AllowList,
        guard: JobGuard,
        hooks: Sequence[Hooks],
        exception_handlers: Sequence[ExceptionHandler],
    ) -> None:
        self.broker = broker
        self.serializer = serializer
        self.allow = allow
        self.guard = guard
        self.own_hooks = list(hooks)
        self.hooks = lifecycle.active(self.own_hooks)
        self.exception_handlers = list(exception_handlers)
        self._interrupted = False  # a shutdown cut a callback: skip the others

    def refresh(self) -> None:
        """Pick up hooks installed since (at the start of each run of the worker)."""
        self.hooks = lifecycle.active(self.own_hooks)
        self._interrupted = False

    def job_of(
        self, delivery: Delivery, done: Done | None = None, *, trusted: bool = True
    ) -> Job[Any]:
        """The job as claimed, with the outcome's fields. A record that failed its
        signature check keeps only fields that are never decoded with the serializer
        (so a hook cannot unpickle what a forger wrote)."""
        fields = dict(delivery.fields or {})
        if not trusted:
            fields = {k: v for k, v in fields.items() if k in _PLAIN_FIELDS}
        if done is not None:
            fields.update(done.fields)
        return Job(delivery.job_id, fields, broker=self.broker, serializer=self.serializer)

    # -- hooks ---------------------------------------------------------------------

    def around_worker(self, method: str, worker: Any) -> None:
        lifecycle.call(self.hooks, method, worker)

    def before(self, delivery: Delivery) -> None:
        if self.hooks:
            lifecycle.call(self.hooks, "before_job", self.job_of(delivery))

    def ran(self, delivery: Delivery, outcome: Outcome, done: Done) -> None:
        """Hooks see the outcome (``will_retry`` decided), before it is written."""
        if self.hooks:
            seen = JobOutcome(
                outcome.status, outcome.error, outcome.exc, outcome.elapsed,
                done.retry_delay is not None, outcome.result, outcome.func_name,
            )  # fmt: skip
            job = self.job_of(delivery, done, trusted=outcome.trusted)
            lifecycle.call(self.hooks, "after_job", job, seen)

    # -- exception handlers --------------------------------------------------------

    def failed(self, delivery: Delivery, outcome: Outcome) -> Outcome:
        """RQ's exception handlers, in order; a NoRetry from one makes the failure final."""
        if not self.exception_handlers or outcome.status not in _FAILED or not outcome.trusted:
            return outcome  # a forged record's handlers' job would be the forger's
        job = self.job_of(delivery)
        exc_type, exc_value, tb = exc_info(outcome)
        for handler in self.exception_handlers:
            try:
                if handler(job, exc_type, exc_value, tb) is False:
                    break
            except NoRetry:
                if outcome.error is not None:
                    outcome.error = dataclasses.replace(outcome.error, final=True)
                break
            except Exception:
                logger.exception("exception handler %r raised (ignored)", handler)
        return outcome

    # -- callbacks, once the outcome is written ------------------------------------

    @staticmethod
    def has_callback(delivery: Delivery) -> bool:
        fields = delivery.fields
        return fields is not None and not _CALLBACK_FIELDS.isdisjoint(fields)

    def written(self, items: Sequence[Done]) -> None:
        """Run the callbacks of jobs whose final outcome was just written.

        Never those of a record that failed its signature check: its callback
        fields are the forger's.
        """
        for done in items:
            final = done.written and done.retry_delay is None and done.outcome.trusted
            if final and self.has_callback(done.delivery):
                error = self._callback(done)
                if error is not None:
                    self._record(done.delivery.job_id, error)

    def _callback(self, done: Done) -> ErrorInfo | None:
        delivery, outcome = done.delivery, done.outcome
        fields = delivery.fields or {}
        status = outcome.status
        name = {JobStatus.FINISHED: F_ON_SUCCESS, JobStatus.STOPPED: F_ON_STOPPED}.get(
            status, F_ON_FAILURE
        )
        if status not in (JobStatus.FINISHED, JobStatus.STOPPED, *_FAILED) or name not in fields:
            return None
        job = self._recorded(delivery, done)
        callback = Callback.from_bytes(fields.get(name))
        if callback is None:
            return _callback_error(job, name, "the stored callback cannot be read")
        if self._interrupted:
            return _callback_error(job, name, "not run: the worker was told to stop at once")
        if status is JobStatus.FINISHED:
            args: list[Any] = [job, self.broker, job.result]
        elif status is JobStatus.STOPPED:
            args = [job, self.broker]
        else:
            args = [job, self.broker, *exc_info(outcome)]
        return self._call(job, name, callback, args)

    def _recorded(self, delivery: Delivery, done: Done) -> Job[Any]:
        """The job as recorded now (the meta the job saved, the outcome written)."""
        try:
            fields = self.broker.get(delivery.job_id)
        except BrokerError:
            fields = None
        if fields is None:  # not kept (result_ttl 0), or unreadable: as the worker knows it
            return self.job_of(delivery, done)
        return Job(delivery.job_id, fields, broker=self.broker, serializer=self.serializer)

    def _call(
        self, job: Job[Any], name: str, callback: Callback, args: list[Any]
    ) -> ErrorInfo | None:
        try:
            self._run(callback, args)
        except ShutdownNow:
            self._interrupted = True
            return _callback_error(job, name, "interrupted: the worker was told to stop at once")
        except JobTimeout:
            return _callback_error(
                job, name, f"{callback.func} ran past its timeout of {callback.timeout:g}s"
            )
        except FunctionLookupError as exc:
            return _callback_error(job, name, str(exc))
        except BaseException as exc:  # a callback's SystemExit must not end the worker
            logger.exception("job %s: %s callback %s raised", job.id, name, callback.func)
            return ErrorInfo.from_exception(exc)
        return None

    def _run(self, callback: Callback, args: list[Any]) -> None:
        """Call it under its timeout: the alarm in the main thread, else (a concurrent
        worker's broker thread) an exception raised in the thread (see myrq.worker.threads)."""
        if threading.current_thread() is threading.main_thread():
            guard = self.guard
            guard.pending, guard.running = None, True
            guard.call(_resolver(self.allow, callback.func), args, {}, callback.timeout)
            return
        func = self.allow.resolve(callback.func)
        with thread_timeout(callback.timeout, JobTimeout):
            func(*args)

    def _record(self, job_id: str, error: ErrorInfo) -> None:
        try:
            self.broker.set_fields(job_id, {F_CALLBACK_ERROR: error.to_bytes()})
        except BrokerError as exc:
            logger.warning("job %s: could not record its callback's error: %s", job_id, exc)


def _resolver(allow: AllowList, name: str) -> Callable[[], Callable[..., Any]]:
    return lambda: allow.resolve(name)


def exc_info(outcome: Outcome) -> tuple[type[BaseException], BaseException, Any]:
    """``(type, value, traceback)`` of a run that did not finish, live when it ran in process."""
    exc = outcome.exc
    if exc is not None:
        return type(exc), exc, exc.__traceback__
    rebuilt = JobFailure(outcome.error or ErrorInfo("UnknownError", "no error recorded", ""))
    return JobFailure, rebuilt, None


class JobFailure(Exception):
    """A failure known only as recorded (an isolated job's): ``.error`` tells it."""

    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(f"{error.type}: {error.message}")
        self.error = error


def _callback_error(job: Job[Any], name: str, message: str) -> ErrorInfo:
    logger.error("job %s: its %s callback did not run: %s", job.id, name, message)
    return ErrorInfo("CallbackError", message, "")
