"""Eager mode: a queue that runs each job inside enqueue, through a worker's own parts."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import myrq
from myrq import (
    ConfigurationError,
    Eager,
    Hooks,
    JobExistsError,
    JobFailedError,
    JobOutcome,
    JobStatus,
    Queue,
    Retry,
    Worker,
)
from myrq.backends import Broker, MemoryBroker
from myrq.job import Job
from myrq.schema import F_PAYLOAD
from tests import eagerjobs

ALLOW = Eager(allow=["tests"])


@pytest.fixture(autouse=True)
def _clear_seen() -> Iterator[None]:
    eagerjobs.seen.clear()
    yield
    eagerjobs.seen.clear()


# -- the job runs inside enqueue, and reads as after a worker's run --------------------------


def test_an_eager_job_has_run_when_enqueue_returns(broker: Broker) -> None:
    q = Queue("eager", broker=broker, eager=ALLOW)
    job = q.enqueue(eagerjobs.add, 1, 2)

    assert eagerjobs.seen == [("add", 1, 2)]
    assert job.status is JobStatus.FINISHED and job.result == 3  # no refresh needed
    assert job.get_status() is JobStatus.FINISHED  # as stored
    assert q.registry(JobStatus.FINISHED).job_ids == [job.id]
    assert q.count == 0 and broker.leased_ids() == []


def test_retries_without_a_wait_run_in_the_same_call(broker: Broker) -> None:
    q = Queue("eager", broker=broker, eager=ALLOW)
    job = q.enqueue(eagerjobs.flaky, f"twice-{id(broker)}", 2, retry=Retry(max=3))

    assert job.status is JobStatus.FINISHED and job.result == 3
    assert job.tries == 2
    assert [e.type for e in job.errors] == ["ConnectionError", "ConnectionError"]


def test_jobs_already_waiting_are_left_for_a_worker_and_keep_their_order(broker: Broker) -> None:
    plain = Queue("shared", broker=broker)
    waiting = [plain.enqueue(eagerjobs.add, n, n) for n in range(3)]

    job = Queue("shared", broker=broker, eager=ALLOW).enqueue(eagerjobs.add, 10, 10)

    assert job.result == 20 and eagerjobs.seen == [("add", 10, 10)]
    assert plain.job_ids == [w.id for w in waiting]
    assert all(w.get_status() is JobStatus.PENDING for w in waiting)


def test_a_failed_job_raises_at_the_call_with_its_own_exception_as_cause() -> None:
    q = Queue("eager", broker=MemoryBroker(), eager=ALLOW)
    with pytest.raises(JobFailedError) as caught:
        q.enqueue(eagerjobs.divide, 1, 0)

    assert isinstance(caught.value.__cause__, ZeroDivisionError)
    assert caught.value.job.status is JobStatus.FAILED
    assert caught.value.error.type == "ZeroDivisionError"
    assert q.registry(JobStatus.FAILED).job_ids == [caught.value.job.id]


def test_raise_on_failure_off_returns_the_failed_job() -> None:
    q = Queue("eager", broker=MemoryBroker(), eager=Eager(raise_on_failure=False, allow=["tests"]))
    job = q.enqueue(eagerjobs.divide, 1, 0)
    assert job.status is JobStatus.FAILED and job.error is not None
    assert job.error.type == "ZeroDivisionError"


def test_a_function_outside_the_allow_list_is_refused_as_a_worker_refuses_it() -> None:
    q = Queue("eager", broker=MemoryBroker(), eager=True)  # MYRQ_ALLOW=tests is set by conftest
    q_closed = Queue("eager", broker=q.broker, eager=Eager(raise_on_failure=False))
    job = q_closed.enqueue("os.getcwd")
    assert job.status is JobStatus.FAILED and job.error is not None
    assert job.error.type == "FunctionNotAllowed"
    with pytest.raises(JobFailedError, match="FunctionNotAllowed"):
        q.enqueue("os.getcwd")


def test_the_signature_is_checked_as_a_worker_checks_it() -> None:
    class Tamper(Hooks):
        def before_enqueue(self, job: Job[Any]) -> None:
            job._fields[F_PAYLOAD] = job._fields[F_PAYLOAD].replace(b"2", b"3")

    broker = MemoryBroker()
    signed = Queue("eager", broker=broker, secret_key="k1", eager=ALLOW)
    assert signed.enqueue(eagerjobs.add, 1, 2).result == 3

    tampered = Queue(
        "eager", broker=broker, secret_key="k1", hooks=[Tamper()],
        eager=Eager(raise_on_failure=False, allow=["tests"]),
    )  # fmt: skip
    job = tampered.enqueue(eagerjobs.add, 1, 2)
    assert job.status is JobStatus.FAILED and job.error is not None
    assert job.error.type == "SignatureError"
    assert eagerjobs.seen == [("add", 1, 2)]  # the tampered one never ran


def test_the_timeout_stops_the_job_and_leaves_no_alarm_handler_behind() -> None:
    before = signal.getsignal(signal.SIGALRM)
    q = Queue("eager", broker=MemoryBroker(), eager=Eager(raise_on_failure=False, allow=["tests"]))
    job = q.enqueue(eagerjobs.nap, 5, job_timeout=0.2)

    assert job.status is JobStatus.TIMEOUT
    assert signal.getsignal(signal.SIGALRM) is before


def test_callbacks_run_after_the_outcome_is_written() -> None:
    q = Queue("eager", broker=MemoryBroker(), eager=Eager(raise_on_failure=False, allow=["tests"]))
    ok = q.enqueue(eagerjobs.add, 2, 2, on_success=eagerjobs.on_success)
    bad = q.enqueue(eagerjobs.divide, 1, 0, on_failure=eagerjobs.on_failure)
    assert ("on_success", ok.id, 4) in eagerjobs.seen
    assert ("on_failure", bad.id, "ZeroDivisionError") in eagerjobs.seen


def test_hooks_hear_the_enqueue_then_the_run() -> None:
    heard: list[str] = []

    class Listen(Hooks):
        def after_enqueue(self, job: Job[Any]) -> None:
            heard.append("after_enqueue")

        def before_job(self, job: Job[Any]) -> None:
            heard.append("before_job")

        def after_job(self, job: Job[Any], outcome: JobOutcome) -> None:
            heard.append(f"after_job {outcome.status.value}")

    Queue("eager", broker=MemoryBroker(), hooks=[Listen()], eager=ALLOW).enqueue(
        eagerjobs.add, 1, 1
    )
    assert heard == ["after_enqueue", "before_job", "after_job finished"]


# -- what is left for a worker --------------------------------------------------------------


def test_a_retry_with_a_wait_is_left_scheduled_and_raises_nothing() -> None:
    q = Queue("eager", broker=MemoryBroker(), eager=ALLOW)
    job = q.enqueue(eagerjobs.flaky, "later", 1, retry=Retry(max=2, interval=30))

    assert job.status is JobStatus.SCHEDULED and job.tries == 1
    assert [job_id for job_id, _ in q.scheduled_jobs()] == [job.id]
    job.run_now()
    Worker(["eager"], broker=q.broker, allow=["tests"]).work(burst=True)
    assert job.get_status() is JobStatus.FINISHED and job.result == 2


def test_a_job_due_later_is_stored_scheduled_and_not_run() -> None:
    q = Queue("eager", broker=MemoryBroker(), eager=ALLOW)
    job = q.enqueue_in("1h", eagerjobs.add, 1, 1)
    assert job.get_status() is JobStatus.SCHEDULED and eagerjobs.seen == []


def test_a_dependent_runs_when_the_eager_run_of_its_parent_ends() -> None:
    broker = MemoryBroker()
    url = "memory://eager-deps"
    Queue("eager", broker=url)  # the job builds its own queue on this URL
    q = Queue("eager", broker=url, eager=ALLOW)
    parent = q.enqueue(eagerjobs.enqueue_child, url, 41)

    child_id = parent.result
    (_, seen_id, status_inside), *_ = [s for s in eagerjobs.seen if s[0] == "child"]
    assert seen_id == child_id and status_inside == "deferred"  # its parent was running
    child = q.fetch_job(child_id)
    assert child is not None and child.status is JobStatus.FINISHED and child.result == 42
    assert broker.queue_names() == []  # the private broker above is untouched


def test_an_eager_job_may_enqueue_eager_jobs() -> None:
    url = "memory://eager-nested"
    job = Queue("outer", broker=url, eager=ALLOW).enqueue(eagerjobs.nested, url)
    assert job.result == 42


def test_a_job_waiting_for_its_concurrency_key_runs_when_the_eager_run_of_the_key_ends() -> None:
    url = "memory://eager-keys"
    q = Queue("keys", broker=url, eager=ALLOW)
    outer = q.with_options(concurrency_key="k").enqueue(eagerjobs.enqueue_same_key, url)
    [(_, inner_id, status_inside)] = [e for e in eagerjobs.seen if e[0] == "inner"]
    assert status_inside == "pending"  # the key was held by the outer job
    inner = q.fetch_job(inner_id)
    assert outer.result == inner_id and inner is not None
    assert inner.get_status() is JobStatus.FINISHED and inner.result == 5
    assert q.count == 0


def test_a_keyed_job_parked_by_another_thread_runs_in_that_thread_when_the_key_frees() -> None:
    q = Queue("keys", broker=MemoryBroker(), eager=ALLOW).with_options(concurrency_key="k")
    eagerjobs.started.clear()
    eagerjobs.release.clear()
    first: list[Any] = []
    holder = threading.Thread(target=lambda: first.append(q.enqueue(eagerjobs.hold)))
    holder.start()
    assert eagerjobs.started.wait(10)
    second = q.enqueue(eagerjobs.add, 1, 2)  # the key is held: parked, not run here
    assert second.get_status() is JobStatus.PENDING
    eagerjobs.release.set()
    holder.join(timeout=30)
    assert first[0].get_status() is JobStatus.FINISHED
    assert second.get_status() is JobStatus.FINISHED and second.result == 3


# -- batches, threads, settings --------------------------------------------------------------


def test_enqueue_many_runs_each_job_and_reports_live_ids() -> None:
    q = Queue("eager", broker=MemoryBroker(), eager=ALLOW)
    group = q.enqueue_many([q.prepare(eagerjobs.add, (n, n)) for n in range(3)])
    assert [job.result for job in group] == [0, 2, 4]

    waiting = Queue("eager", broker=q.broker).enqueue(eagerjobs.add, 1, 1, job_id="taken")
    with pytest.raises(JobExistsError):
        q.enqueue_many(
            [q.prepare(eagerjobs.add, (5, 5), job_id="taken"), q.prepare(eagerjobs.add, (6, 6))]
        )
    assert waiting.get_status() is JobStatus.PENDING
    assert ("add", 6, 6) in eagerjobs.seen  # the others still ran


def test_threads_each_run_their_own_job_once() -> None:
    q = Queue("eager", broker=MemoryBroker(), eager=ALLOW)
    results: dict[str, str] = {}

    def enqueue(tag: str) -> None:
        job = q.enqueue(eagerjobs.thread_name, tag)
        results[tag] = job.result

    threads = [threading.Thread(target=enqueue, args=(f"t{n}",), name=f"t{n}") for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == {
        f"t{n}": f"t{n}" for n in range(8)
    }  # each ran in the thread that enqueued it
    assert sorted(eagerjobs.seen) == sorted(results)  # once each
    assert q.count == 0


def test_a_record_not_kept_still_tells_the_caller_its_result() -> None:
    q = Queue("eager", broker=MemoryBroker(), eager=ALLOW)
    job = q.enqueue(eagerjobs.add, 2, 3, result_ttl=0)
    assert job.status is JobStatus.FINISHED and job.result == 5
    assert q.fetch_job(job.id) is None


def test_the_setting_makes_queues_eager_unless_they_say_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MYRQ_EAGER", "1")
    assert Queue("q", broker=MemoryBroker()).eager == Eager()
    assert Queue("q", broker=MemoryBroker(), eager=False).eager is None
    monkeypatch.setenv("MYRQ_EAGER", "0")
    assert Queue("q", broker=MemoryBroker()).eager is None
    myrq.configure(eager=True)
    assert Queue("q", broker=MemoryBroker()).eager == Eager()
    monkeypatch.setenv("MYRQ_EAGER", "sometimes")
    myrq.config.reset()
    with pytest.raises(ConfigurationError, match="MYRQ_EAGER"):
        Queue("q", broker=MemoryBroker())


def test_the_pyproject_setting(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.myrq]\neager = true\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MYRQ_EAGER", raising=False)
    assert Queue("q", broker=MemoryBroker()).eager == Eager()


def test_a_plain_queue_does_not_run_anything() -> None:
    q = Queue("plain", broker=MemoryBroker(), eager=False)
    job = q.enqueue(eagerjobs.add, 1, 1)
    assert job.get_status() is JobStatus.PENDING and eagerjobs.seen == []


def test_threads_retrying_at_once_all_finish() -> None:
    q = Queue("eager", broker=MemoryBroker(), eager=ALLOW)
    results: dict[int, int] = {}

    def enqueue(n: int) -> None:
        results[n] = q.enqueue(eagerjobs.flaky, f"thread-{n}", 2, retry=3).result

    threads = [threading.Thread(target=enqueue, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == {n: 3 for n in range(6)}
