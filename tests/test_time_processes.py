"""Scheduled and periodic jobs with real worker processes on a real redis-server."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
import redis

from myrq import JobStatus, Queue
from myrq.backends import RedisBroker
from myrq.testing.redis_server import RedisServer
from tests.faultjobs import WorkerPool, wait_for


def _stamps(path: Path) -> list[tuple[str, float]]:
    """(token, when it ran) per line of a ledger written by tests.faultjobs.ledger_write."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        token, _, when = line.partition(" ")
        out.append((token, float(when.split()[0]) if when else 0.0))
    return out


@pytest.mark.slow
def test_workers_promote_hundreds_of_scheduled_jobs_none_twice_none_early(
    redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    broker = RedisBroker(redis_client, url=redis_server.url)
    q = Queue("sched", broker=broker)
    ledger = tmp_path / "ledger"
    due: dict[str, float] = {}
    start = time.time()
    for i in range(300):
        delay = 0.5 + (i % 30) * 0.1  # due over 3.5 seconds
        token = f"s{i:03d}"
        due[token] = start + delay
        q.enqueue_in(delay, "tests.timejobs.stamp_token", str(ledger), token)
    with WorkerPool(redis_server.url, "sched", tmp_path, 5.0) as pool:
        for _ in range(3):
            pool.spawn()
        wait_for(lambda: len(_stamps(ledger)) >= 300, 60, "every job to run")
        time.sleep(0.5)  # any duplicate would show by now
    runs = _stamps(ledger)
    counts = Counter(token for token, _ in runs)
    assert set(counts) == set(due) and max(counts.values()) == 1, "a job ran twice"
    early = [(t, when - due[t]) for t, when in runs if when < due[t] - 0.01]
    assert early == [], f"jobs ran before they were due: {early[:5]}"
    late = max(when - due[t] for t, when in runs)
    assert late < 3.0, f"a due job waited {late:.2f}s"
    assert broker.status_counts() == {"finished": 300}


@pytest.mark.slow
def test_three_workers_run_a_schedule_once_per_period(
    redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    broker = RedisBroker(redis_client, url=redis_server.url)
    q = Queue("cron", broker=broker)
    ledger = tmp_path / "ledger"
    q.cron(1, "tests.timejobs.stamp_token", args=[str(ledger), "tick"], name="tick")
    with WorkerPool(redis_server.url, "cron", tmp_path, 5.0) as pool:
        for _ in range(3):
            pool.spawn()
        wait_for(lambda: len(_stamps(ledger)) >= 5, 30, "five periods")
        q.remove_cron("tick")
        time.sleep(1.5)  # removed: no more runs
    runs = _stamps(ledger)
    periods = Counter(int(when) for _, when in runs)
    assert max(periods.values()) == 1, f"a period ran twice: {sorted(periods.items())}"
    keys = redis_client.keys("myrq:job:cron:cron:tick:*")
    assert len(runs) == len(keys), "one job record per run"
    assert {redis_client.hget(k, "status") for k in keys} == {JobStatus.FINISHED.value.encode()}
    assert q.scheduled_jobs() == []
