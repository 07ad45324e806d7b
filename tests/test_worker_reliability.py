"""Worker faults of the reliability audit: stuck leases, clocks, the registry, settings."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from myrq import ConfigurationError, Job, JobStatus, Queue, Worker
from myrq.backends import Broker, Delivery, MemoryBroker
from myrq.worker.heartbeat import Heartbeat
from myrq.worker.outbox import Outbox
from tests import jobs


@pytest.fixture
def background() -> Iterator[list[Worker]]:
    """Workers started with start(); stopped and joined at the end of the test."""
    started: list[tuple[Worker, threading.Thread]] = []

    class Starter(list[Worker]):
        def append(self, w: Worker) -> None:
            t = threading.Thread(target=w.work, daemon=True)
            t.start()
            started.append((w, t))
            super().append(w)

    yield Starter()
    for w, t in started:
        w.request_stop()
        t.join(timeout=15)
        assert not t.is_alive()


def _wait(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def test_a_job_dropped_after_an_internal_error_is_not_renewed_forever(
    broker: Broker,
    background: list[Worker],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The job's lease must run out so that it runs again, not stay leased to an idle worker."""
    job = Queue("default", broker=broker).enqueue(jobs.add, 1, 2)
    real_add = Outbox.add
    failed: list[str] = []

    def add_once_broken(self: Outbox, delivery: Delivery, outcome: Any) -> Any:
        if not failed:
            failed.append(delivery.job_id)
            raise RuntimeError("a bug in the worker")
        return real_add(self, delivery, outcome)

    monkeypatch.setattr(Outbox, "add", add_once_broken)
    with caplog.at_level(logging.WARNING, logger="myrq.worker"):
        background.append(Worker(["default"], broker=broker, lease_ttl=1, idle_wait=0.1))
        _wait(lambda: job.get_status() is JobStatus.FINISHED, 10, "the job to run again")
    assert failed == [job.id] and job.result == 3 and job.attempts == 2
    assert "error while handling job" in caplog.text


def test_a_lease_not_renewed_because_its_job_just_ended_is_not_reported_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Refuses(MemoryBroker):
        def renew_many(self, held: Any, lease: float) -> list[bool]:
            return [False for _ in held]

    delivery = Delivery("a", "q", "token", {})
    answers = [[delivery], []]  # held when the beat starts, written by the time it checks
    beat = Heartbeat(
        Refuses(), "w", lease_ttl=30, max_attempts=3, failure_ttl=None, held=lambda: answers.pop(0)
    )
    beat.renew()
    assert "was lost" not in caplog.text
    answers[:] = [[delivery], [delivery]]  # still held: that is a real loss
    beat.renew()
    assert "lease on job a was lost" in caplog.text


@pytest.mark.parametrize("lease_ttl", [1e12, float("inf"), 0.5])
def test_a_lease_ttl_out_of_range_is_refused(lease_ttl: float) -> None:
    with pytest.raises(ConfigurationError, match="lease_ttl"):
        Worker(["default"], broker="memory://", lease_ttl=lease_ttl)


def test_ended_at_is_on_the_brokers_clock_whatever_the_workers_clock_says(
    redis_server: Any, redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker an hour behind must not record a job that ended before it started."""
    from myrq.backends import RedisBroker

    broker = RedisBroker(redis_client, url=redis_server.url)
    job = Queue("default", broker=broker).enqueue(jobs.nap, 0.2)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 3600)
    Worker(["default"], broker=broker).work(burst=True)
    monkeypatch.setattr(time, "time", real)
    job.refresh()
    assert job.started_at is not None and job.ended_at is not None
    assert 0.15 < (job.ended_at - job.started_at).total_seconds() < 5


def test_a_running_worker_is_registered_and_gone_when_it_stops(
    broker: Broker, background: list[Worker]
) -> None:
    job = Queue("default", broker=broker).enqueue(jobs.nap, 1.5)
    w = Worker(["default", "other"], broker=broker, lease_ttl=1, name="w-registered")
    background.append(w)
    _wait(lambda: job.get_status() is JobStatus.RUNNING, 10, "the job to start")
    _wait(lambda: broker.workers().get("w-registered", {}).get("job") == job.id.encode(), 5, "x")
    record = broker.workers()["w-registered"]
    assert record["queues"] == b"default,other" and record["pid"].isdigit()
    _wait(lambda: job.get_status() is JobStatus.FINISHED, 10, "the job to end")
    _wait(lambda: broker.workers()["w-registered"]["finished"] == b"1", 5, "the count")
    w.request_stop()
    _wait(lambda: "w-registered" not in broker.workers(), 15, "the worker to unregister")


def test_job_shows_where_its_lease_stands(broker: Broker) -> None:
    q = Queue("default", broker=broker)
    job = q.enqueue(jobs.add, 1, 1)
    [d] = broker.dequeue(["default"], "w", 30)
    fetched = Job.fetch(job.id, broker=broker)
    deadline = fetched.lease_expires_at()
    assert deadline is not None and 20 < (deadline.timestamp() - time.time()) < 40
    assert d.claimed
    assert broker.finish(job.id, d.token or "", {"status": b"finished"}, None)
    assert fetched.lease_expires_at() is None
