"""Prefetching: quick jobs are claimed and recorded in batches, without losing count."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from myrq import JobStatus, Queue, Worker
from myrq.backends import Broker, RedisBroker
from myrq.testing.redis_server import RedisServer
from tests import jobs

ROOT = Path(__file__).resolve().parent.parent


def test_quick_jobs_are_claimed_in_batches(broker: Broker) -> None:
    q = Queue("default", broker=broker)
    batch = [q.enqueue(jobs.add, i, i) for i in range(40)]
    w = Worker(["default"], broker=broker, prefetch=8)
    assert w.work(burst=True) == 40
    assert all(j.get_status() is JobStatus.FINISHED for j in batch)
    assert [j.result for j in batch] == [2 * i for i in range(40)]
    batched = sum(1 for j in batch if j.fields.get("batch") == b"1")
    assert batched >= 30, batched  # all but the first claims, which start at one
    assert all(j.attempts == 1 for j in batch)
    assert broker.leased_ids() == []


def test_prefetch_one_and_slow_jobs_claim_one_at_a_time(broker: Broker) -> None:
    q = Queue("default", broker=broker)
    quick = [q.enqueue(jobs.add, i, i) for i in range(5)]
    Worker(["default"], broker=broker, prefetch=1).work(burst=True)
    slow = [q.enqueue(jobs.nap, 0.02, i) for i in range(4)]
    Worker(["default"], broker=broker, prefetch=16).work(burst=True)
    for job in quick + slow:
        assert job.get_status() is JobStatus.FINISHED
        assert job.fields.get("batch") == b"0", job


def test_prefetched_jobs_go_back_first_and_uncounted_on_stop(broker: Broker) -> None:
    q = Queue("default", broker=broker)
    before = [q.enqueue(jobs.add, i, i) for i in range(3)]
    stopper = q.enqueue(jobs.stop_worker)
    after = [q.enqueue(jobs.add, i, i) for i in range(6)]
    w = Worker(["default"], broker=broker, prefetch=16)
    jobs.WORKER = w
    try:
        w.work()
    finally:
        jobs.WORKER = None
    assert all(j.get_status() is JobStatus.FINISHED for j in [*before, stopper])
    for job in after:
        assert job.get_status() is JobStatus.PENDING
        assert job.attempts == 0
    assert broker.queued_ids("default") == [j.id for j in after]
    assert broker.leased_ids() == []


@pytest.mark.slow
def test_a_job_that_kills_its_worker_in_a_batch_spares_the_others(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    broker = RedisBroker.from_url(redis_server.url)
    broker.client.flushall()
    q = Queue("default", broker=broker)
    # Ids sort in this order, which fixes the order a reap requeues them in.
    warm = q.enqueue(jobs.add, 1, 1, job_id="0-warm")
    poison = q.enqueue(jobs.hard_exit, 1, job_id="1-poison")
    innocents = [q.enqueue(jobs.add, i, i, job_id=f"2-innocent-{i}") for i in range(5)]
    deaths = 0
    try:
        for _ in range(6):
            proc = subprocess.run(
                [sys.executable, "-m", "myrq", "worker", "default", "--burst",
                 "--broker", redis_server.url, "--lease-ttl", "1", "--max-attempts", "2"],
                cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            deaths += proc.returncode == 1
            if poison.get_status() is JobStatus.FAILED:
                break
            time.sleep(1.3)  # let the dead worker's leases expire
        # Death 1 held the poison in a batch with the innocents: nobody is counted.
        # Deaths 2 and 3 ran it alone: counted, and the second one abandons it.
        assert deaths == 3, deaths
        assert poison.get_status() is JobStatus.FAILED
        assert poison.error is not None and "abandoned" in poison.error.message
        assert poison.attempts == 2
        assert warm.get_status() is JobStatus.FINISHED
        for job in innocents:
            assert job.get_status() is JobStatus.FINISHED, job
            assert job.attempts == 1, job.fields
    finally:
        broker.client.flushall()
        broker.close()


def test_outcomes_held_for_a_batch_are_written_before_a_slow_job_starts(broker: Broker) -> None:
    q = Queue("default", broker=broker)
    quick = [q.enqueue(jobs.add, i, i) for i in range(5)]
    checker = q.enqueue(jobs.statuses, [j.id for j in quick])
    jobs.BROKER = broker
    try:
        Worker(["default"], broker=broker, prefetch=16).work(burst=True)
    finally:
        jobs.BROKER = None
    # The checker (a function not seen before, so maybe slow) saw every earlier
    # outcome already written, not held back for its own duration.
    assert checker.get_status() is JobStatus.FINISHED
    assert checker.result == ["finished"] * 5
    assert any((broker.get(j.id) or {}).get("batch") == b"1" for j in quick)


def test_unwritten_outcomes_keep_their_leases_while_a_job_runs_long(broker: Broker) -> None:
    q = Queue("default", broker=broker)
    first = q.enqueue(jobs.nap, 0, "a")
    held = q.enqueue(jobs.nap, 0, "b")  # quick: its outcome is held back...
    long = q.enqueue(jobs.nap, 2.5, "c")  # ...while this one, of a quick function, runs long
    w = Worker(["default"], broker=broker, prefetch=16, lease_ttl=1)
    assert w.work(burst=True) == 3
    assert w.stats.lost_leases == 0
    for job, value in ((first, "a"), (held, "b"), (long, "c")):
        assert job.get_status() is JobStatus.FINISHED and job.result == value
        assert job.attempts == 1
