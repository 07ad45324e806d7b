"""Workflow: dependencies, meta and the current job, callbacks, registries, stop, requeue, hooks."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from myrq import (
    Callback,
    Dependency,
    Group,
    Hooks,
    InvalidJobError,
    Job,
    JobFailedError,
    JobOutcome,
    JobStatus,
    NoSuchJobError,
    Queue,
    Retry,
    Worker,
    get_current_job,
)
from myrq.backends import Broker
from tests import timejobs, workflowjobs
from tests.workflowjobs import CALLS


@pytest.fixture(autouse=True)
def _clear_calls() -> Iterator[None]:
    CALLS.clear()
    yield
    CALLS.clear()


def burst(broker: Broker, *queues: str, **options: Any) -> Worker:
    w = Worker(list(queues or ["default"]), broker=broker, allow=["tests"], **options)
    w.work(burst=True)
    return w


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


# -- dependencies ----------------------------------------------------------------------


def test_a_dependent_job_runs_after_its_dependency(broker: Broker, tmp_path: Path) -> None:
    q = Queue(broker=broker)
    order = tmp_path / "order"
    parent = q.enqueue(workflowjobs.append_to, str(order), "parent")
    child = q.enqueue(workflowjobs.append_to, str(order), "child", depends_on=parent)
    grandchild = q.enqueue(workflowjobs.append_to, str(order), "grandchild", depends_on=[child])
    assert child.get_status() is JobStatus.DEFERRED
    assert q.deferred_job_registry.count == 2 and child in q.deferred_job_registry
    assert child.dependency_ids == [parent.id] and child.dependencies()[0].id == parent.id
    burst(broker)
    assert lines(order) == ["parent", "child", "grandchild"]
    assert grandchild.get_status() is JobStatus.FINISHED


def test_a_failed_dependency_cancels_the_chain_unless_failure_is_allowed(
    broker: Broker, tmp_path: Path
) -> None:
    q = Queue(broker=broker)
    order = tmp_path / "order"
    parent = q.enqueue(workflowjobs.boom)
    child = q.enqueue(workflowjobs.append_to, str(order), "child", depends_on=parent)
    cleanup = q.enqueue(
        workflowjobs.append_to,
        str(order),
        "cleanup",
        depends_on=Dependency(jobs=[parent], allow_failure=True),
    )
    burst(broker)
    assert lines(order) == ["cleanup"]
    assert child.get_status() is JobStatus.CANCELED
    with pytest.raises(JobFailedError) as caught:
        child.wait(timeout=1)
    assert caught.value.error is not None and caught.value.error.type == "DependencyFailed"
    assert cleanup.allow_dependency_failures


def test_dependencies_are_given_as_jobs_ids_or_lists(broker: Broker) -> None:
    q = Queue(broker=broker)
    a, b = q.enqueue(workflowjobs.add, 1, 1), q.enqueue(workflowjobs.add, 2, 2)
    both = q.enqueue_call(workflowjobs.add, (3, 3), depends_on=[a, b.id])
    assert both.dependency_ids == [a.id, b.id]
    burst(broker)
    assert both.get_status() is JobStatus.FINISHED


def test_a_missing_dependency_is_refused_and_nothing_is_stored(broker: Broker) -> None:
    q = Queue(broker=broker)
    with pytest.raises(InvalidJobError, match="no-such-job"):
        q.enqueue(workflowjobs.add, 1, 2, depends_on="no-such-job", job_id="orphan")
    assert broker.get("orphan") is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"depends_on": 42}, "depends_on must be"),
        ({"depends_on": []}, "names no job"),
        ({"depends_on": Dependency("x"), "job_id": "x y"}, "invalid job id"),
        ({"meta": ["not", "a", "dict"]}, "meta must be a dict"),
        ({"on_success": 42}, "on_success must be"),
        ({"on_failure": lambda *a: None}, "lambda"),
    ],
)
def test_bad_workflow_options_are_refused_at_enqueue(
    broker: Broker, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidJobError, match=message):
        Queue(broker=broker).enqueue(workflowjobs.add, 1, 2, **options)
    assert broker.queue_names() == []


def test_a_dependent_job_cannot_also_wait_for_a_time(broker: Broker) -> None:
    q = Queue(broker=broker)
    parent = q.enqueue(workflowjobs.add, 1, 1)
    with pytest.raises(InvalidJobError, match="cannot also"):
        q.enqueue_in(5, workflowjobs.add, 1, 2, depends_on=parent)


def test_an_option_name_that_is_also_a_parameter_is_refused(broker: Broker) -> None:
    with pytest.raises(InvalidJobError, match="'meta'"):
        Queue(broker=broker).enqueue(workflowjobs.takes_meta, meta={"a": 1})


# -- meta and the current job ------------------------------------------------------------


def test_a_job_reports_progress_in_its_meta(broker: Broker) -> None:
    q = Queue(broker=broker)
    job = q.enqueue(workflowjobs.report_progress, 3, meta={"owner": "ana"})
    assert job.meta == {"owner": "ana"}
    burst(broker)
    job.refresh()
    assert job.meta == {"owner": "ana", "progress": 3} and job.result == 3


def test_get_current_job_is_the_running_job_and_none_outside(broker: Broker) -> None:
    job = Queue(broker=broker).enqueue(workflowjobs.whoami)
    assert get_current_job() is None
    burst(broker)
    job.refresh()
    assert job.result == job.id
    assert get_current_job() is None


def test_save_meta_of_a_deleted_job_raises_and_recreates_nothing(broker: Broker) -> None:
    job = Queue(broker=broker).enqueue(workflowjobs.add, 1, 2)
    job.delete()
    job.meta["x"] = 1
    with pytest.raises(NoSuchJobError):
        job.save_meta()
    assert broker.get(job.id) is None


# -- callbacks -----------------------------------------------------------------------------


def test_callbacks_run_on_success_and_on_final_failure_only(broker: Broker, tmp_path: Path) -> None:
    q = Queue(broker=broker)
    ok = q.enqueue(workflowjobs.add, 2, 3, on_success=workflowjobs.on_success)
    bad = q.enqueue(workflowjobs.boom, "bad", on_failure="tests.workflowjobs.on_failure")
    recovers = q.enqueue(
        timejobs.flaky,
        str(tmp_path / "m"),
        1,
        retry=Retry(max=2),
        on_failure=workflowjobs.on_failure,
        on_success=workflowjobs.on_success,
    )
    burst(broker)
    assert ("success", ok.id, 5, "finished") in CALLS
    assert ("failure", bad.id, "ValueError", "bad", True) in CALLS
    assert [c[0] for c in CALLS if c[1] == recovers.id] == ["success"]  # not on the retried try


def test_a_callback_error_is_recorded_and_the_outcome_stands(broker: Broker) -> None:
    q = Queue(broker=broker)
    broken = q.enqueue(workflowjobs.add, 1, 1, on_success=workflowjobs.broken_callback)
    slow = q.enqueue(
        workflowjobs.add, 1, 2, on_success=Callback(workflowjobs.slow_callback, timeout=0.2)
    )
    burst(broker)
    broken.refresh()
    assert broken.status is JobStatus.FINISHED and broken.result == 2
    assert broken.callback_error is not None and "callback broke" in broken.callback_error.message
    slow.refresh()
    assert slow.status is JobStatus.FINISHED
    assert slow.callback_error is not None and "timeout" in slow.callback_error.message


def test_a_callback_outside_the_allow_list_is_not_run(broker: Broker) -> None:
    job = Queue(broker=broker).enqueue(workflowjobs.add, 1, 1, on_success="os.system")
    burst(broker)
    job.refresh()
    assert job.status is JobStatus.FINISHED
    assert job.callback_error is not None and "not allowed" in job.callback_error.message


# -- stop --------------------------------------------------------------------------------


def _stop_when_started(job: Job, pid_file: Path) -> threading.Thread:
    def stop() -> None:
        deadline = time.monotonic() + 10
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert job.stop()

    t = threading.Thread(target=stop, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("isolate", [False, True], ids=["in-process", "isolated"])
@pytest.mark.parametrize("func", ["sleep_then", "swallow_everything"])
def test_stop_ends_a_running_job_stopped(
    broker: Broker, tmp_path: Path, isolate: bool, func: str
) -> None:
    pid_file = tmp_path / "pid"
    q = Queue(broker=broker)
    job = q.enqueue(
        f"tests.workflowjobs.{func}", str(pid_file), 30, on_stopped=workflowjobs.on_stopped
    )
    after = q.enqueue(workflowjobs.add, 1, 1)
    stopper = _stop_when_started(job, pid_file)
    started = time.monotonic()
    w = burst(broker, lease_ttl=1, isolate=isolate)
    stopper.join(5)
    assert time.monotonic() - started < 10
    job.refresh()
    assert job.status is JobStatus.STOPPED and job.error is not None
    assert "stopped on request" in job.error.message
    assert ("stopped", job.id) in CALLS and w.stats.stopped == 1
    assert job in q.registry(JobStatus.STOPPED)
    assert after.get_status() is JobStatus.FINISHED  # the worker went on
    if isolate:
        pid = int(pid_file.read_text())
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_stop_cancels_a_job_that_has_not_started(broker: Broker) -> None:
    q = Queue(broker=broker)
    waiting = q.enqueue(workflowjobs.add, 1, 1)
    later = q.enqueue_in(60, workflowjobs.add, 1, 1)
    assert waiting.stop() and later.stop()
    assert waiting.get_status() is JobStatus.CANCELED and later.get_status() is JobStatus.CANCELED
    assert not waiting.stop()  # ended already
    with pytest.raises(NoSuchJobError):
        Job("missing", {}, broker=broker, serializer=q.serializer).stop()


# -- registries, requeue, empty -------------------------------------------------------------


def test_registries_count_and_list_each_state(broker: Broker) -> None:
    q = Queue(broker=broker)
    done = q.enqueue(workflowjobs.add, 1, 1)
    failed = q.enqueue(workflowjobs.boom)
    burst(broker)
    waiting = q.enqueue(workflowjobs.add, 2, 2)
    assert q.finished_job_registry.job_ids == [done.id]
    assert [j.id for j in q.failed_job_registry.jobs()] == [failed.id]
    assert len(q.registry("pending")) == 1 and waiting.id in q.registry(JobStatus.PENDING)
    assert q.started_job_registry.count == 0 and q.canceled_job_registry.count == 0
    with pytest.raises(Exception, match="no registry of state 'done'"):
        q.registry("done")


def test_requeue_runs_a_failed_job_again(broker: Broker, tmp_path: Path) -> None:
    q = Queue(broker=broker)
    job = q.enqueue(timejobs.flaky, str(tmp_path / "m"), 1)
    burst(broker)
    assert job.get_status() is JobStatus.FAILED and job.tries == 1
    assert q.failed_job_registry.requeue(job)
    assert job.get_status() is JobStatus.PENDING and q.failed_job_registry.count == 0
    burst(broker)
    job.refresh()
    assert job.status is JobStatus.FINISHED and job.result == 2
    assert [e.message for e in job.errors] == ["run 1 fails"]  # the earlier run's error is kept
    assert job.requeue() and job.status is JobStatus.PENDING  # a finished job may run again
    assert not job.requeue()  # not while it waits


def test_requeue_failed_and_empty(broker: Broker) -> None:
    q = Queue(broker=broker)
    for _ in range(3):
        q.enqueue(workflowjobs.boom)
    burst(broker)
    assert q.requeue_failed() == 3 and q.count == 3
    assert q.empty() == 3 and q.count == 0 and q.failed_job_registry.count == 0


# -- hooks ----------------------------------------------------------------------------------


class Recorder(Hooks):
    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []
        self.payloads: list[Any] = []

    def worker_started(self, worker: Worker) -> None:
        self.seen.append(("started", worker.name))

    def before_job(self, job: Job) -> None:
        self.seen.append(("before", job.id))

    def after_job(self, job: Job, outcome: JobOutcome) -> None:
        self.seen.append(("after", job.id, outcome.status.value, outcome.will_retry))
        self.payloads.append(job.fields.get("func"))
        if outcome.exception is not None:
            self.seen.append(("exception", type(outcome.exception).__name__))

    def worker_stopped(self, worker: Worker) -> None:
        self.seen.append(("stopped", worker.name))


class Broken(Hooks):
    def before_job(self, job: Job) -> None:
        raise RuntimeError("hook broke")

    def after_job(self, job: Job, outcome: JobOutcome) -> None:
        raise RuntimeError("hook broke")


def test_hooks_see_every_job_and_a_broken_hook_changes_nothing(
    broker: Broker, tmp_path: Path
) -> None:
    q = Queue(broker=broker)
    ok = q.enqueue(workflowjobs.add, 1, 1)
    retried = q.enqueue(timejobs.flaky, str(tmp_path / "m"), 1, retry=1)
    recorder = Recorder()
    w = burst(broker, hooks=[Broken(), recorder])
    assert recorder.seen[0] == ("started", w.name) and recorder.seen[-1] == ("stopped", w.name)
    assert ("after", ok.id, "finished", False) in recorder.seen
    assert ("after", retried.id, "failed", True) in recorder.seen
    assert ("after", retried.id, "finished", False) in recorder.seen
    assert ("exception", "ValueError") in recorder.seen
    assert ok.get_status() is JobStatus.FINISHED


def test_exception_handlers_run_in_order_until_one_returns_false(broker: Broker) -> None:
    job = Queue(broker=broker).enqueue(workflowjobs.boom)
    burst(broker, exception_handlers=[workflowjobs.handler_stop, workflowjobs.handler_never])
    assert [("handler1", job.id, "ValueError")] == CALLS


class Tracing(Hooks):
    """Carries a value from the producer to the worker in meta, as a tracer would."""

    def __init__(self) -> None:
        self.enqueued: list[str] = []
        self.ran: list[Any] = []
        self.made = 0

    def before_enqueue(self, job: Job) -> None:
        job.meta["trace"] = f"t-{self.made}"
        self.made += 1

    def after_enqueue(self, job: Job) -> None:
        self.enqueued.append(job.id)

    def before_job(self, job: Job) -> None:
        self.ran.append(job.meta.get("trace"))


def test_producer_hooks_see_each_enqueue_and_may_add_meta(broker: Broker) -> None:
    tracing = Tracing()
    q = Queue(broker=broker, hooks=[tracing])
    one = q.enqueue(workflowjobs.add, 1, 1, meta={"owner": "ana"})
    group = q.enqueue_many([q.prepare(workflowjobs.add, (i, i)) for i in range(2)])
    assert tracing.enqueued == [one.id, *(j.id for j in group)]
    assert Job.fetch(one.id, broker=broker).meta == {"owner": "ana", "trace": "t-0"}
    burst(broker, hooks=[tracing])
    assert tracing.ran == ["t-0", "t-1", "t-2"]


def test_installed_hooks_apply_to_every_queue_and_worker(broker: Broker) -> None:
    from myrq import hooks

    recorder = Recorder()
    hooks.install(recorder)
    try:
        job = Queue(broker=broker).enqueue(workflowjobs.add, 1, 1)
        burst(broker)
    finally:
        hooks.uninstall(recorder)
    assert ("after", job.id, "finished", False) in recorder.seen


def test_a_callback_sees_the_outcome_recorded(broker: Broker) -> None:
    job = Queue(broker=broker).enqueue(
        workflowjobs.add, 2, 2, on_success=workflowjobs.fetch_in_callback
    )
    burst(broker)
    assert [("fetched", job.id, "finished", 4)] == CALLS


def test_an_exception_handler_may_cancel_the_remaining_retries(
    broker: Broker, tmp_path: Path
) -> None:
    job = Queue(broker=broker).enqueue(timejobs.flaky, str(tmp_path / "m"), 5, retry=Retry(max=3))
    burst(broker, exception_handlers=[workflowjobs.handler_no_retry])
    job.refresh()
    assert job.status is JobStatus.FAILED and job.tries == 1


def test_a_group_counts_its_jobs_and_waits_for_them(broker: Broker) -> None:
    q = Queue(broker=broker)
    group = q.enqueue_many([q.prepare(workflowjobs.add, (i, i)) for i in range(3)])
    assert isinstance(group, Group) and len(group) == 3
    assert group.counts() == {"pending": 3} and not group.done
    burst(broker)
    assert group.counts() == {"finished": 3} and group.done
    assert group.wait(timeout=5) == [0, 2, 4]
    bad = q.enqueue_many([q.prepare(workflowjobs.add, (1, 1)), q.prepare(workflowjobs.boom)])
    burst(broker)
    with pytest.raises(JobFailedError):
        bad.wait(timeout=5)
    assert bad.counts() == {"finished": 1, "failed": 1}


def test_a_callback_sees_the_meta_the_job_saved(broker: Broker) -> None:
    job = Queue(broker=broker).enqueue(
        workflowjobs.report_progress, 3, on_success=workflowjobs.progress_callback
    )
    burst(broker)
    assert ("progress", job.id, 3) in CALLS


def test_meta_is_json_and_never_unpickled(broker: Broker) -> None:
    import pickle

    q = Queue(broker=broker, serializer="pickle")
    with pytest.raises(Exception, match="stored as JSON"):
        q.enqueue(workflowjobs.add, 1, 2, meta={"when": object()})
    job = q.enqueue(workflowjobs.add, 1, 2, meta={"n": 1})
    assert broker.get(job.id)["meta"] == b'{"n": 1}'  # type: ignore[index]
    broker.set_fields(job.id, {"meta": pickle.dumps({"evil": 1})})
    assert Job.fetch(job.id, broker=broker, serializer="pickle").meta == {}


def test_a_forged_record_runs_no_callback_and_hooks_see_no_payload(broker: Broker) -> None:
    q = Queue(broker=broker, secret_key="k1")
    job = q.enqueue(workflowjobs.add, 1, 2)
    forged = {"on_failure": b'{"func": "tests.workflowjobs.on_failure", "timeout": 60}'}
    broker.set_fields(job.id, forged)  # not covered by the signature: the check fails
    recorder = Recorder()
    w = Worker(broker=broker, allow=["tests"], secret_key="k1", hooks=[recorder])
    w.work(burst=True)
    assert job.get_status() is JobStatus.FAILED and job.error is not None
    assert job.error.type == "SignatureError" and CALLS == []
    assert ("after", job.id, "failed", False) in recorder.seen
    assert recorder.payloads == [None]


def test_a_stopped_run_is_not_counted_as_a_failed_try(broker: Broker, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    job = Queue(broker=broker).enqueue(workflowjobs.sleep_then, str(pid_file), 30)
    stopper = _stop_when_started(job, pid_file)
    burst(broker, lease_ttl=1)
    stopper.join(5)
    job.refresh()
    assert job.status is JobStatus.STOPPED and job.tries == 0 and job.errors == []
