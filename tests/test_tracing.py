"""OpenTelemetry tracing (myrq.contrib.otel), read from the SDK's in-memory span exporter."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from myrq import Job, JobOutcome, JobStatus, Queue, Retry, Worker
from myrq.backends import Broker, MemoryBroker
from myrq.contrib import otel
from myrq.contrib.otel import TracingHooks
from tests import jobs, timejobs

# A job whose result is the span current while it runs. Enqueued by name: the
# worker imports it as tests.test_tracing (pytest imports this file under
# another name), which the suite's allow-list ("tests") lets run.
CURRENT_SPAN_JOB = "tests.test_tracing.current_span_id"


def current_span_id() -> str:
    return format(trace.get_current_span().get_span_context().span_id, "016x")


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
def tracing(provider: TracerProvider) -> TracingHooks:
    return TracingHooks(provider)


def burst(broker: Broker, tracing: TracingHooks, **options: Any) -> Worker:
    worker = Worker(["default"], broker=broker, allow=["tests"], hooks=[tracing], **options)
    worker.work(burst=True)
    return worker


def spans(exporter: InMemorySpanExporter, kind: SpanKind) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.kind is kind]


def hex_ids(span: ReadableSpan) -> tuple[str, str]:
    assert span.context is not None
    return format(span.context.trace_id, "032x"), format(span.context.span_id, "016x")


def _claimed(job: Job[Any], worker: str = "w1") -> Job[Any]:
    """The job as a worker's hooks see it: its record as claimed by ``worker``."""
    fields = {**job.fields, "worker": worker.encode()}
    return Job(job.id, fields, broker=job.broker, serializer=job.serializer)


# -- producer and consumer --------------------------------------------------------------


def test_a_run_links_to_the_enqueue_span_whose_context_the_job_carries(
    broker: Broker, provider: TracerProvider, exporter: InMemorySpanExporter, tracing: TracingHooks
) -> None:
    q = Queue(broker=broker, hooks=[tracing])
    with provider.get_tracer("app").start_as_current_span("request") as request:
        job = q.enqueue(jobs.add, 1, 2)
    worker = burst(broker, tracing)

    (enqueue,) = spans(exporter, SpanKind.PRODUCER)
    assert enqueue.name == "enqueue default"
    assert enqueue.parent is not None  # a child of the request that enqueued it
    assert enqueue.parent.span_id == request.get_span_context().span_id
    trace_id, span_id = hex_ids(enqueue)
    stored = Job.fetch(job.id, broker=broker).meta["otel"]
    version, stored_trace, stored_span, flags = stored["traceparent"].split("-")  # W3C
    assert (version, stored_trace, stored_span) == ("00", trace_id, span_id)
    assert int(flags, 16) & 1  # sampled
    assert dict(enqueue.attributes or {}) == {
        "messaging.system": "myrq",
        "messaging.operation.type": "publish",
        "messaging.operation.name": "enqueue",
        "messaging.destination.name": "default",
        "messaging.message.id": job.id,
        "myrq.job.function": "tests.jobs.add",
    }

    (run,) = spans(exporter, SpanKind.CONSUMER)
    assert run.name == "process default"
    assert run.parent is None  # a trace of its own ...
    assert run.context is not None and run.context.trace_id != int(trace_id, 16)
    assert [link.context.span_id for link in run.links] == [int(span_id, 16)]  # ... linked
    assert run.links[0].context.trace_id == int(trace_id, 16)
    assert dict(run.attributes or {}) == {
        "messaging.system": "myrq",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "default",
        "messaging.message.id": job.id,
        "messaging.client.id": worker.name,
        "myrq.job.function": "tests.jobs.add",
        "myrq.job.attempt": 1,
        "myrq.job.outcome": "finished",
        "myrq.job.will_retry": False,
    }
    assert run.status.status_code is StatusCode.UNSET
    assert enqueue.end_time is not None and run.start_time is not None
    assert enqueue.end_time <= run.start_time


def test_as_child_makes_each_run_a_child_of_the_enqueue(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    broker = MemoryBroker()
    tracing = TracingHooks(provider, as_child=True)
    Queue(broker=broker, hooks=[tracing]).enqueue(jobs.add, 1, 2)
    burst(broker, tracing)
    (enqueue,) = spans(exporter, SpanKind.PRODUCER)
    (run,) = spans(exporter, SpanKind.CONSUMER)
    assert enqueue.context is not None and run.context is not None and run.parent is not None
    assert run.parent.span_id == enqueue.context.span_id
    assert run.context.trace_id == enqueue.context.trace_id
    assert not run.links


def test_each_run_of_a_retried_job_links_to_its_one_enqueue(
    exporter: InMemorySpanExporter, tracing: TracingHooks, tmp_path: Path
) -> None:
    broker = MemoryBroker()
    q = Queue(broker=broker, hooks=[tracing])
    q.enqueue(timejobs.flaky, str(tmp_path / "m"), 1, retry=Retry(max=1, interval=0))
    burst(broker, tracing)
    (enqueue,) = spans(exporter, SpanKind.PRODUCER)
    first, second = spans(exporter, SpanKind.CONSUMER)
    assert enqueue.context is not None
    for run in (first, second):
        assert [link.context.span_id for link in run.links] == [enqueue.context.span_id]
    attrs = [dict(run.attributes or {}) for run in (first, second)]
    assert [(a["myrq.job.attempt"], a["myrq.job.outcome"], a["myrq.job.will_retry"]) for a in attrs] \
        == [(1, "failed", True), (2, "finished", False)]  # fmt: skip
    assert first.status.status_code is StatusCode.ERROR
    assert second.status.status_code is StatusCode.UNSET


# -- errors --------------------------------------------------------------------------------


def test_a_failed_run_has_an_error_status_and_its_live_exception(
    exporter: InMemorySpanExporter, tracing: TracingHooks
) -> None:
    broker = MemoryBroker()
    Queue(broker=broker, hooks=[tracing]).enqueue(jobs.fail, "card declined")
    burst(broker, tracing)
    (run,) = spans(exporter, SpanKind.CONSUMER)
    assert run.status.status_code is StatusCode.ERROR
    assert run.status.description == "ValueError: card declined"
    attrs = dict(run.attributes or {})
    assert attrs["error.type"] == "ValueError" and attrs["myrq.job.outcome"] == "failed"
    (event,) = run.events
    assert event.name == "exception"
    details = dict(event.attributes or {})
    assert details["exception.type"] == "ValueError"
    assert details["exception.message"] == "card declined"
    assert "raise ValueError(message)" in str(details["exception.stacktrace"])


def test_a_timed_out_run_is_an_error(exporter: InMemorySpanExporter, tracing: TracingHooks) -> None:
    broker = MemoryBroker()
    Queue(broker=broker, hooks=[tracing]).enqueue(jobs.nap, 5, job_timeout=0.2)
    burst(broker, tracing)
    (run,) = spans(exporter, SpanKind.CONSUMER)
    attrs = dict(run.attributes or {})
    assert attrs["myrq.job.outcome"] == "timeout"
    assert attrs["error.type"] == "myrq.exceptions.JobTimeout"
    assert run.status.status_code is StatusCode.ERROR
    assert [e.name for e in run.events] == ["exception"]


def test_an_isolated_run_records_the_error_its_child_reported(
    exporter: InMemorySpanExporter, tracing: TracingHooks
) -> None:
    broker = MemoryBroker()
    Queue(broker=broker, hooks=[tracing]).enqueue(jobs.fail, "in a child")
    burst(broker, tracing, isolate=True)
    (run,) = spans(exporter, SpanKind.CONSUMER)
    assert run.status.status_code is StatusCode.ERROR
    (event,) = run.events
    details = dict(event.attributes or {})
    assert event.name == "exception" and details["exception.message"] == "in a child"
    assert "ValueError" in str(details["exception.type"])
    assert "raise ValueError(message)" in str(details["exception.stacktrace"])


def test_a_run_refused_before_it_started_gets_a_span_from_what_was_trusted(
    exporter: InMemorySpanExporter, tracing: TracingHooks
) -> None:
    broker = MemoryBroker()
    job = Queue(broker=broker, hooks=[tracing]).enqueue(jobs.echo, "x" * 200)
    burst(broker, tracing, max_payload_size=100)  # refused: nothing of it is decoded
    (run,) = spans(exporter, SpanKind.CONSUMER)
    attrs = dict(run.attributes or {})
    assert attrs["messaging.message.id"] == job.id
    assert attrs["error.type"] == "PayloadTooLargeError"
    assert "myrq.job.function" not in attrs and not run.links  # payload and meta not read
    assert run.status.status_code is StatusCode.ERROR


# -- context -------------------------------------------------------------------------------


def test_spans_the_job_makes_are_children_of_its_run_and_the_context_is_restored(
    exporter: InMemorySpanExporter, tracing: TracingHooks
) -> None:
    broker = MemoryBroker()
    job = Queue(broker=broker).enqueue(CURRENT_SPAN_JOB)
    burst(broker, tracing)
    (run,) = spans(exporter, SpanKind.CONSUMER)
    assert Job.fetch(job.id, broker=broker).result == hex_ids(run)[1]
    assert trace.get_current_span() is trace.INVALID_SPAN  # the worker's thread as before


def test_activate_false_leaves_the_current_span_alone(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    broker = MemoryBroker()
    job = Queue(broker=broker).enqueue(CURRENT_SPAN_JOB)
    burst(broker, TracingHooks(provider, activate=False))
    assert Job.fetch(job.id, broker=broker).result == "0" * 16
    assert len(spans(exporter, SpanKind.CONSUMER)) == 1


def test_a_creation_context_of_the_jobs_own_is_kept_and_linked(
    exporter: InMemorySpanExporter, tracing: TracingHooks
) -> None:
    broker = MemoryBroker()
    own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    job = Queue(broker=broker, hooks=[tracing]).enqueue(
        jobs.add, 1, 2, meta={"otel": {"traceparent": own}}
    )
    burst(broker, tracing)
    assert Job.fetch(job.id, broker=broker).meta["otel"] == {"traceparent": own}
    (enqueue,) = spans(exporter, SpanKind.PRODUCER)
    (run,) = spans(exporter, SpanKind.CONSUMER)
    for span in (enqueue, run):
        assert [format(link.context.span_id, "016x") for link in span.links] == ["b7ad6b7169203331"]


def test_a_malformed_carrier_is_ignored(
    exporter: InMemorySpanExporter, tracing: TracingHooks
) -> None:
    broker = MemoryBroker()
    Queue(broker=broker).enqueue(jobs.add, 1, 2, meta={"otel": ["not", "a", "mapping"]})
    Queue(broker=broker).enqueue(jobs.add, 1, 2, meta={"otel": {"traceparent": "garbage"}})
    burst(broker, tracing)
    runs = spans(exporter, SpanKind.CONSUMER)
    assert len(runs) == 2 and all(not run.links for run in runs)
    assert all(dict(r.attributes or {})["myrq.job.outcome"] == "finished" for r in runs)


def test_without_a_tracing_sdk_nothing_is_stored_in_meta() -> None:
    broker = MemoryBroker()
    tracing = TracingHooks(trace.NoOpTracerProvider())
    job = Queue(broker=broker, hooks=[tracing]).enqueue(jobs.add, 1, 2)
    assert "otel" not in Job.fetch(job.id, broker=broker).meta
    burst(broker, tracing)
    assert job.get_status() is JobStatus.FINISHED


def test_a_worker_that_stops_mid_run_ends_the_runs_span_interrupted(
    exporter: InMemorySpanExporter, tracing: TracingHooks
) -> None:
    # A shutdown that cannot wait puts the job back without after_job: the span
    # is ended when the worker stops.
    broker = MemoryBroker()
    job = Queue(broker=broker).enqueue(jobs.add, 1, 2)
    tracing.before_job(_claimed(job))
    assert trace.get_current_span().get_span_context().is_valid  # made current
    tracing.worker_stopped(SimpleNamespace(name="w2"))  # type: ignore[arg-type]
    assert not spans(exporter, SpanKind.CONSUMER)  # another worker's stop: not ours
    tracing.worker_stopped(SimpleNamespace(name="w1"))  # type: ignore[arg-type]
    (run,) = spans(exporter, SpanKind.CONSUMER)
    assert dict(run.attributes or {})["myrq.job.outcome"] == "interrupted"
    assert run.status.status_code is StatusCode.ERROR
    assert trace.get_current_span() is trace.INVALID_SPAN


def _current_job_id() -> object:
    return getattr(trace.get_current_span(), "attributes", {}).get("messaging.message.id")


def test_runs_that_overlap_in_one_thread_restore_the_context_in_any_order(
    exporter: InMemorySpanExporter, tracing: TracingHooks
) -> None:
    # A worker that runs several jobs at once calls before_job and after_job
    # for each in its own thread, interleaved.
    q = Queue(broker=MemoryBroker())
    a, b, c = (_claimed(q.enqueue(jobs.add, i, i)) for i in range(3))
    ok = JobOutcome(JobStatus.FINISHED, None, None, 0.01, False)
    tracing.before_job(a)
    tracing.before_job(b)
    assert _current_job_id() == b.id
    tracing.after_job(a, ok)  # a ends under b: b stays current
    assert _current_job_id() == b.id
    tracing.before_job(c)
    tracing.after_job(b, ok)
    assert _current_job_id() == c.id
    tracing.after_job(c, ok)  # c, then b and a below it, undone
    assert trace.get_current_span() is trace.INVALID_SPAN
    assert len(spans(exporter, SpanKind.CONSUMER)) == 3


# -- packaging -----------------------------------------------------------------------------


def test_importing_the_module_without_opentelemetry_names_the_extra() -> None:
    code = "import sys; sys.modules['opentelemetry'] = None; import myrq.contrib.otel"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert "myrq.contrib.otel needs opentelemetry-api: pip install 'myrq[otel]'" in done.stderr


def test_public_names() -> None:
    assert set(otel.__all__) == {"META_KEY", "TracingHooks"}
