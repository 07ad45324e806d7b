"""Concurrent workers as real processes on a real redis-server: kill -9 loses nothing."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
import redis

from myrq import Queue
from myrq.backends import RedisBroker
from myrq.testing.redis_server import RedisServer
from tests.faultjobs import WorkerPool, wait_for


def _tokens(path: Path) -> Counter[str]:
    if not path.exists():
        return Counter()
    return Counter(line.split()[0] for line in path.read_text().splitlines())


@pytest.mark.slow
@pytest.mark.parametrize("func", ["async_span", "thread_span"])
def test_a_killed_concurrent_worker_s_jobs_run_again_after_its_lease(
    redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path, func: str
) -> None:
    broker = RedisBroker(redis_client, url=redis_server.url)
    q = Queue("conc", broker=broker)
    ledger = tmp_path / "ledger"
    for i in range(8):
        q.enqueue(f"tests.asyncjobs.{func}", str(ledger), f"j{i}", 1.5)
    with WorkerPool(redis_server.url, "conc", tmp_path, 1.0, "--concurrency", "8") as pool:
        victim = pool.spawn()
        wait_for(lambda: redis_client.zcard("myrq:leases") == 8, 20, "8 jobs running at once")
        pool.kill(victim)  # mid-run: every job is leased to a dead worker
        assert _tokens(ledger) == Counter()
        pool.spawn()
        wait_for(lambda: len(_tokens(ledger)) == 8, 30, "every job run again")
        time.sleep(0.5)
    assert set(_tokens(ledger).values()) == {1}
    assert q.finished_job_registry.count == 8
