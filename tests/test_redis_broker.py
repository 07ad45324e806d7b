"""Redis-specific behaviour, on a real redis-server started by the test session.

Covers the original design's key scheme and interoperability, and each of its
defects: jobs lost by BLPOP when a worker dies, queued jobs expiring after an
hour, the alarm never cleared (see test_queue_worker), hmset, half-written
enqueues.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from myrq import BrokerError, Job, JobExistsError, JobStatus, Queue, Worker, configure
from myrq.backends import RedisBroker
from myrq.backends.redis import NOTIFY_CAP
from myrq.config import get_broker
from myrq.testing.redis_server import RedisServer
from tests import jobs

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def rbroker(redis_client: redis.Redis, redis_server: RedisServer) -> Iterator[RedisBroker]:
    b = RedisBroker(redis_client, url=redis_server.url)
    yield b


def test_job_is_a_hash_and_queue_a_list_of_ids(
    rbroker: RedisBroker, redis_client: redis.Redis
) -> None:
    job = Queue("default", broker=rbroker).enqueue(jobs.add, 1, 2)
    key = f"myrq:job:{job.id}"
    assert redis_client.type(key) == b"hash"
    record = redis_client.hgetall(key)
    assert json.loads(record[b"func"]) == {
        "func_name": "tests.jobs.add",
        "args": [1, 2],
        "kwargs": {},
    }
    assert record[b"status"] == b"pending"
    assert record[b"timeout"] == b"180"
    assert abs(float(record[b"created_at"]) - time.time()) < 60
    assert redis_client.lrange("myrq:queue:default", 0, -1) == [job.id.encode()]


def test_queued_and_running_jobs_never_expire(
    rbroker: RedisBroker, redis_client: redis.Redis
) -> None:
    job = Queue("default", broker=rbroker).enqueue(jobs.add, 1, 2)
    assert redis_client.ttl(f"myrq:job:{job.id}") == -1  # queued: no TTL
    [d] = rbroker.dequeue(["default"], "w", 30)
    assert redis_client.ttl(f"myrq:job:{job.id}") == -1  # running: no TTL
    assert d.token is not None


def test_ttl_applies_once_finished_or_failed(
    rbroker: RedisBroker, redis_client: redis.Redis
) -> None:
    q = Queue("default", broker=rbroker, result_ttl=500, failure_ttl=9000)
    ok, bad, forever = (
        q.enqueue(jobs.add, 1, 2),
        q.enqueue(jobs.fail, "x"),
        q.enqueue(jobs.add, 1, 1, job_result_ttl=-1),
    )
    Worker(["default"], broker=rbroker).work(burst=True)
    assert 490 <= redis_client.ttl(f"myrq:job:{ok.id}") <= 500
    assert 8990 <= redis_client.ttl(f"myrq:job:{bad.id}") <= 9000
    assert redis_client.ttl(f"myrq:job:{forever.id}") == -1


def test_key_prefix_comes_from_config(redis_server: RedisServer, redis_client: redis.Redis,
                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("MYRQ_KEY_PREFIX", "app1:")
    configure(broker=redis_server.url)
    job = Queue("default").enqueue(jobs.add, 1, 2)
    assert redis_client.exists(f"app1:job:{job.id}") and redis_client.llen("app1:queue:default")
    assert not redis_client.exists(f"myrq:job:{job.id}")
    assert isinstance(get_broker(), RedisBroker) and get_broker().prefix == "app1:"  # type: ignore[attr-defined]


def _seed_enqueue(client: redis.Redis, job_id: str, func_name: str, args: list[object]) -> None:
    """Enqueue exactly as the original design's client did (minus its hmset/expire)."""
    client.hset(
        f"myrq:job:{job_id}",
        mapping={
            "created_at": int(time.time()),
            "func": json.dumps({"func_name": func_name, "args": args, "kwargs": {}}),
            "status": "pending",
            "timeout": 60,
        },
    )
    client.rpush("myrq:queue:default", job_id)


def test_job_in_the_original_format_is_run(rbroker: RedisBroker, redis_client: redis.Redis) -> None:
    _seed_enqueue(redis_client, "seed-ok", "tests.jobs.add", [2, 3])
    _seed_enqueue(redis_client, "seed-bad", "tests.jobs.fail", ["from seed"])
    assert Worker(["default"], broker=rbroker).work(burst=True) == 2
    ok, bad = Job.fetch("seed-ok", broker=rbroker), Job.fetch("seed-bad", broker=rbroker)
    assert ok.status is JobStatus.FINISHED and ok.result == 5
    assert redis_client.hget("myrq:job:seed-ok", "status") == b"finished"
    assert bad.status is JobStatus.FAILED
    assert bad.error is not None and bad.error.message == "from seed"


def test_claim_removes_an_expiry_a_foreign_client_set(
    rbroker: RedisBroker, redis_client: redis.Redis
) -> None:
    _seed_enqueue(redis_client, "seed-ttl", "tests.jobs.add", [1, 1])
    redis_client.expire("myrq:job:seed-ttl", 3600)  # what the original design did
    rbroker.dequeue(["default"], "w", 30)
    assert redis_client.ttl("myrq:job:seed-ttl") == -1  # cannot vanish while running


def test_seed_job_without_timeout_gets_the_workers_default(
    rbroker: RedisBroker, redis_client: redis.Redis
) -> None:
    _seed_enqueue(redis_client, "seed-slow", "tests.jobs.nap", [5])
    redis_client.hdel("myrq:job:seed-slow", "timeout")
    Worker(["default"], broker=rbroker, default_timeout=0.3).work(burst=True)
    assert Job.fetch("seed-slow", broker=rbroker).status is JobStatus.TIMEOUT


def test_id_whose_key_is_not_a_hash_is_dropped_and_the_worker_goes_on(
    rbroker: RedisBroker, redis_client: redis.Redis
) -> None:
    redis_client.set("myrq:job:weird", "a string")
    redis_client.rpush("myrq:queue:default", "weird")
    job = Queue("default", broker=rbroker).enqueue(jobs.add, 1, 2)
    w = Worker(["default"], broker=rbroker)
    assert w.work(burst=True) == 1
    assert w.stats.skipped == 1
    assert redis_client.get("myrq:job:weird") == b"a string"  # left alone
    assert job.get_status() is JobStatus.FINISHED


def test_worker_survives_a_broken_queue_key(
    rbroker: RedisBroker, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    import threading

    redis_client.set("myrq:queue:high", "not a list")
    job = Queue("default", broker=rbroker).enqueue(jobs.add, 1, 2)
    w = Worker(["high", "default"], broker=rbroker, idle_wait=0.2)
    t = threading.Thread(target=w.work)
    with caplog.at_level("WARNING", logger="myrq.worker"):
        t.start()
        time.sleep(0.5)
        assert t.is_alive() and job.get_status() is JobStatus.PENDING
        redis_client.delete("myrq:queue:high")  # the operator repairs the key
        _wait_for(lambda: job.get_status() is JobStatus.FINISHED, 10, "the job to run")
        w.request_stop()
        t.join(timeout=10)
    assert "WRONGTYPE" in caplog.text


def test_idle_worker_notices_a_foreign_push_within_the_poll_interval(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    import threading

    broker = RedisBroker(redis_client, url=redis_server.url, poll_interval=0.2)
    w = Worker(["default"], broker=broker, idle_wait=5)
    t = threading.Thread(target=w.work)
    t.start()
    time.sleep(0.3)
    _seed_enqueue(redis_client, "seed-late", "tests.jobs.add", [1, 1])
    deadline = time.monotonic() + 5
    while redis_client.hget("myrq:job:seed-late", "status") != b"finished":
        assert time.monotonic() < deadline, "worker did not pick up the foreign job"
        time.sleep(0.02)
    w.request_stop()
    t.join(timeout=10)


def test_enqueue_is_all_or_nothing(rbroker: RedisBroker, redis_client: redis.Redis) -> None:
    redis_client.set("myrq:queue:broken", "not a list")
    with pytest.raises(BrokerError, match="WRONGTYPE"):
        Queue("broken", broker=rbroker).enqueue_call(jobs.add, (1, 2), job_id="half")
    assert not redis_client.exists("myrq:job:half")  # no job hash without its queue entry


def test_claim_moves_the_id_into_the_leases_set_in_one_step(
    rbroker: RedisBroker, redis_client: redis.Redis
) -> None:
    job = Queue("default", broker=rbroker).enqueue(jobs.add, 1, 2)
    [d] = rbroker.dequeue(["default"], "w", 30)
    assert redis_client.llen("myrq:queue:default") == 0
    score = redis_client.zscore("myrq:leases", job.id)
    assert score is not None and score > time.time() * 1000
    assert d.token == redis_client.hget(f"myrq:job:{job.id}", "lease").decode()  # type: ignore[union-attr]


@contextmanager
def _worker_process(url: str, *extra: str) -> Iterator[subprocess.Popen[bytes]]:
    """A `myrq worker` process on queue default; killed and reaped on exit, whatever happens."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "myrq", "worker", "default", "--broker", url, *extra],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def _wait_for(pred: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
def test_job_of_a_killed_worker_runs_again(
    rbroker: RedisBroker, redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    marker = tmp_path / "first-attempt"
    job = Queue("default", broker=rbroker).enqueue(jobs.slow_on_first_attempt, str(marker), 60)
    with _worker_process(redis_server.url, "--lease-ttl", "1") as proc:
        _wait_for(marker.exists, 20, "the first attempt to start")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    # The original design lost the job here: BLPOP had removed it from Redis.
    assert job.get_status() is JobStatus.RUNNING
    assert redis_client.zscore("myrq:leases", job.id) is not None
    time.sleep(1.2)  # let the dead worker's lease expire
    w = Worker(["default"], broker=rbroker, lease_ttl=5)
    assert w.work(burst=True) == 1
    assert job.get_status() is JobStatus.FINISHED
    assert job.result == "second" and job.attempts == 2


@pytest.mark.slow
def test_sigterm_lets_the_current_job_finish_then_exits_cleanly(
    rbroker: RedisBroker, redis_server: RedisServer
) -> None:
    q = Queue("default", broker=rbroker)
    running = q.enqueue(jobs.nap, 1.5, "completed")
    waiting = q.enqueue(jobs.add, 1, 2)
    with _worker_process(redis_server.url) as proc:
        _wait_for(lambda: running.get_status() is JobStatus.RUNNING, 20, "the job to start")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out.decode()
    assert running.get_status() is JobStatus.FINISHED and running.result == "completed"
    assert waiting.get_status() is JobStatus.PENDING  # not taken after the signal
    assert b"got SIGTERM" in out


@pytest.mark.slow
def test_second_signal_puts_the_running_job_back(
    rbroker: RedisBroker, redis_server: RedisServer
) -> None:
    job = Queue("default", broker=rbroker).enqueue(jobs.nap, 60)
    with _worker_process(redis_server.url) as proc:
        _wait_for(lambda: job.get_status() is JobStatus.RUNNING, 20, "the job to start")
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out.decode()
    assert job.get_status() is JobStatus.PENDING
    assert job.attempts == 0  # an interrupted attempt is not counted
    assert Queue("default", broker=rbroker).job_ids == [job.id]


def test_commands_used_per_job_exclude_hmset_and_expire_while_queued(
    rbroker: RedisBroker, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    q = Queue("default", broker=rbroker)
    Worker(["default"], broker=rbroker).work(burst=True)  # load the scripts first
    redis_client.config_resetstat()
    for i in range(10):
        q.enqueue(jobs.add, i, i)
    Worker(["default"], broker=rbroker).work(burst=True)
    stats = redis_client.info("commandstats")
    assert "cmdstat_hmset" not in stats  # deprecated; the original design used it
    assert "cmdstat_expire" not in stats  # no expiry while queued (finish uses PEXPIRE)
    # Once per job at finish, and once per claim call for its claim record.
    assert 10 < stats["cmdstat_pexpire"]["calls"] <= 20
    assert capsys.readouterr().out == ""  # the worker logs, it never prints


def test_delete_skips_broken_queue_keys_and_finds_unregistered_queues(
    rbroker: RedisBroker, redis_client: redis.Redis
) -> None:
    job = Queue("default", broker=rbroker).enqueue(jobs.add, 1, 2)
    redis_client.sadd("myrq:queues", "broken")
    redis_client.set("myrq:queue:broken", "not a list")
    # A foreign client pushed the id to a queue it never registered in myrq:queues.
    redis_client.hset(f"myrq:job:{job.id}", "queue", "foreign")
    redis_client.rpush("myrq:queue:foreign", job.id)
    assert rbroker.delete(job.id)
    assert not redis_client.exists(f"myrq:job:{job.id}")
    assert redis_client.lrange("myrq:queue:default", 0, -1) == []
    assert redis_client.lrange("myrq:queue:foreign", 0, -1) == []
    assert redis_client.get("myrq:queue:broken") == b"not a list"


def test_blocking_wait_respects_a_short_socket_timeout(redis_server: RedisServer) -> None:
    broker = RedisBroker.from_url(redis_server.url + "?socket_timeout=0.5")
    started = time.monotonic()
    assert broker.dequeue(["default"], "w", 10, timeout=1.5) == []
    assert time.monotonic() - started >= 1.4
    broker.close()


def test_queue_names_include_queues_filled_by_foreign_clients(
    rbroker: RedisBroker, redis_client: redis.Redis
) -> None:
    _seed_enqueue(redis_client, "seed-1", "tests.jobs.add", [1, 1])
    Queue("mine", broker=rbroker).enqueue(jobs.add, 1, 1)
    assert rbroker.queue_names() == ["default", "mine"]


def test_wake_up_list_stays_bounded_when_a_queue_never_drains(
    rbroker: RedisBroker, redis_client: redis.Redis
) -> None:
    q = Queue("default", broker=rbroker)
    q.enqueue_many([q.prepare(jobs.add, (i, i)) for i in range(3 * NOTIFY_CAP)])
    for i in range(NOTIFY_CAP):
        q.enqueue(jobs.add, i, i)
    assert rbroker.queue_length("default") == 4 * NOTIFY_CAP
    assert 0 < redis_client.llen("myrq:notify:default") <= 2 * NOTIFY_CAP


def test_enqueue_many_spans_script_chunks_and_reports_refused_ids(
    rbroker: RedisBroker, redis_client: redis.Redis
) -> None:
    a, b = Queue("a", broker=rbroker), Queue("b", broker=rbroker)
    live = a.enqueue(jobs.add, 0, 0, job_id="live")
    batch = [a.prepare(jobs.add, (i, i)) for i in range(700)]
    batch.insert(600, a.prepare(jobs.add, (9, 9), job_id="live"))  # in the second chunk
    with pytest.raises(JobExistsError) as err:
        a.enqueue_many(batch)
    assert err.value.job_ids == ["live"]
    assert rbroker.queue_length("a") == 701
    assert b.enqueue_many([b.prepare(jobs.add, (i, i)) for i in range(600)])
    assert rbroker.queue_length("b") == 600
    assert redis_client.hget(rbroker.job_key(live.id), "func") == live.fields["func"]
    assert Worker(["a", "b"], broker=rbroker).work(burst=True) == 1301


def test_worker_warns_when_redis_may_evict_jobs(
    rbroker: RedisBroker, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    redis_client.config_set("maxmemory-policy", "allkeys-lru")
    try:
        assert "allkeys-lru" in rbroker.startup_warnings()[0]
        with caplog.at_level("WARNING", logger="myrq.worker"):
            Worker(["default"], broker=rbroker).work(burst=True)
        assert "may evict queued jobs" in caplog.text
    finally:
        redis_client.config_set("maxmemory-policy", "noeviction")
    assert rbroker.startup_warnings() == []
