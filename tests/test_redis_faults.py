"""Redis-only faults: a full server, a client that resends after a stall, half-done scripts.

Each test starts from a real redis-server (the session's, on a unix socket).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.backoff import ConstantBackoff
from redis.retry import Retry

from myrq import BrokerFullError, JobStatus, Queue, Worker
from myrq.backends import RedisBroker
from myrq.backends.base import EnqueueRequest, FinishRequest
from myrq.exceptions import BrokerError
from myrq.testing.redis_server import RedisServer
from tests import jobs

FIELDS = {"func": b"{}", "queue": b"q", "created_at": b"1"}


@pytest.fixture
def rbroker(redis_client: redis.Redis, redis_server: RedisServer) -> Iterator[RedisBroker]:
    b = RedisBroker(redis_client, url=redis_server.url)
    yield b
    b.close()


@pytest.fixture
def full(redis_client: redis.Redis) -> Iterator[None]:
    """Redis at maxmemory with noeviction (the setting the docs recommend)."""
    assert redis_client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    redis_client.config_set("maxmemory", 1)
    yield
    redis_client.config_set("maxmemory", 0)


# -- a full Redis ------------------------------------------------------------------


def test_enqueue_on_a_full_redis_says_so_and_stores_nothing(
    rbroker: RedisBroker, redis_client: redis.Redis
) -> None:
    q = Queue("q", broker=rbroker)
    redis_client.config_set("maxmemory", 1)
    try:
        with pytest.raises(BrokerFullError, match="full"):
            q.enqueue(jobs.add, 1, 2)
        with pytest.raises(BrokerFullError):
            q.enqueue_many([q.prepare(jobs.add, (i, i)) for i in range(3)])
    finally:
        redis_client.config_set("maxmemory", 0)
    assert redis_client.keys("myrq:job:*") == [] and q.count == 0


def test_every_worker_step_keeps_working_on_a_full_redis(
    rbroker: RedisBroker, redis_client: redis.Redis
) -> None:
    for name in ("a", "b", "c", "d", "e"):
        rbroker.enqueue("q", name, FIELDS)
    redis_client.config_set("maxmemory", 1)
    try:
        [a] = rbroker.dequeue(["q"], "w", 30, claim_id="c1")  # claim
        assert rbroker.renew("a", a.token or "", 30)  # renew: refused before the fix
        assert rbroker.renew_many([("a", a.token or "")], 30) == [True]
        written, [b] = rbroker.finish_many_and_dequeue(  # finish + claim
            [FinishRequest("a", a.token or "", {"status": b"finished", "result": b"1"}, 60)],
            queues=["q"], worker="w", lease=0.2,
        )  # fmt: skip
        assert written == [True]
        assert rbroker.finish("b", b.token or "", {"status": b"failed"}, None) is True
        [c] = rbroker.dequeue(["q"], "w", 30)
        assert rbroker.release("c", c.token or "")  # release
        rbroker.dequeue(["q"], "w", 0.1)  # c again, with a short lease
        time.sleep(0.3)
        assert [r.outcome for r in rbroker.reap(max_attempts=5)] == ["requeued"]  # reap
        assert rbroker.delete("d")  # delete
        rbroker.register_worker("w", {"host": b"h"}, 30)  # the worker registry
    finally:
        redis_client.config_set("maxmemory", 0)
    assert rbroker.queued_ids("q") == ["e", "c"]


def test_a_long_healthy_job_keeps_its_lease_on_a_full_redis(
    rbroker: RedisBroker, redis_client: redis.Redis
) -> None:
    """Renewals must not be refused: the job runs once and finishes, never reaped."""
    job = Queue("default", broker=rbroker).enqueue_call(jobs.nap, args=(3.5, "done"))
    redis_client.config_set("maxmemory", 1)
    try:
        w = Worker(["default"], broker=rbroker, lease_ttl=1.5)
        w.work(burst=True)
    finally:
        redis_client.config_set("maxmemory", 0)
    assert job.get_status() is JobStatus.FINISHED and job.result == "done"
    assert job.attempts == 1 and w.stats.lost_leases == 0


# -- a client that resends after a stalled server -------------------------------


@pytest.fixture
def stalling(redis_server: RedisServer) -> Iterator[tuple[RedisServer, redis.Redis]]:
    """A client that times out after 0.3 s and retries, as redis-py 8 does by default."""
    client = redis.Redis.from_url(
        redis_server.url,
        socket_timeout=0.3,
        retry=Retry(ConstantBackoff(0.05), 6),
        retry_on_timeout=True,
    )
    client.flushall()
    yield redis_server, client
    client.close()


def _stall(server: RedisServer, seconds: float) -> threading.Thread:
    """SIGSTOP the server now, SIGCONT it after ``seconds`` (requests queue up meanwhile)."""
    assert server.pid is not None
    pid = server.pid
    import os

    os.kill(pid, signal.SIGSTOP)

    def resume() -> None:
        time.sleep(seconds)
        os.kill(pid, signal.SIGCONT)

    t = threading.Thread(target=resume)
    t.start()
    return t


@pytest.mark.slow
def test_an_enqueue_resent_after_a_stall_is_stored_once_and_reported_stored(
    stalling: tuple[RedisServer, redis.Redis],
) -> None:
    server, client = stalling
    broker = RedisBroker(client, url=server.url)
    broker.ping()  # scripts are loaded lazily; make sure the connection is up
    q = Queue("q", broker=broker)
    q.enqueue(jobs.add, 0, 0)  # loads enqueue.lua before the stall
    client.config_resetstat()
    resume = _stall(server, 1.0)
    try:
        job = q.enqueue_call(jobs.add, args=(1, 2), job_id="resent")  # no JobExistsError
    finally:
        resume.join()
    sent = client.info("commandstats")["cmdstat_evalsha"]["calls"]
    assert sent > 1, "the client did not resend: the stall did not reproduce the fault"
    assert q.job_ids.count("resent") == 1
    assert job.get_status() is JobStatus.PENDING


@pytest.mark.slow
def test_a_claim_resent_after_a_stall_leaves_no_job_leased_to_nobody(
    stalling: tuple[RedisServer, redis.Redis],
) -> None:
    server, client = stalling
    broker = RedisBroker(client, url=server.url)
    for i in range(6):
        broker.enqueue("q", f"j{i}", FIELDS)
    broker.dequeue(["none"], "w", 30)  # loads the claim script before the stall
    client.config_resetstat()
    resume = _stall(server, 1.0)
    try:
        got = broker.dequeue(["q"], "w", 30, count=2)
    finally:
        resume.join()
    assert client.info("commandstats")["cmdstat_evalsha"]["calls"] > 1, "no resend happened"
    leased = set(broker.leased_ids())
    assert {d.job_id for d in got} == leased, "a resent claim took jobs nobody was told about"
    assert broker.queue_length("q") == 6 - len(leased)


# -- no half-done script ----------------------------------------------------------


def test_a_broken_lower_priority_queue_key_leaves_the_claims_before_it_whole(
    rbroker: RedisBroker, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    rbroker.enqueue("high", "h1", FIELDS)
    redis_client.set("myrq:queue:low", "not a list")
    with caplog.at_level(logging.ERROR, logger="myrq.broker"):
        _, got = rbroker.finish_many_and_dequeue(
            [], queues=["high", "low"], worker="w", lease=30, count=3
        )
    assert [d.job_id for d in got] == ["h1"] and got[0].claimed
    assert rbroker.leased_ids() == ["h1"]
    assert "is not a list" in caplog.text
    with pytest.raises(BrokerError, match="not a list"):  # nothing to hand out: an error
        rbroker.dequeue(["high", "low"], "w", 30)


def test_a_record_of_thousands_of_fields_is_stored_whole_or_not_at_all(
    rbroker: RedisBroker,
) -> None:
    fields = {**FIELDS, **{f"f{i}": b"x" for i in range(20_000)}}
    rbroker.enqueue("q", "wide", fields)
    rec = rbroker.get("wide")
    assert rec is not None and len(rec) == len(fields) + 1  # + status
    assert rbroker.queued_ids("q") == ["wide"]
    [d] = rbroker.dequeue(["q"], "w", 30)
    assert rbroker.finish("wide", d.token or "", {f"r{i}": b"y" for i in range(20_000)}, None)


def test_a_job_key_of_another_type_refuses_that_job_only(
    rbroker: RedisBroker, redis_client: redis.Redis
) -> None:
    redis_client.set("myrq:job:taken", "a string")
    with pytest.raises(BrokerError, match=r"'taken'.*1 other job\(s\) were stored"):
        rbroker.enqueue_many(
            [EnqueueRequest("q", "taken", FIELDS), EnqueueRequest("q", "fine", FIELDS)]
        )
    assert rbroker.queued_ids("q") == ["fine"]
    assert redis_client.get("myrq:job:taken") == b"a string"


def test_a_lease_whose_queue_key_is_broken_is_reported_and_kept(
    rbroker: RedisBroker, redis_client: redis.Redis
) -> None:
    rbroker.enqueue("q", "a", FIELDS)
    rbroker.dequeue(["q"], "w", 0.1)
    redis_client.set("myrq:queue:q", "not a list")
    time.sleep(0.3)
    [r] = rbroker.reap(max_attempts=3)
    assert r.outcome == "blocked"
    rec = rbroker.get("a")
    assert rec is not None and rec["status"] == b"running"  # nothing half done
    assert rbroker.leased_ids() == ["a"]


def test_blocked_leases_do_not_keep_others_from_being_reaped(
    rbroker: RedisBroker, redis_client: redis.Redis
) -> None:
    for i in range(3):
        rbroker.enqueue("broken", f"b{i}", {**FIELDS, "queue": b"broken"})
    rbroker.enqueue("q", "fine", FIELDS)
    rbroker.dequeue(["broken"], "w", 0.1, count=3)
    rbroker.dequeue(["q"], "w", 0.2)
    redis_client.set("myrq:queue:broken", "not a list")
    time.sleep(0.4)
    first = rbroker.reap(max_attempts=3, limit=3)  # the three oldest: all blocked
    assert [r.outcome for r in first] == ["blocked"] * 3
    assert [(r.job_id, r.outcome) for r in rbroker.reap(max_attempts=3, limit=3)] == [
        ("fine", "requeued")
    ]


def test_a_large_batch_cut_short_by_a_full_redis_says_what_was_stored(
    rbroker: RedisBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    q = Queue("q", broker=rbroker)
    batch = [q.prepare(jobs.add, (i, i)) for i in range(1200)]  # sent in parts of 500
    real = RedisBroker._enqueue_chunk
    calls: list[int] = []

    def full_after_the_first_part(self: RedisBroker, requests: Any) -> Any:
        calls.append(len(requests))
        if len(calls) > 1:
            raise BrokerFullError("Redis is full")
        return real(self, requests)

    monkeypatch.setattr(RedisBroker, "_enqueue_chunk", full_after_the_first_part)
    with pytest.raises(BrokerFullError, match="the first 500 job") as info:
        q.enqueue_many(batch)
    assert info.value.stored_ids == [j.id for j in batch[:500]]
    assert q.count == 500


def test_an_isolated_job_whose_record_says_a_huge_timeout_still_runs(
    rbroker: RedisBroker,
) -> None:
    rbroker.enqueue(
        "default",
        "huge",
        {"func": b'{"func_name":"tests.jobs.add","args":[1,2],"kwargs":{}}', "timeout": b"1e300"},
    )
    Worker(["default"], broker=rbroker, isolate=True, allow=["tests"]).work(burst=True)
    rec = rbroker.get("huge")
    assert rec is not None and rec["status"] == b"finished"
