"""Time: retries, scheduled jobs, ttl, at_front, waiting for a result, periodic jobs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from myrq import (
    Backoff,
    InvalidJobError,
    Job,
    JobFailedError,
    JobStatus,
    Queue,
    Retry,
    WaitTimeout,
    Worker,
)
from myrq.backends import Broker
from tests import jobs, timejobs


def burst(broker: Broker, *queues: str) -> Worker:
    w = Worker(list(queues or ["default"]), broker=broker, allow=["tests"])
    w.work(burst=True)
    return w


@pytest.fixture
def background(broker: Broker) -> Iterator[Worker]:
    """A worker running in a thread for the test (no burst: it waits for scheduled jobs)."""
    w = Worker(["default"], broker=broker, allow=["tests"], idle_wait=0.5, lease_ttl=5)
    t = threading.Thread(target=w.work, daemon=True)
    t.start()
    yield w
    w.request_stop()
    t.join(timeout=15)
    assert not t.is_alive()


def eventually(pred: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# -- retries ---------------------------------------------------------------------------


def test_a_retry_succeeds_on_the_third_try(broker: Broker, tmp_path: Path) -> None:
    marker = str(tmp_path / "m")
    job = Queue("default", broker=broker).enqueue(timejobs.flaky, marker, 2, retry=Retry(max=3))
    w = burst(broker)  # a retry at once goes back on the queue: the burst takes it again
    job.refresh()
    assert job.status is JobStatus.FINISHED and job.result == 3
    assert job.tries == 2 and job.attempts == 1  # two failed runs; one claim of this run
    assert [e.message for e in job.errors] == ["run 1 fails", "run 2 fails"]
    assert w.stats.retried == 2 and w.stats.finished == 1


def test_when_the_tries_are_spent_the_job_fails_with_the_last_error(
    broker: Broker, tmp_path: Path
) -> None:
    job = Queue("default", broker=broker).enqueue(timejobs.flaky, str(tmp_path / "m"), 99, retry=2)
    burst(broker)
    job.refresh()
    assert job.status is JobStatus.FAILED and job.tries == 3
    assert job.error is not None and job.error.message == "run 3 fails"
    assert len(job.errors) == 3


def test_a_retry_waits_its_interval_scheduled(
    broker: Broker, tmp_path: Path, background: Worker
) -> None:
    job = Queue("default", broker=broker).enqueue(
        timejobs.flaky, str(tmp_path / "m"), 1, retry=Retry(max=1, interval=0.6)
    )
    eventually(lambda: job.get_status() is JobStatus.SCHEDULED)
    scheduled = Queue("default", broker=broker).scheduled_jobs()
    assert [i for i, _ in scheduled] == [job.id]
    eventually(lambda: job.get_status() is JobStatus.FINISHED)
    assert job.result == 2
    ended_first = job.errors[0]
    assert ended_first.type == "ValueError"


def test_intervals_repeat_their_last_and_backoff_grows_to_its_cap() -> None:
    stepped = Retry(max=5, interval=[1, 5, 30])
    assert [stepped.wait(n) for n in range(1, 6)] == [1, 5, 30, 30, 30]
    grows = Retry(max=10, backoff=Backoff(base=1, factor=2, cap=10, jitter=0))
    assert [grows.wait(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    jittered = Retry(max=10, backoff=True)
    assert all(16 <= jittered.wait(6) <= 32 for _ in range(50))  # base 1 * 2**5, jitter 0.5
    assert Retry(max=3, interval="1m").wait(1) == 60


@pytest.mark.parametrize(
    ("policy", "raised", "runs"),
    [
        (Retry(max=3, on=[OSError]), "OSError", 4),  # retried: it is an OSError
        (Retry(max=3, on=[OSError]), "KeyError", 1),  # not in `on`: fails at once
        (Retry(max=3, give_up_on=["KeyError"]), "KeyError", 1),
        (Retry(max=3, on=[LookupError]), "KeyError", 4),  # a subclass matches
    ],
)
def test_which_errors_are_retried(
    broker: Broker, tmp_path: Path, policy: Retry, raised: str, runs: int
) -> None:
    marker = tmp_path / "m"
    job = Queue("default", broker=broker).enqueue(
        timejobs.raise_named, str(marker), raised, retry=policy
    )
    burst(broker)
    assert int(marker.read_text()) == runs
    assert job.get_status() is JobStatus.FAILED and job.tries == runs


def test_no_retry_ends_the_job_at_once(broker: Broker, tmp_path: Path) -> None:
    marker = tmp_path / "m"
    job = Queue("default", broker=broker).enqueue(timejobs.give_up, str(marker), retry=5)
    burst(broker)
    assert marker.read_text() == "1"
    assert job.get_status() is JobStatus.FAILED
    assert job.error is not None and job.error.type == "myrq.retry.NoRetry"


def test_retry_later_asks_for_another_try_after_a_while(
    broker: Broker, tmp_path: Path, background: Worker
) -> None:
    job = Queue("default", broker=broker).enqueue(
        timejobs.later_then_done, str(tmp_path / "m"), 0.4, 2
    )
    eventually(lambda: job.get_status() is JobStatus.FINISHED)
    assert job.result == 3 and job.tries == 2
    assert job.errors[0].message == "not ready on run 1"


def test_a_job_that_cannot_run_is_never_retried(broker: Broker) -> None:
    """A function outside the allow-list fails the same way every time."""
    job = Queue("default", broker=broker).enqueue_call("os.getcwd", retry=5)
    burst(broker)
    assert job.get_status() is JobStatus.FAILED and job.tries == 1
    assert job.error is not None and job.error.type == "FunctionNotAllowed"


def test_retry_comes_from_the_task_then_the_queue_default(broker: Broker, tmp_path: Path) -> None:
    from_task = Queue("default", broker=broker).enqueue(
        timejobs.task_with_retry, str(tmp_path / "a")
    )
    from_queue = Queue("default", broker=broker, default_retry=Retry(max=1)).enqueue(
        timejobs.flaky, str(tmp_path / "b"), 1
    )
    explicit = Queue("default", broker=broker, default_retry=5).enqueue(
        timejobs.flaky, str(tmp_path / "c"), 1, retry=0
    )
    burst(broker)
    assert from_task.get_status() is JobStatus.FINISHED and from_task.result == 3
    assert from_queue.get_status() is JobStatus.FINISHED and from_queue.result == 2
    assert explicit.get_status() is JobStatus.FAILED  # retry=0 given: no retries


# -- scheduled jobs ------------------------------------------------------------------


def test_enqueue_in_runs_the_job_when_due_not_before(
    broker: Broker, tmp_path: Path, background: Worker
) -> None:
    stamps = tmp_path / "stamps"
    asked = time.time()
    job = Queue("default", broker=broker).enqueue_in("800ms", timejobs.stamp, str(stamps))
    assert job.get_status() is JobStatus.SCHEDULED
    eventually(lambda: job.get_status() is JobStatus.FINISHED)
    ran = float(stamps.read_text().split()[0])
    assert 0.75 <= ran - asked < 3  # not early; within a second or two on an idle worker


def test_enqueue_at_takes_an_aware_datetime_and_refuses_a_naive_one(broker: Broker) -> None:
    q = Queue("default", broker=broker)
    job = q.enqueue_at(datetime.now(UTC) + timedelta(hours=1), jobs.add, 1, 2)
    assert job.get_status() is JobStatus.SCHEDULED
    [(job_id, due)] = q.scheduled_jobs()
    assert job_id == job.id and 3500 < due.timestamp() - time.time() < 3700
    with pytest.raises(InvalidJobError, match="naive datetime"):
        q.enqueue_at(datetime.now() + timedelta(hours=1), jobs.add, 1, 2)
    assert job.run_now() and job.get_status() is JobStatus.PENDING
    burst(broker)
    assert job.get_status() is JobStatus.FINISHED


def test_a_wait_longer_than_a_broker_keeps_is_refused_not_cut(broker: Broker) -> None:
    q = Queue("default", broker=broker)
    with pytest.raises(InvalidJobError, match="delay is 50 years away; a job can wait ten"):
        q.enqueue_in(timedelta(days=365 * 50), jobs.add, 1, 2)
    with pytest.raises(InvalidJobError, match="at is 7,9.. years away"):
        q.enqueue_at(datetime(9999, 1, 1, tzinfo=UTC), jobs.add, 1, 2)
    assert q.scheduled_jobs() == []
    nine_years = q.enqueue_in(timedelta(days=365 * 9), jobs.add, 1, 2)
    [(_, due)] = q.scheduled_jobs()
    assert nine_years.get_status() is JobStatus.SCHEDULED
    assert abs(due.timestamp() - time.time() - 365 * 9 * 86400) < 60


def test_a_scheduled_job_can_be_canceled(broker: Broker) -> None:
    q = Queue("default", broker=broker)
    later = q.enqueue_in(3600, jobs.add, 1, 2)
    now = q.enqueue(jobs.add, 3, 4)
    assert later.cancel() and now.cancel()
    assert not later.cancel()  # only once
    assert later.get_status() is JobStatus.CANCELED and now.get_status() is JobStatus.CANCELED
    assert q.scheduled_jobs() == [] and q.count == 0
    assert burst(broker).stats.processed == 0


def test_at_front_jumps_the_queue(broker: Broker) -> None:
    q = Queue("default", broker=broker)
    first = q.enqueue(jobs.add, 1, 1)
    urgent = q.enqueue(jobs.add, 2, 2, at_front=True)
    assert q.job_ids == [urgent.id, first.id]


def test_a_job_not_started_within_its_ttl_is_canceled_not_run(broker: Broker) -> None:
    q = Queue("default", broker=broker)
    job = q.enqueue(jobs.add, 1, 2, ttl=0.2)
    time.sleep(0.35)
    w = burst(broker)
    assert w.stats.processed == 0
    assert job.get_status() is JobStatus.CANCELED
    assert job.error is not None and job.error.type == "JobExpired"
    with pytest.raises(JobFailedError, match="canceled"):
        job.wait(1)


# -- waiting for a result ----------------------------------------------------------------


def test_wait_returns_the_result_as_soon_as_the_job_ends(
    broker: Broker, background: Worker
) -> None:
    job = Queue("default", broker=broker).enqueue(jobs.nap, 0.3, "slept")
    started = time.monotonic()
    assert job.wait(timeout=10) == "slept"
    assert time.monotonic() - started < 2


def test_wait_raises_for_a_failed_job_and_at_its_timeout(
    broker: Broker, background: Worker
) -> None:
    q = Queue("default", broker=broker)
    bad = q.enqueue(jobs.fail, "nope")
    with pytest.raises(JobFailedError) as failed:
        bad.wait(10)
    assert failed.value.job.id == bad.id and failed.value.error.message == "nope"
    background.request_stop()
    time.sleep(0.7)
    idle = Queue("other", broker=broker).enqueue(jobs.add, 1, 1)  # no worker on "other"
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as timed_out:
        idle.wait("300ms")
    assert isinstance(timed_out.value, TimeoutError)
    assert 0.25 < time.monotonic() - started < 3


# -- periodic jobs ---------------------------------------------------------------------


def test_an_interval_schedule_runs_once_per_period(
    broker: Broker, tmp_path: Path, background: Worker
) -> None:
    stamps = tmp_path / "stamps"
    q = Queue("default", broker=broker)
    first = q.cron(1, timejobs.stamp, args=[str(stamps)], name="tick")
    assert first.next_job_id is not None and first.next_job_id.startswith("cron:default:tick:")
    [listed] = q.cron_jobs()
    assert (listed.name, listed.schedule, listed.func_name) == ("tick", 1.0, "tests.timejobs.stamp")
    eventually(lambda: stamps.exists() and len(stamps.read_text().splitlines()) >= 3, 10)
    assert q.remove_cron("tick") and q.cron_jobs() == []
    times = [float(line.split()[0]) for line in stamps.read_text().splitlines()]
    periods = [int(t) for t in times]
    assert len(set(periods)) == len(periods), f"a period ran twice: {times}"


def test_a_cron_expression_is_read_by_croniter_and_bad_ones_are_refused(broker: Broker) -> None:
    q = Queue("default", broker=broker)
    sched = q.cron("0 3 * * *", jobs.add, args=[1, 2], name="nightly", tz="Europe/Paris")
    assert sched.next_run is not None
    paris = sched.next_run.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris"))
    assert (paris.hour, paris.minute) == (3, 0)
    with pytest.raises(InvalidJobError, match="not a cron expression"):
        q.cron("61 * * * *", jobs.add, args=[1, 2])
    with pytest.raises(InvalidJobError, match=r"'0 0 31 2 \*' never fires"):
        q.cron("0 0 31 2 *", jobs.add, args=[1, 2])  # well formed: February 31st
    with pytest.raises(InvalidJobError, match="unknown time zone"):
        q.cron("0 3 * * *", jobs.add, args=[1, 2], tz="Mars/Olympus")
    # Registering the same name again replaces the schedule (and its next job).
    again = q.cron("30 4 * * *", jobs.add, args=[3, 4], name="nightly")
    assert [s.next_job_id for s in q.cron_jobs()] == [again.next_job_id]
    assert [i for i, _ in q.scheduled_jobs()] == [again.next_job_id]


def test_a_run_missed_while_no_worker_ran_runs_once(broker: Broker, tmp_path: Path) -> None:
    stamps = tmp_path / "stamps"
    q = Queue("default", broker=broker)
    q.cron(1, timejobs.stamp, args=[str(stamps)], name="tick")
    time.sleep(3.2)  # three periods pass with no worker
    burst(broker)  # runs the one job that was due; schedules the next one
    assert len(stamps.read_text().splitlines()) == 1
    [(next_id, due)] = q.scheduled_jobs()
    assert 0 < due.timestamp() - time.time() <= 1.01  # the next period, not a missed one
    assert Job.fetch(next_id, broker=broker).get_status() is JobStatus.SCHEDULED
