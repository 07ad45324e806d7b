"""Fault injection against real processes and a real redis-server.

- chaos: worker processes SIGKILLed about every second while they drain a few
  thousand jobs; no job is lost, duplicates stay bounded by the kills;
- fencing: a worker SIGSTOPped past its lease cannot overwrite the outcome
  another worker recorded, nor re-create a deleted job;
- Redis kill -9 with ``appendfsync always``: no acknowledged enqueue is lost,
  enqueues during the outage raise BrokerConnectionError, workers reconnect.

Each test owns every process it starts (``WorkerPool`` and ``RedisServer``
kill and reap them on every path). ``benchmarks/reliability.py`` measures the
same scenarios with more samples.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from myrq import Job, JobStatus, Queue, Worker
from myrq.backends import RedisBroker
from myrq.exceptions import BrokerConnectionError
from myrq.testing.redis_server import RedisServer, RedisServerNotFound, require_server
from tests.faultjobs import (
    WorkerPool,
    read_ledger,
    read_starts,
    run_chaos,
    statuses,
    wait_for,
)


@pytest.fixture
def rbroker(redis_client: redis.Redis, redis_server: RedisServer) -> RedisBroker:
    return RedisBroker(redis_client, url=redis_server.url)


# -- chaos -------------------------------------------------------------------------


@pytest.mark.slow
def test_chaos_sigkilled_workers_lose_no_job(
    redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    seed = int(os.environ.get("MYRQ_CHAOS_SEED") or random.randrange(1 << 30))
    report = run_chaos(redis_server.url, tmp_path, jobs=2500, lease_ttl=2.0, seed=seed)
    print(f"chaos (MYRQ_CHAOS_SEED={seed}): {report.summary()}")
    for token, n in report.duplicates.items():
        print(f"  duplicate: {token} written {n} times")
    assert report.kills >= 5, "the run ended before the chaos got going"
    assert report.missing_tokens == [], "jobs that never wrote their token"
    assert report.not_finished == {}, "job records that did not end finished"
    # A kill re-runs the job that was running plus the quick jobs whose outcomes
    # it held to write together: at most `prefetch` (16) in all. Each lease a
    # live worker lost (e.g. starved of CPU) can make one more job run twice.
    extra_runs = sum(n - 1 for n in report.duplicates.values())
    assert extra_runs <= report.kills * Worker(["x"], broker="memory://").settings.prefetch + (
        report.lost_lease_warnings
    )
    assert report.error_lines == []
    assert redis_client.zcard("myrq:leases") == 0
    assert redis_client.llen("myrq:queue:chaos") == 0


# -- fencing -------------------------------------------------------------------------


def _lease_expired(client: redis.Redis, job_id: str) -> bool:
    deadline = client.zscore("myrq:leases", job_id)
    secs, usecs = client.time()
    return deadline is not None and deadline < secs * 1000 + usecs // 1000


@pytest.mark.slow
def test_stopped_worker_past_its_lease_cannot_overwrite_the_outcome(
    rbroker: RedisBroker, redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    starts = tmp_path / "starts"
    q = Queue("fence", broker=rbroker, result_ttl=-1)
    job = q.enqueue_call("tests.faultjobs.record_start", (str(starts), 3.0))
    key = f"myrq:job:{job.id}"
    with WorkerPool(redis_server.url, "fence", tmp_path, 1.0) as pool:
        a = pool.spawn()
        wait_for(lambda: read_starts(starts), 20, "worker A to start the job")
        a.proc.send_signal(signal.SIGSTOP)
        wait_for(lambda: _lease_expired(redis_client, job.id), 10, "A's lease to expire")
        b = Worker(["fence"], broker=rbroker, name="worker-B", lease_ttl=5)
        assert b.work(burst=True) == 1  # reaps A's lease, then runs the job itself
        written = redis_client.hgetall(key)
        assert written[b"status"] == b"finished"
        assert written[b"worker"] == b"worker-B"
        assert Job.fetch(job.id, broker=rbroker).result == f"pid {os.getpid()}"
        assert written[b"attempts"] == b"2"
        a.proc.send_signal(signal.SIGCONT)
        wait_for(lambda: f"lost its lease on job {job.id}" in a.output(), 20, "A's late finish")
        assert redis_client.hgetall(key) == written  # as B wrote it: result and worker
        assert redis_client.ttl(key) == -1
        assert redis_client.zscore("myrq:leases", job.id) is None
        assert redis_client.llen("myrq:queue:fence") == 0
        # A survived its lost lease and goes on working.
        after = q.enqueue_call("tests.jobs.add", (2, 3))
        wait_for(lambda: after.get_status() is JobStatus.FINISHED, 20, "A to run another job")
        assert after.worker_name == a.name
        assert a.proc.poll() is None
    assert [pid for _, pid in read_starts(starts)] == [a.pid, os.getpid()]


@pytest.mark.slow
def test_stopped_worker_cannot_resurrect_a_deleted_job(
    rbroker: RedisBroker, redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    starts = tmp_path / "starts"
    q = Queue("fence", broker=rbroker, result_ttl=-1)
    job = q.enqueue_call("tests.faultjobs.record_start", (str(starts), 1.5))
    key = f"myrq:job:{job.id}"
    with WorkerPool(redis_server.url, "fence", tmp_path, 1.0) as pool:
        a = pool.spawn()
        wait_for(lambda: read_starts(starts), 20, "worker A to start the job")
        a.proc.send_signal(signal.SIGSTOP)
        time.sleep(0.1)
        assert redis_client.hget(key, "worker") == a.name.encode()
        assert job.delete()
        time.sleep(1.2)  # A's lease would have expired by now, too
        a.proc.send_signal(signal.SIGCONT)
        wait_for(lambda: f"lost its lease on job {job.id}" in a.output(), 20, "A's late finish")
        time.sleep(0.7)  # two more heartbeats (renew and reap) of A
        assert not redis_client.exists(key)
        assert redis_client.zscore("myrq:leases", job.id) is None
        assert redis_client.llen("myrq:queue:fence") == 0
        assert a.proc.poll() is None
    assert len(read_starts(starts)) == 1


# -- Redis kill -9 -------------------------------------------------------------------


def _private_server(appendfsync: str | None) -> RedisServer:
    try:
        return RedisServer(appendfsync=appendfsync)
    except RedisServerNotFound as exc:
        if require_server():
            pytest.fail(f"MYRQ_REQUIRE_REDIS_SERVER is set but {exc}")
        pytest.skip(str(exc))


class _Producer(threading.Thread):
    """Enqueues ledger jobs with ids p-00000, p-00001, ... until stopped, and
    records for each call when it started and ended and what it returned."""

    def __init__(self, url: str, ledger: Path) -> None:
        super().__init__(name="producer", daemon=True)
        self.url = url
        self.ledger = ledger
        self.calls: list[tuple[str, float, float, str]] = []  # id, start, end, outcome
        self.halt = threading.Event()

    def run(self) -> None:
        broker = RedisBroker.from_url(self.url)
        q = Queue("aof", broker=broker, result_ttl=-1)
        i = 0
        while not self.halt.is_set():
            job_id = f"p-{i:05d}"
            i += 1
            started = time.monotonic()
            try:
                q.enqueue_call("tests.faultjobs.ledger_write", (str(self.ledger), job_id),
                               job_id=job_id)  # fmt: skip
                outcome = "ok"
            except BrokerConnectionError:
                outcome = "BrokerConnectionError"
            except Exception as exc:  # anything else is a finding
                outcome = f"{type(exc).__name__}: {exc}"
            self.calls.append((job_id, started, time.monotonic(), outcome))
            self.halt.wait(0.004)
        broker.close()


@pytest.mark.slow
def test_redis_kill_9_with_appendfsync_always_loses_no_acknowledged_enqueue(
    tmp_path: Path,
) -> None:
    server = _private_server(appendfsync="always")
    ledger = tmp_path / "ledger.txt"
    producer = _Producer(server.url, ledger)
    client: redis.Redis | None = None
    try:
        server.start()
        client = redis.Redis.from_url(server.url)
        with WorkerPool(server.url, "aof", tmp_path, 2.0) as pool:
            workers = [pool.spawn(), pool.spawn()]
            producer.start()
            wait_for(lambda: len(read_ledger(ledger)) >= 200, 30, "jobs to run before the kill")
            kill_started = time.monotonic()
            server.kill()  # SIGKILL, mid-run: the producer and workers are busy
            killed = time.monotonic()
            time.sleep(1.5)
            restart_started = time.monotonic()
            server.restart()
            restarted = time.monotonic()
            acked_before = [c[0] for c in producer.calls if c[3] == "ok" and c[2] < kill_started]
            # Every enqueue acknowledged before the kill is in the reloaded data.
            assert acked_before and None not in statuses(client, acked_before)
            time.sleep(4)  # produce on the restarted server
            producer.halt.set()
            producer.join(timeout=10)
            acked = [c[0] for c in producer.calls if c[3] == "ok"]
            wait_for(lambda: statuses(client, acked).count(b"finished") == len(acked), 60,
                     "every acknowledged job to finish", step=0.2)  # fmt: skip
            assert [w.proc.poll() for w in workers] == [None, None], "a worker died"
            post_restart = [c[0] for c in producer.calls if c[3] == "ok" and c[1] > restarted]
            pipe = client.pipeline(transaction=False)
            for job_id in post_restart:
                pipe.hget(f"myrq:job:{job_id}", "worker")
            ran_after = {w.decode() for w in pipe.execute()}
            output = pool.all_output()
        outcomes = {c[3] for c in producer.calls}
        print(f"{len(producer.calls)} enqueue calls: {len(acked)} acknowledged, "
              f"{len(producer.calls) - len(acked)} raised; {len(post_restart)} after the restart, "
              f"run by {sorted(ran_after)}")  # fmt: skip
        assert outcomes <= {"ok", "BrokerConnectionError"}, outcomes
        during = [c for c in producer.calls if c[1] > killed and c[2] < restart_started]
        assert during, "no enqueue was tried during the outage"
        assert {c[3] for c in during} == {"BrokerConnectionError"}
        written = read_ledger(ledger)
        assert [t for t in acked if t not in written] == []  # every acknowledged job ran
        # Both workers reconnected by themselves and ran jobs enqueued after the restart.
        assert ran_after == {w.name for w in workers}
        assert "could not take a job" in output  # they did see the outage
    finally:
        producer.halt.set()
        if producer.is_alive():
            producer.join(timeout=10)
        if client is not None:
            client.close()
        server.stop()


# -- a reply lost after Redis ran the step ---------------------------------------------


class _DropsOneFinishReply(redis.Redis):
    """A client that lets Redis run the first script that records an outcome
    (its arguments name the ``ended_at`` field), then raises as if the
    connection dropped before the reply arrived: what a redis-server kill -9
    between its fsync and its reply, or a network cut, does."""

    dropped = False

    def execute_command(self, *args: Any, **options: Any) -> Any:
        result = super().execute_command(*args, **options)
        if not self.dropped and args[0] == "EVALSHA" and "ended_at" in args:
            self.dropped = True
            raise redis.ConnectionError("connection lost before the reply (simulated)")
        return result


def test_finish_whose_reply_was_lost_is_not_reported_as_a_lost_lease(
    redis_server: RedisServer, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    client = _DropsOneFinishReply.from_url(redis_server.url)
    broker = RedisBroker(client, url=redis_server.url)
    job = Queue("default", broker=broker).enqueue_call("tests.jobs.add", (2, 3))
    worker = Worker(["default"], broker=broker, lease_ttl=2)
    worker.work(burst=True)
    assert job.get_status() is JobStatus.FINISHED and job.result == 5  # the record is right
    assert "lost its lease" not in caplog.text
    assert client.dropped
    assert (worker.stats.finished, worker.stats.lost_leases) == (1, 0)
    client.close()
