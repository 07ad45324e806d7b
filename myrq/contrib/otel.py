"""OpenTelemetry tracing for myrq, built on :mod:`myrq.hooks` (``pip install 'myrq[otel]'``).

Only ``opentelemetry-api`` is needed at run time: the SDK (or distro) you set
up decides what is sampled and where spans go. The model follows OTel's
messaging semantic conventions (a job is a message, its queue the destination):

- **Enqueue**: a ``PRODUCER`` span ``enqueue <queue>``, a child of the current
  span (say, the web request), from :meth:`~myrq.Hooks.before_enqueue` to
  :meth:`~myrq.Hooks.after_enqueue`. Its context is injected, as W3C Trace
  Context (``traceparent``, ``tracestate``), into ``job.meta["otel"]``, which
  the queue stores with the job: the job's *creation context*. A job whose
  meta already holds that key keeps it (a creation context of your own); the
  span then links to it.
- **Each run**: a ``CONSUMER`` span ``process <queue>``, from
  :meth:`~myrq.Hooks.before_job` to :meth:`~myrq.Hooks.after_job`, in the
  worker. By default it starts a trace of its own with a *link* to the
  creation context, as the conventions say a process span should; with
  ``as_child=True`` it is a child of the enqueue's span instead (one trace).
  While the job runs in the worker's process the span is current, so spans
  the job makes are its children.

A link rather than a parent because a job is not part of the request that
enqueued it: it may run minutes or days later, several times (retries,
``requeue``), after that request's trace has ended. As children, every run
would stretch the request's trace over that time, and be sampled with it.

Attributes: ``messaging.system`` (``myrq``), ``messaging.operation.type``
(``publish``, ``process``), ``messaging.operation.name`` (``enqueue``,
``process``), ``messaging.destination.name`` (the queue),
``messaging.message.id`` (the job id), ``messaging.client.id`` (the worker's
name), ``myrq.job.function``, ``myrq.job.attempt`` (1 for the first run, 2
for the first retry, ...), ``myrq.job.outcome`` (``finished``, ``failed``,
``timeout``, ``stopped``), ``myrq.job.will_retry``; for a failed or timed-out
run ``error.type``, an ERROR status and an ``exception`` event (the live
exception in process; its recorded type, message and traceback when the job
ran isolated in a child process). A stopped run is not an error.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.context import Context
    from opentelemetry.propagators.textmap import TextMapPropagator
    from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "myrq.contrib.otel needs opentelemetry-api: pip install 'myrq[otel]'"
    ) from exc

from myrq import __version__
from myrq.hooks import Hooks, JobOutcome
from myrq.status import JobStatus

if TYPE_CHECKING:
    from contextvars import Token

    from myrq.job import Job
    from myrq.worker import Worker

__all__ = ["META_KEY", "TracingHooks"]

#: The key of ``job.meta`` that carries the creation context.
META_KEY = "otel"
#: Spans started and not yet ended that are remembered per kind (an enqueue
#: that raised, or a run cut short by the worker's crash, never ends; beyond
#: this, the oldest are forgotten).
_MAX_OPEN = 10_000
_FAILED = (JobStatus.FAILED, JobStatus.TIMEOUT)


@dataclass
class _Run:
    """A consumer span between before_job and after_job."""

    span: Span
    token: Token[Context] | None  # the span made current, to undo in after_job
    thread: int
    worker: str | None


class TracingHooks(Hooks):
    """A span per enqueue and per run, the run linked to the enqueue; see the module docstring.

    Use one instance for queues and workers (``myrq.hooks.install(TracingHooks())``).

    Args:
        tracer_provider: where spans go (default: the global one).
        as_child: make each run a child of the enqueue's span instead of
            linking to it.
        propagator: how the context is written into ``job.meta`` (default:
            W3C Trace Context only, so no baggage is stored with jobs; pass
            ``opentelemetry.propagate.get_global_textmap()`` to follow
            ``OTEL_PROPAGATORS``).
        activate: make the run's span current while the job runs.
        meta_key: the key of ``job.meta`` that carries the context.
    """

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        *,
        as_child: bool = False,
        propagator: TextMapPropagator | None = None,
        activate: bool = True,
        meta_key: str = META_KEY,
    ) -> None:
        self.tracer = trace.get_tracer("myrq", __version__, tracer_provider)
        self.as_child = as_child
        self.propagator = propagator if propagator is not None else TraceContextTextMapPropagator()
        self.activate = activate
        self.meta_key = meta_key
        self._lock = threading.Lock()
        self._enqueuing: dict[str, Span] = {}  # job id -> producer span
        self._running: dict[str, _Run] = {}  # job id -> consumer span
        self._buried: list[_Run] = []  # ended, but another run was made current after them

    # -- producers -------------------------------------------------------------------

    def before_enqueue(self, job: Job[Any]) -> None:
        queue = job.origin
        meta = job.meta
        own = self._creation_context(meta.get(self.meta_key))
        span = self.tracer.start_span(
            f"enqueue {queue}",
            kind=SpanKind.PRODUCER,
            links=[Link(own)] if own is not None else None,
            attributes={
                **_messaging("publish", "enqueue", queue, job.id),
                "myrq.job.function": job.func_name,
            },
        )
        if self.meta_key not in meta:
            carrier: dict[str, str] = {}
            self.propagator.inject(carrier, context=trace.set_span_in_context(span))
            if carrier:  # empty when nothing is traced at all
                meta[self.meta_key] = carrier
        with self._lock:
            _remember(self._enqueuing, job.id, span)

    def after_enqueue(self, job: Job[Any]) -> None:
        with self._lock:
            span = self._enqueuing.pop(job.id, None)
        if span is not None:
            span.end()

    # -- workers ---------------------------------------------------------------------

    def before_job(self, job: Job[Any]) -> None:
        queue = job.origin
        creation = self._creation_context(job.meta.get(self.meta_key))
        parent = Context()  # never the worker's ambient context: a run is no part of it
        links = None
        if creation is not None and self.as_child:
            parent = trace.set_span_in_context(trace.NonRecordingSpan(creation), parent)
        elif creation is not None:
            links = [Link(creation)]
        span = self.tracer.start_span(
            f"process {queue}",
            context=parent,
            kind=SpanKind.CONSUMER,
            links=links,
            attributes=self._run_attributes(job, queue, job.func_name, job.tries + 1),
        )
        token = otel_context.attach(trace.set_span_in_context(span)) if self.activate else None
        run = _Run(span, token, threading.get_ident(), job.worker_name)
        with self._lock:
            left = self._running.pop(job.id, None)
            _remember(self._running, job.id, run)
        if left is not None:  # the same job again before its last run ended here
            self._interrupt(left, "another run of the job started")

    def after_job(self, job: Job[Any], outcome: JobOutcome) -> None:
        with self._lock:
            run = self._running.pop(job.id, None)
        if run is None:
            # Refused before it ran (payload too large, bad signature, undecodable,
            # stopped before it started): no before_job. Its payload and meta are
            # not read here, as the worker did not trust or decode them.
            queue = job.origin
            span = self.tracer.start_span(
                f"process {queue}",
                context=Context(),
                kind=SpanKind.CONSUMER,
                attributes=self._run_attributes(job, queue, None, None),
            )
            run = _Run(span, None, threading.get_ident(), job.worker_name)
        _record(run.span, outcome)
        run.span.end()
        self._deactivate(run)

    def worker_stopped(self, worker: Worker) -> None:
        """End the spans of runs this worker cut short (a shutdown that could not wait)."""
        with self._lock:
            ids = [i for i, run in self._running.items() if run.worker == worker.name]
            cut = [self._running.pop(i) for i in ids]
        for run in reversed(cut):
            self._interrupt(run, "the worker stopped during the run; the job was put back")

    # -- the current span ------------------------------------------------------------

    def _interrupt(self, run: _Run, why: str) -> None:
        run.span.set_attribute("myrq.job.outcome", "interrupted")
        run.span.set_status(Status(StatusCode.ERROR, why))
        run.span.end()
        self._deactivate(run)

    def _deactivate(self, run: _Run) -> None:
        """Undo making an ended run's span current, in the thread that did it.

        Runs that overlap in one thread (a worker that runs several jobs at
        once) end in any order: one that ends while another run made current
        after it is still current waits, and is undone when that one is. What
        a job left attached on top of its own span is dropped with it.
        """
        if run.token is None or run.thread != threading.get_ident():
            return
        with self._lock:
            current = trace.get_current_span()
            if current is not run.span and any(
                r.span is current and r.thread == run.thread for r in self._running.values()
            ):
                self._buried.append(run)
                return
        otel_context.detach(run.token)
        while True:  # runs that ended under this one are on top now
            with self._lock:
                current = trace.get_current_span()
                below = next((r for r in self._buried if r.span is current), None)
                if below is None:
                    return
                self._buried.remove(below)
            if below.token is not None:
                otel_context.detach(below.token)

    # -- parts -----------------------------------------------------------------------

    def _creation_context(self, carrier: Any) -> SpanContext | None:
        """The span context carried in a job's meta, if it holds a valid one."""
        if not isinstance(carrier, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in carrier.items()
        ):
            return None
        found = trace.get_current_span(self.propagator.extract(carrier, Context()))
        span_context = found.get_span_context()
        return span_context if span_context.is_valid else None

    @staticmethod
    def _run_attributes(
        job: Job[Any], queue: str, func: str | None, attempt: int | None
    ) -> dict[str, Any]:
        attributes: dict[str, Any] = _messaging("process", "process", queue, job.id)
        if job.worker_name is not None:
            attributes["messaging.client.id"] = job.worker_name
        if func is not None:
            attributes["myrq.job.function"] = func
        if attempt is not None:
            attributes["myrq.job.attempt"] = attempt
        return attributes


def _messaging(kind: str, name: str, queue: str, job_id: str) -> dict[str, Any]:
    return {
        "messaging.system": "myrq",
        "messaging.operation.type": kind,
        "messaging.operation.name": name,
        "messaging.destination.name": queue,
        "messaging.message.id": job_id,
    }


def _remember(open_spans: dict[str, Any], job_id: str, value: Any) -> None:
    open_spans[job_id] = value
    if len(open_spans) > _MAX_OPEN:
        del open_spans[next(iter(open_spans))]


def _record(span: Span, outcome: JobOutcome) -> None:
    """The run's outcome on its span: attributes, and for a failure its status and exception."""
    span.set_attribute("myrq.job.outcome", outcome.status.value)
    span.set_attribute("myrq.job.will_retry", outcome.will_retry)
    if outcome.status not in _FAILED:
        return
    error = outcome.error
    live = outcome.exception
    kind = error.type if error is not None else type(live).__qualname__
    message = error.message if error is not None else str(live)
    span.set_attribute("error.type", kind)
    if live is not None:  # its stack trace given, as older SDKs format the handled one
        trace_text = "".join(traceback.format_exception(live))
        span.record_exception(live, {"exception.stacktrace": trace_text})
    elif error is not None:  # ran in a child process: what it recorded
        span.add_event(
            "exception",
            {
                "exception.type": error.type,
                "exception.message": error.message,
                "exception.stacktrace": error.traceback,
            },
        )
    span.set_status(Status(StatusCode.ERROR, f"{kind}: {message}"))
