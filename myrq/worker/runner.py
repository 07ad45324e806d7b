"""Running one job: a claimed record in, an outcome out. Knows no broker.

:meth:`Runner.prepare` checks the payload (size, then signature, before
anything is decoded), decodes it and picks the timeout; a payload it refuses
becomes a failed :class:`Outcome` at once. :meth:`Runner.run` resolves the
function through the allow-list and calls it, in this process under the job
alarm or in a forked child (:mod:`myrq.worker.isolation`), and encodes its
return value.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from myrq.backends import Delivery
from myrq.codec import ErrorInfo, decode_payload, safe_str
from myrq.durations import MAX_SECONDS
from myrq.exceptions import FunctionLookupError, JobStopped, JobTimeout, SignatureError
from myrq.registry import AllowList
from myrq.schema import F_PAYLOAD, F_SIGNATURE, F_TIMEOUT, parse_number
from myrq.serializers import Serializer
from myrq.signing import verify
from myrq.status import JobStatus
from myrq.worker.guard import JobGuard
from myrq.worker.isolation import ChildOutcome, run_isolated
from myrq.worker.settings import WorkerSettings
from myrq.worker.shutdown import ShutdownNow
from myrq.worker.stopping import stopped_error

logger = logging.getLogger("myrq.worker")

#: The error type a timed-out job records, in process or isolated.
TIMEOUT_TYPE = f"{JobTimeout.__module__}.{JobTimeout.__qualname__}"
_TIMEOUT_TYPES = (TIMEOUT_TYPE, "builtins.BaseException")


@dataclass
class Outcome:
    """How one run ended: ``result`` when finished, ``error`` otherwise."""

    status: JobStatus
    result: bytes | None = None
    error: ErrorInfo | None = None
    func_name: str = "<refused>"
    elapsed: float = 0.0
    #: False when the record failed its signature check: its TTL fields may be
    #: anyone's, so the worker's own are used.
    trusted: bool = True
    #: The exception, when the job raised in this process (for hooks and callbacks).
    exc: BaseException | None = None


def failure(kind: str, message: str, func_name: str = "<refused>") -> Outcome:
    """A job that cannot run as written: failed, and never worth another try."""
    error = ErrorInfo(kind, message, "", final=True)
    return Outcome(JobStatus.FAILED, error=error, func_name=func_name)


@dataclass(frozen=True)
class Call:
    """A decoded job, ready to run."""

    func_name: str
    args: list[Any]
    kwargs: dict[str, Any] = field(default_factory=dict)
    timeout: float = 0.0
    isolated: bool = False


class Runner:
    """Prepares and runs jobs for one worker.

    The job's own code (its function, or the wait for an isolated child) runs
    through ``guard``: the timeout and a shutdown interrupt it only there,
    never while its outcome is being put together (see :mod:`~myrq.worker.guard`).
    """

    def __init__(
        self,
        settings: WorkerSettings,
        serializer: Serializer,
        allow: AllowList,
        guard: JobGuard,
    ) -> None:
        self.settings = settings
        self.serializer = serializer
        self.allow = allow
        self.guard = guard
        self._warned_unsigned = False

    def prepare(self, delivery: Delivery) -> Call | Outcome:
        """Check and decode a claimed job; an Outcome when it must not run."""
        fields = delivery.fields or {}
        payload = fields.get(F_PAYLOAD, b"")
        limit = self.settings.max_payload_size
        if limit and len(payload) > limit:
            return failure(
                "PayloadTooLargeError",
                f"payload of {len(payload):,} bytes is above this worker's limit of "
                f"{limit:,} (max_payload_size); it was not decoded",
            )
        if self.settings.secret_keys:
            try:
                verify(self.settings.secret_keys, delivery.job_id, fields)
            except SignatureError as exc:
                refused = failure("SignatureError", str(exc))
                refused.trusted = False
                return refused
        elif F_SIGNATURE in fields and not self._warned_unsigned:
            self._warned_unsigned = True
            logger.warning(
                "job %s is signed, but this worker has no secret key, so it checks no "
                "signature: anyone who can write to the broker can run allowed functions "
                "here. Set MYRQ_SECRET_KEY on the workers too",
                delivery.job_id,
            )
        try:
            func_name, args, kwargs = decode_payload(self.serializer, payload)
        except Exception as exc:  # DeserializationError, or a custom serializer's own error
            return failure("InvalidPayload", f"payload could not be decoded: {safe_str(exc)}")
        timeout = parse_number(fields.get(F_TIMEOUT))
        if timeout is None or not timeout > 0:  # absent or garbled: the default, not "none"
            timeout = self.settings.default_timeout
        timeout = min(timeout, MAX_SECONDS)  # a foreign record's 1e300 must not overflow a timer
        return Call(func_name, args, kwargs, timeout, self.settings.isolates(delivery.queue))

    def run(self, call: Call) -> Outcome:
        """Run a prepared call. Raises only :class:`ShutdownNow`, the worker's own signal."""
        if call.isolated:
            return self._run_isolated(call)
        started = time.monotonic()
        # SIGALRM reaches only the main thread: elsewhere a job has no timeout.
        in_main = threading.current_thread() is threading.main_thread()
        guard = self.guard
        guard.pending, guard.running = None, True  # see JobGuard.call
        try:
            result = guard.call(
                functools.partial(self.allow.resolve, call.func_name),
                call.args,
                call.kwargs,
                call.timeout if in_main else None,
            )
        except FunctionLookupError as exc:  # FunctionNotAllowed too: nothing was imported
            return failure(type(exc).__name__, str(exc), call.func_name)
        except JobTimeout as exc:
            message = f"job exceeded its timeout of {call.timeout:g}s and was stopped"
            return Outcome(
                JobStatus.TIMEOUT,
                error=_error_from_current(message),
                func_name=call.func_name,
                elapsed=time.monotonic() - started,
                exc=exc,
            )
        except JobStopped as exc:
            return stopped(call.func_name, time.monotonic() - started, exc)
        except ShutdownNow:
            raise
        except BaseException as exc:  # a job's SystemExit/KeyboardInterrupt fails the job only
            return self._failed(call, exc, started)
        return self._finished(call, result, time.monotonic() - started)

    def _finished(self, call: Call, result: Any, elapsed: float) -> Outcome:
        """A job that returned: its value encoded, or a failure if it cannot be."""
        try:
            encoded = self.serializer.dumps(result)
        except Exception as exc:  # SerializationError, or a custom serializer's own error
            outcome = failure(
                "ResultSerializationError",
                f"the job returned a {type(result).__qualname__} that the "
                f"{self.serializer.name or type(self.serializer).__name__} serializer "
                f"cannot store: {safe_str(exc)}",
                call.func_name,
            )
            outcome.elapsed = elapsed
            return outcome
        return Outcome(JobStatus.FINISHED, encoded, func_name=call.func_name, elapsed=elapsed)

    @staticmethod
    def _failed(call: Call, exc: BaseException, started: float) -> Outcome:
        return Outcome(
            JobStatus.FAILED,
            error=ErrorInfo.from_exception(exc),
            func_name=call.func_name,
            elapsed=time.monotonic() - started,
            exc=exc,
        )

    def _run_isolated(self, call: Call) -> Outcome:
        started = time.monotonic()
        guard = self.guard
        guard.pending, guard.running = None, True
        # A shutdown (or a stop) while the child runs kills and reaps it on its
        # way out; the child's own timeout is the parent's deadline, not the alarm.
        try:
            child: ChildOutcome = guard.call(
                lambda: run_isolated,
                [
                    functools.partial(self.allow.resolve, call.func_name),
                    call.args,
                    call.kwargs,
                    self.serializer,
                    call.timeout,
                    self.settings.job_memory_limit,
                ],
                {},
                None,
            )
        except JobStopped as exc:
            return stopped(call.func_name, time.monotonic() - started, exc)
        elapsed = time.monotonic() - started
        if child.timed_out:
            message = f"job exceeded its timeout of {call.timeout:g}s; its process was killed"
            error = ErrorInfo(TIMEOUT_TYPE, message, "", types=_TIMEOUT_TYPES)
            return Outcome(
                JobStatus.TIMEOUT, error=error, func_name=call.func_name, elapsed=elapsed
            )
        if child.error is not None:
            return Outcome(
                JobStatus.FAILED, error=child.error, func_name=call.func_name, elapsed=elapsed
            )
        return Outcome(
            JobStatus.FINISHED, result=child.result, func_name=call.func_name, elapsed=elapsed
        )


def stopped(func_name: str, elapsed: float, exc: BaseException | None = None) -> Outcome:
    """A job stopped on request (``job.stop()``): it ran until then, or not at all."""
    error = stopped_error(ran=exc is not None)
    return Outcome(JobStatus.STOPPED, error=error, func_name=func_name, elapsed=elapsed, exc=exc)


def _error_from_current(message: str) -> ErrorInfo:
    exc = sys.exc_info()[1]
    if exc is None:
        return ErrorInfo("UnknownError", message, "")
    return ErrorInfo.from_exception(exc, message)
