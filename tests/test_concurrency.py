"""Worker(concurrency=N): async jobs on an event loop, sync jobs in threads, on every broker."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from myrq import ConfigurationError, JobStatus, Queue, Retry, Worker
from myrq.backends import Broker
from tests import asyncjobs, timejobs, workflowjobs
from tests.workflowjobs import CALLS


def spans(path: Path) -> list[tuple[str, float, float]]:
    return [
        (t, float(a), float(b))
        for t, a, b in (line.split() for line in path.read_text().splitlines())
    ]


def most_at_once(runs: list[tuple[str, float, float]]) -> int:
    events = sorted([(a, 1) for _, a, _ in runs] + [(b, -1) for _, _, b in runs])
    now = peak = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


def conc(broker: Broker, n: int = 10, **options: Any) -> Worker:
    return Worker(broker=broker, allow=["tests"], concurrency=n, **options)


@pytest.mark.parametrize("func", ["async_span", "thread_span"])
def test_jobs_run_at_once_up_to_the_limit(broker: Broker, tmp_path: Path, func: str) -> None:
    q = Queue(broker=broker)
    ledger = tmp_path / "ledger"
    jobs = [q.enqueue(f"tests.asyncjobs.{func}", str(ledger), f"j{i}", 0.3) for i in range(12)]
    w = conc(broker, 4)
    w.work(burst=True)
    assert w.stats.finished == 12
    assert [j.get_status() for j in jobs] == [JobStatus.FINISHED] * 12
    peak = most_at_once(spans(ledger))
    assert 2 <= peak <= 4, peak


def test_outcomes_retries_and_callbacks_as_one_at_a_time(broker: Broker, tmp_path: Path) -> None:
    CALLS.clear()
    q = Queue(broker=broker)
    ok = q.enqueue(asyncjobs.async_add, 2, 3, on_success=workflowjobs.on_success)
    failed = q.enqueue(asyncjobs.async_fail, "bad", on_failure=workflowjobs.on_failure)
    flaky = q.enqueue(timejobs.flaky, str(tmp_path / "m"), 1, retry=Retry(max=2))
    coro = q.enqueue(asyncjobs.returns_coroutine)
    current = q.enqueue(asyncjobs.async_current)
    conc(broker).work(burst=True)
    assert ok.wait(timeout=5) == 5 and ("success", ok.id, 5, "finished") in CALLS
    assert failed.get_status() is JobStatus.FAILED
    assert ("failure", failed.id, "ValueError", "bad", True) in CALLS
    assert flaky.wait(timeout=5) == 2 and flaky.tries == 1
    assert coro.get_status() is JobStatus.FAILED and "async def" in (coro.error or "").message
    assert current.wait(timeout=5) == current.id
    CALLS.clear()


@pytest.mark.parametrize("func", ["async_sleep", "sync_sleep", "busy_loop", "async_swallow"])
def test_a_job_past_its_timeout_ends_timeout(
    broker: Broker, func: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from myrq.worker import concurrent

    monkeypatch.setattr(concurrent, "ABANDON_AFTER", 0.3)  # sync_sleep: blocked in C, abandoned
    q = Queue(broker=broker)
    args = (30,) if func not in ("busy_loop", "async_swallow") else (3,)
    slow = q.with_options(timeout=0.3).enqueue(f"tests.asyncjobs.{func}", *args)
    quick = q.enqueue(asyncjobs.async_add, 1, 1)
    w = conc(broker)
    w.work(burst=True)
    assert slow.get_status() is JobStatus.TIMEOUT
    assert quick.get_status() is JobStatus.FINISHED


@pytest.mark.parametrize("func", ["async_pid", "thread_pid"])
def test_stop_ends_a_running_job_stopped(broker: Broker, tmp_path: Path, func: str) -> None:
    marker = tmp_path / "started"
    q = Queue(broker=broker)
    job = q.enqueue(f"tests.asyncjobs.{func}", str(marker), 20)
    other = q.enqueue(asyncjobs.async_sleep, 0.1, "ok")

    def stop() -> None:
        deadline = time.monotonic() + 10
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        job.stop()

    t = threading.Thread(target=stop, daemon=True)
    t.start()
    w = conc(broker, lease_ttl=1)
    w.work(burst=True)
    t.join(5)
    assert job.get_status() is JobStatus.STOPPED and w.stats.stopped == 1
    assert other.get_status() is JobStatus.FINISHED


def test_leases_of_long_concurrent_jobs_are_renewed(broker: Broker) -> None:
    q = Queue(broker=broker)
    jobs = [q.enqueue(asyncjobs.async_sleep, 2.5, i) for i in range(3)]
    jobs += [q.enqueue(asyncjobs.sync_sleep, 2.5, i) for i in range(2)]
    w = conc(broker, lease_ttl=1)
    w.work(burst=True)
    assert w.stats.finished == 5 and w.stats.lost_leases == 0
    assert all(j.get_status() is JobStatus.FINISHED for j in jobs)


def test_a_graceful_shutdown_finishes_running_jobs_and_leaves_the_rest(broker: Broker) -> None:
    q = Queue(broker=broker)
    running = [q.enqueue(asyncjobs.async_sleep, 0.6, i) for i in range(3)]
    w = conc(broker, 3, idle_wait=0.2)
    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
    later = [q.enqueue(asyncjobs.async_sleep, 0.01, i) for i in range(3)]
    w.work()
    assert [j.get_status() for j in running] == [JobStatus.FINISHED] * 3
    assert [j.get_status() for j in later] == [JobStatus.PENDING] * 3


def test_a_shutdown_that_will_not_wait_gives_running_jobs_back(broker: Broker) -> None:
    q = Queue(broker=broker)
    jobs = [q.enqueue(asyncjobs.async_sleep, 30, i) for i in range(2)]
    jobs.append(q.enqueue(asyncjobs.busy_loop, 30))
    w = conc(broker, 3, grace_period=0.3)
    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
    started = time.monotonic()
    w.work()
    assert time.monotonic() - started < 10
    assert [j.get_status() for j in jobs] == [JobStatus.PENDING] * 3
    assert q.count == 3


def test_concurrency_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="concurrency must be"):
        Worker(broker="memory://", concurrency=0)
    with pytest.raises(ConfigurationError, match="cannot be combined"):
        Worker(broker="memory://", concurrency=4, isolate=True)


def test_jobs_of_one_concurrency_key_run_one_at_a_time(broker: Broker, tmp_path: Path) -> None:
    q = Queue(broker=broker)
    ledger = tmp_path / "ledger"
    keyed = q.with_options(concurrency_key="import:42")
    for i in range(4):
        keyed.enqueue(asyncjobs.async_span, str(ledger), f"k{i}", 0.1)
    for i in range(4):
        q.enqueue(asyncjobs.async_span, str(ledger), f"free{i}", 0.1)
    conc(broker, 8).work(burst=True)
    runs = spans(ledger)
    assert len(runs) == 8
    assert most_at_once([r for r in runs if r[0].startswith("k")]) == 1
    assert most_at_once([r for r in runs if r[0].startswith("free")]) > 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"concurrency_key": ""}, "1-200 characters"),
        ({"concurrency_key": 7}, "must be a str"),
        ({"concurrency_key": "k", "concurrency_limit": 0}, "from 1 to 10000"),
        ({"concurrency_limit": 2}, "needs a concurrency_key"),
    ],
)
def test_concurrency_key_options_are_checked(
    broker: Broker, options: dict[str, Any], message: str
) -> None:
    from myrq import InvalidJobError

    with pytest.raises(InvalidJobError, match=message):
        Queue(broker=broker).with_options(**options).enqueue(asyncjobs.async_add, 1, 2)


def test_an_async_job_run_eagerly_from_async_code(broker: Broker) -> None:
    import asyncio

    q = Queue(broker=broker, eager=True)

    async def view() -> int:
        return q.enqueue(asyncjobs.async_add, 2, 5).result  # an eager enqueue in an async view

    assert asyncio.run(view()) == 7
