"""Queue, Job and Worker behaviour, on every broker (memory, fakeredis, real Redis)."""

from __future__ import annotations

import logging
import signal
import threading
import time

import pytest

from myrq import (
    BrokerConnectionError,
    ConfigurationError,
    Job,
    JobExistsError,
    JobStatus,
    NoSuchJobError,
    Queue,
    Worker,
)
from myrq.backends import Broker, MemoryBroker
from myrq.serializers import JSONSerializer, PickleSerializer
from myrq.testing.contract import BrokerContract
from tests import jobs


def run(broker: Broker, *queues: str, **kw: object) -> Worker:
    w = Worker(list(queues) or ["default"], broker=broker, lease_ttl=30, **kw)  # type: ignore[arg-type]
    w.work(burst=True)
    return w


def test_enqueue_returns_a_pending_job_that_fetch_restores(broker: Broker) -> None:
    q = Queue("default", broker=broker)
    job = q.enqueue(jobs.add, 1, 2)
    assert job.get_status() is JobStatus.PENDING
    fetched = Job.fetch(job.id, broker=broker)
    assert fetched.status is JobStatus.PENDING  # status restored on fetch
    assert (fetched.func_name, fetched.args, fetched.kwargs) == ("tests.jobs.add", [1, 2], {})
    assert fetched.origin == "default"
    assert fetched.timeout == 180
    assert fetched.created_at is not None
    assert q.job_ids == [job.id] and len(q) == 1


def test_worker_runs_the_job_and_stores_the_result(broker: Broker) -> None:
    job = Queue("default", broker=broker).enqueue(jobs.add, 1, 2)
    assert run(broker).stats.finished == 1
    assert job.get_status() is JobStatus.FINISHED
    assert job.result == 3 and job.error is None
    assert job.attempts == 1 and job.worker_name
    assert job.started_at is not None and job.ended_at is not None
    assert job.started_at <= job.ended_at
    assert Job.fetch(job.id, broker=broker).result == 3


def test_function_given_by_name(broker: Broker) -> None:
    job = Queue("default", broker=broker).enqueue("tests.jobs.add", 2, 3)
    run(broker)
    assert job.get_status() is JobStatus.FINISHED and job.result == 5


def test_staticmethod_and_classmethod_are_enqueueable(broker: Broker) -> None:
    q = Queue("default", broker=broker)
    a, b = q.enqueue(jobs.Maths.double, 4), q.enqueue(jobs.Maths.triple, 4)
    run(broker)
    a.refresh()
    b.refresh()
    assert (a.result, b.result) == (8, 12)


def test_enqueue_call_takes_args_and_kwargs_explicitly(broker: Broker) -> None:
    q = Queue("default", broker=broker)
    job = q.enqueue_call(
        jobs.echo, args=(1,), kwargs={"b": 2, "timeout": "mine", "job_id": "mine too"},
        timeout=30, job_id="my-id", result_ttl=-1, description="explicit",
    )  # fmt: skip
    assert job.id == "my-id"
    run(broker)
    fetched = Job.fetch("my-id", broker=broker)
    assert fetched.result == {
        "args": [1],
        "kwargs": {"b": 2, "timeout": "mine", "job_id": "mine too"},
    }
    assert (fetched.timeout, fetched.result_ttl, fetched.description) == (30, -1, "explicit")


def test_enqueue_reserved_job_keywords_are_options_not_arguments(broker: Broker) -> None:
    q = Queue("default", broker=broker)
    job = q.enqueue(
        jobs.echo, 1, timeout=5, job_id="opt", job_timeout=9, job_result_ttl=-1,
        job_failure_ttl=60, job_description="d",
    )  # fmt: skip
    run(broker)
    job.refresh()
    assert job.result == {"args": [1], "kwargs": {"timeout": 5}}
    assert (job.id, job.timeout, job.result_ttl, job.failure_ttl, job.description) == (
        "opt", 9, -1, 60, "d",
    )  # fmt: skip


def test_failure_records_type_message_and_traceback(broker: Broker) -> None:
    job = Queue("default", broker=broker).enqueue(jobs.fail, "boom")
    w = run(broker)
    assert w.stats.failed == 1
    assert job.get_status() is JobStatus.FAILED and job.is_failed
    assert job.error is not None
    assert (job.error.type, job.error.message) == ("ValueError", "boom")
    assert "in fail" in job.error.traceback and "ValueError: boom" in job.error.traceback
    assert job.result is None


def test_worker_keeps_going_after_failures(broker: Broker) -> None:
    q = Queue("default", broker=broker)
    ids = [q.enqueue(jobs.fail, "x").id, q.enqueue(jobs.exit_job, 3).id,
           q.enqueue(jobs.interrupt_job).id, q.enqueue(jobs.add, 1, 1).id]  # fmt: skip
    w = run(broker)
    statuses = [Job.fetch(i, broker=broker).status for i in ids]
    assert statuses == [JobStatus.FAILED] * 3 + [JobStatus.FINISHED]
    assert Job.fetch(ids[1], broker=broker).error.type == "SystemExit"  # type: ignore[union-attr]
    assert Job.fetch(ids[2], broker=broker).error.type == "KeyboardInterrupt"  # type: ignore[union-attr]
    assert w.stats.processed == 4


def test_timeout_stops_the_job_and_clears_the_alarm(broker: Broker) -> None:
    q = Queue("default", broker=broker)
    slow = q.enqueue(jobs.nap, 5, job_timeout=0.3)
    after = q.enqueue(jobs.nap, 0.5, "done", job_timeout=10)
    started = time.monotonic()
    w = run(broker)
    assert time.monotonic() - started < 3
    assert slow.get_status() is JobStatus.TIMEOUT
    assert slow.error is not None and "timeout of 0.3s" in slow.error.message
    # The next job outlives the first one's timeout: the alarm was cleared.
    assert after.get_status() is JobStatus.FINISHED and after.result == "done"
    assert w.stats.timed_out == 1


def test_an_outer_interval_timer_is_restored_after_each_job(broker: Broker) -> None:
    fired: list[int] = []
    handler = lambda signum, frame: fired.append(signum)  # noqa: E731
    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 100)  # as pytest-timeout does
    try:
        Queue("default", broker=broker).enqueue(jobs.nap, 0.2, job_timeout=10)
        run(broker)
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 95 < left < 100
        assert signal.getsignal(signal.SIGALRM) is handler
        assert fired == []
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_no_alarm_is_left_behind(broker: Broker) -> None:
    previous = signal.setitimer(signal.ITIMER_REAL, 0)  # suspend pytest-timeout's, if any
    try:
        Queue("default", broker=broker).enqueue(jobs.nap, 0.1, job_timeout=0.5)
        run(broker)
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    finally:
        if previous[0] > 0:
            signal.setitimer(signal.ITIMER_REAL, *previous)


def test_a_job_cannot_swallow_its_timeout(broker: Broker) -> None:
    job = Queue("default", broker=broker).enqueue(jobs.swallow_everything, 5, job_timeout=0.3)
    run(broker)
    assert job.get_status() is JobStatus.TIMEOUT


def test_queues_are_served_in_priority_order(broker: Broker) -> None:
    low = Queue("low", broker=broker)
    high = Queue("high", broker=broker)
    order = [low.enqueue(jobs.add, 0, i) for i in range(2)] + [high.enqueue(jobs.add, 1, 0)]
    run(broker, "high", "low")
    ended = [Job.fetch(j.id, broker=broker).ended_at for j in order]
    assert ended[2] < ended[0] < ended[1]  # type: ignore[operator]


def test_burst_returns_the_number_of_jobs_run(broker: Broker) -> None:
    q = Queue("default", broker=broker)
    for i in range(5):
        q.enqueue(jobs.add, i, i)
    w = Worker(["default"], broker=broker)
    assert w.work(burst=True, max_jobs=2) == 2
    assert w.work(burst=True) == 3
    assert w.work(burst=True) == 0
    assert len(q) == 0


def test_blocking_worker_picks_up_a_job_enqueued_later(broker: Broker) -> None:
    q = Queue("default", broker=broker)
    w = Worker(["default"], broker=broker, idle_wait=0.2)
    t = threading.Thread(target=w.work)
    t.start()
    time.sleep(0.3)
    job = q.enqueue(jobs.add, 20, 22)
    deadline = time.monotonic() + 10
    while job.get_status() is not JobStatus.FINISHED and time.monotonic() < deadline:
        time.sleep(0.02)
    w.request_stop()
    t.join(timeout=10)
    assert not t.is_alive()
    assert job.result == 42


def test_finished_job_expires_after_its_result_ttl(broker: Broker) -> None:
    q = Queue("default", broker=broker)
    job = q.enqueue(jobs.add, 1, 2, job_result_ttl=1)
    kept = q.enqueue(jobs.add, 1, 2, job_result_ttl=-1)
    run(broker)
    assert job.get_status() is JobStatus.FINISHED
    time.sleep(1.3)
    with pytest.raises(NoSuchJobError):
        job.refresh()
    assert kept.get_status() is JobStatus.FINISHED


def test_result_ttl_zero_keeps_no_record(broker: Broker) -> None:
    job = Queue("default", broker=broker).enqueue(jobs.add, 1, 2, job_result_ttl=0)
    run(broker)
    with pytest.raises(NoSuchJobError):
        Job.fetch(job.id, broker=broker)


def test_failure_ttl_applies_to_failed_jobs(broker: Broker) -> None:
    q = Queue("default", broker=broker, result_ttl=0)
    job = q.enqueue(jobs.fail, "x", job_failure_ttl=-1)
    run(broker)
    assert job.get_status() is JobStatus.FAILED


def test_live_job_id_is_not_replaced(broker: Broker) -> None:
    q = Queue("default", broker=broker)
    first = q.enqueue(jobs.add, 1, 2, job_id="same")
    with pytest.raises(JobExistsError, match="same"):
        q.enqueue(jobs.add, 5, 5, job_id="same")
    assert Job.fetch("same", broker=broker).args == [1, 2]
    assert q.job_ids == ["same"]
    run(broker)
    assert first.get_status() is JobStatus.FINISHED
    again = q.enqueue(jobs.add, 5, 5, job_id="same")  # finished: may be reused
    run(broker)
    assert again.get_status() is JobStatus.FINISHED and again.result == 10


def test_enqueue_many_stores_a_batch(broker: Broker) -> None:
    q = Queue("default", broker=broker)
    batch = q.enqueue_many([q.prepare(jobs.add, (i, i)) for i in range(20)])
    assert len(q) == 20
    run(broker)
    assert [Job.fetch(j.id, broker=broker).result for j in batch] == [2 * i for i in range(20)]


def test_enqueue_many_reports_ids_held_by_live_jobs(broker: Broker) -> None:
    q = Queue("default", broker=broker)
    q.enqueue(jobs.add, 0, 0, job_id="held")
    with pytest.raises(JobExistsError) as info:
        q.enqueue_many([q.prepare(jobs.add, (1, 1), job_id="held"), q.prepare(jobs.add, (2, 2))])
    assert info.value.job_ids == ["held"]
    assert len(q) == 2


def test_delete_removes_the_job(broker: Broker) -> None:
    q = Queue("default", broker=broker)
    job = q.enqueue(jobs.add, 1, 2)
    assert job.delete()
    assert len(q) == 0
    with pytest.raises(NoSuchJobError):
        job.refresh()


def test_id_on_queue_without_record_is_skipped(
    broker: Broker, hooks: BrokerContract, caplog: pytest.LogCaptureFixture
) -> None:
    q = Queue("default", broker=broker)
    orphan = q.enqueue(jobs.add, 1, 2)
    good = q.enqueue(jobs.add, 3, 4)
    hooks.drop_record_only(broker, orphan.id)
    with caplog.at_level(logging.WARNING, logger="myrq.worker"):
        w = run(broker)
    assert w.stats.skipped == 1 and w.stats.finished == 1
    assert f"held id {orphan.id}, which has no job record" in caplog.text
    assert broker.get(orphan.id) is None  # nothing re-created
    assert good.get_status() is JobStatus.FINISHED


def test_undecodable_payload_fails_the_job(broker: Broker) -> None:
    broker.enqueue("default", "garbage", {"func": b"\x80not json{", "status": b"pending",
                                          "timeout": b"60", "queue": b"default"})  # fmt: skip
    Queue("default", broker=broker).enqueue(jobs.add, 1, 1)
    w = run(broker)
    job = Job.fetch("garbage", broker=broker)
    assert job.status is JobStatus.FAILED
    assert job.error is not None and job.error.type == "InvalidPayload"
    assert "not valid JSON" in job.error.message
    assert w.stats.finished == 1


def test_unimportable_function_fails_the_job(broker: Broker) -> None:
    q = Queue("default", broker=broker)
    missing_module = q.enqueue("no_such_module_xyz.func")
    missing_attr = q.enqueue("tests.jobs.no_such_function")
    run(broker, allow=["no_such_module_xyz"])
    for job, needle in ((missing_module, "no_such_module_xyz"), (missing_attr, "no_such_function")):
        assert job.get_status() is JobStatus.FAILED
        assert job.error is not None and job.error.type == "FunctionLookupError"
        assert needle in job.error.message


def test_result_the_serializer_cannot_encode_fails_the_job(broker: Broker) -> None:
    job = Queue("default", broker=broker).enqueue(jobs.return_set)
    run(broker)
    assert job.get_status() is JobStatus.FAILED
    assert job.error is not None and job.error.type == "ResultSerializationError"
    assert "set" in job.error.message


def test_pickle_serializer_round_trips_python_values(broker: Broker) -> None:
    import datetime

    q = Queue("default", broker=broker, serializer="pickle")
    job = q.enqueue(jobs.next_day, datetime.date(2026, 2, 28))
    run(broker, serializer=PickleSerializer())
    assert job.get_status() is JobStatus.FINISHED
    assert job.result == datetime.date(2026, 3, 1)


def test_json_worker_never_unpickles_a_pickle_payload(broker: Broker) -> None:
    q = Queue("default", broker=broker, serializer="pickle")
    job = q.enqueue(jobs.add, 1, 2)
    run(broker)  # JSON worker
    assert job.get_status() is JobStatus.FAILED
    assert job.error is not None and job.error.type == "InvalidPayload"


def test_worker_logs_job_lines_at_debug_and_failures_at_info(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    q = Queue("default", broker=broker)
    job = q.enqueue(jobs.add, 1, 2)
    bad = q.enqueue(jobs.fail, "nope")
    with caplog.at_level(logging.DEBUG, logger="myrq"):
        run(broker)
    lines = [r for r in caplog.records if job.id in r.getMessage()]
    assert [r.levelno for r in lines] == [logging.DEBUG, logging.DEBUG]
    assert lines[0].getMessage().endswith("started") and " finished in " in lines[1].getMessage()
    assert all(r.name.startswith("myrq") for r in caplog.records)
    # No per-job line above DEBUG for a finished job (the hot path); a failure is news.
    failed = [r for r in caplog.records if bad.id in r.getMessage() and r.levelno >= logging.INFO]
    assert len(failed) == 1 and "failed" in failed[0].getMessage()


def test_late_write_after_delete_does_not_resurrect_the_job(broker: Broker) -> None:
    jobs.BROKER = broker
    job = Queue("default", broker=broker).enqueue_call(
        jobs.delete_myself, args=("self-del",), job_id="self-del"
    )
    w = run(broker)
    assert w.stats.lost_leases == 1 and w.stats.finished == 0
    assert broker.get(job.id) is None


def test_queue_without_broker_uses_the_configured_one() -> None:
    from myrq import configure
    from myrq.backends import MemoryBroker

    configure(broker="memory://unit")
    q = Queue("x")
    assert isinstance(q.broker, MemoryBroker)
    job = q.enqueue(jobs.add, 2, 2)
    Worker(["x"]).work(burst=True)
    assert Job.fetch(job.id).result == 4


class _FussySerializer(JSONSerializer):
    """A user serializer with its own bugs: raises plain exceptions, not myrq's."""

    def dumps(self, value: object) -> bytes:
        if value == "unstorable":
            raise RuntimeError("fussy cannot store that")
        return super().dumps(value)

    def loads(self, data: bytes) -> object:
        if b"undecodable" in data:
            raise KeyError("fussy cannot read that")
        return super().loads(data)


def test_custom_serializer_errors_fail_the_job_not_the_worker(broker: Broker) -> None:
    q = Queue("default", broker=broker)
    bad_result = q.enqueue(jobs.nap, 0, "unstorable")
    bad_payload = q.enqueue(jobs.nap, 0, "undecodable")
    good = q.enqueue(jobs.add, 1, 1)
    w = run(broker, serializer=_FussySerializer())
    assert w.stats.failed == 2 and w.stats.finished == 1
    assert bad_result.get_status() is JobStatus.FAILED
    assert "fussy cannot store that" in bad_result.error.message  # type: ignore[union-attr]
    assert bad_payload.get_status() is JobStatus.FAILED
    assert bad_payload.error.type == "InvalidPayload"  # type: ignore[union-attr]
    assert good.get_status() is JobStatus.FINISHED


@pytest.mark.parametrize(
    ("field", "value"),
    [("timeout", b"1e300"), ("timeout", b"inf"), ("result_ttl", b"1e300"),
     ("result_ttl", b"inf"), ("result_ttl", b"nan")],
)  # fmt: skip
def test_extreme_numbers_in_a_foreign_record_are_clamped(
    broker: Broker, field: str, value: bytes
) -> None:
    fields = {"func": b'{"func_name":"tests.jobs.add","args":[1,2],"kwargs":{}}',
              "status": b"pending", "queue": b"default", field: value}  # fmt: skip
    broker.enqueue("default", "extreme", fields)
    handler = signal.getsignal(signal.SIGALRM)
    w = run(broker)
    assert w.stats.finished == 1
    assert Job.fetch("extreme", broker=broker).result == 3
    assert signal.getsignal(signal.SIGALRM) is handler


def test_lease_is_renewed_while_a_stopping_worker_finishes_its_job() -> None:
    broker = MemoryBroker()
    job = Queue("default", broker=broker).enqueue(jobs.nap, 2.5, "done")
    w = Worker(["default"], broker=broker, lease_ttl=1)
    reaped: list[object] = []

    def stop_then_reap() -> None:
        time.sleep(0.3)
        w.request_stop()  # what the first SIGTERM does
        time.sleep(1.7)  # well past the 1 s lease, were it not renewed
        reaped.extend(broker.reap(max_attempts=3))

    t = threading.Thread(target=stop_then_reap)
    t.start()
    w.work()
    t.join()
    assert reaped == []
    assert job.get_status() is JobStatus.FINISHED and job.result == "done"
    assert w.stats.lost_leases == 0


def test_module_that_exits_at_import_fails_the_job_not_the_worker(broker: Broker) -> None:
    q = Queue("default", broker=broker)
    bad = q.enqueue("tests.badmods.exits_on_import.run")
    good = q.enqueue(jobs.add, 1, 1)
    run(broker)
    assert bad.get_status() is JobStatus.FAILED
    assert bad.error is not None and "SystemExit: no config file" in bad.error.message
    assert good.get_status() is JobStatus.FINISHED


def test_missing_dependency_is_reported_not_hidden(broker: Broker) -> None:
    job = Queue("default", broker=broker).enqueue("tests.badmods.tasks_v2.run")
    run(broker)
    assert job.get_status() is JobStatus.FAILED
    assert "No module named 'tests.badmods.tasks'" in job.error.message  # type: ignore[union-attr]


def test_timeout_covers_importing_the_function(broker: Broker) -> None:
    job = Queue("default", broker=broker).enqueue("tests.badmods.slow_import.run", job_timeout=0.5)
    started = time.monotonic()
    run(broker)
    assert time.monotonic() - started < 2.5
    assert job.get_status() is JobStatus.TIMEOUT


@pytest.mark.parametrize(
    ("option", "value"),
    [("lease_ttl", 0), ("lease_ttl", float("nan")), ("lease_ttl", "sixty"), ("idle_wait", -1),
     ("default_timeout", float("inf")), ("max_attempts", -1), ("max_attempts", 1.5)],
)  # fmt: skip
def test_invalid_worker_settings_are_refused(option: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=option):
        Worker(["default"], broker=MemoryBroker(), **{option: value})  # type: ignore[arg-type]


def test_burst_worker_gives_up_on_an_unreachable_broker() -> None:
    from myrq.backends import RedisBroker
    from myrq.testing.redis_server import free_port

    broker = RedisBroker.from_url(f"redis://127.0.0.1:{free_port()}/0")
    started = time.monotonic()
    with pytest.raises(BrokerConnectionError):
        Worker(["default"], broker=broker).work(burst=True)
    assert time.monotonic() - started < 15


def test_job_alarm_passes_an_outer_timer_between_jobs_to_the_previous_handler() -> None:
    from myrq.exceptions import JobTimeout
    from myrq.worker.alarm import JobAlarm

    fired: list[int] = []

    def outer(signum: int, frame: object) -> None:
        fired.append(signum)

    saved_timer = signal.setitimer(signal.ITIMER_REAL, 0)  # pytest-timeout's, if any
    previous = signal.signal(signal.SIGALRM, outer)
    job_alarm = JobAlarm()
    try:
        job_alarm.install()
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        time.sleep(0.3)  # between jobs: the outer handler gets it, nothing is raised
        assert fired == [signal.SIGALRM]
        with pytest.raises(JobTimeout), job_alarm(0.05):
            time.sleep(1)
        job_alarm.uninstall()
        assert signal.getsignal(signal.SIGALRM) is outer
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if saved_timer[0] > 0:
            signal.setitimer(signal.ITIMER_REAL, *saved_timer)


@pytest.mark.parametrize(
    "job_id",
    ["user:42|import", "a/b/c", "{tag}x", "glob*?[x]", "-leading", "émoji-✓", "x" * 200, "job:a"],
)
def test_ids_with_punctuation_work_end_to_end(broker: Broker, job_id: str) -> None:
    """Real apps use ids with |, / and :; every printable character but spaces is fine."""
    q = Queue("default", broker=broker)
    job = q.enqueue_call(jobs.add, args=(1, 2), job_id=job_id)
    assert job_id in list(broker.job_ids())
    run(broker)
    fetched = Job.fetch(job_id, broker=broker)
    assert fetched.get_status() is JobStatus.FINISHED and fetched.result == 3
    assert job.delete() and broker.get(job_id) is None
