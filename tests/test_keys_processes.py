"""Concurrency keys with real worker processes on a real redis-server."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import pytest
import redis

from myrq import JobStatus, Queue
from myrq.backends import RedisBroker
from myrq.testing.redis_server import RedisServer
from tests.faultjobs import WorkerPool, wait_for


def _spans(path: Path) -> list[tuple[str, float, float]]:
    if not path.exists():
        return []
    return [
        (t, float(a), float(b))
        for t, a, b in (line.split() for line in path.read_text().splitlines())
    ]


@pytest.mark.slow
def test_no_two_jobs_of_a_key_run_at_once_across_workers(
    redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    broker = RedisBroker(redis_client, url=redis_server.url)
    q = Queue("keys", broker=broker)
    ledger = tmp_path / "ledger"
    for i in range(60):
        key = f"product-{i % 3}"
        q.with_options(concurrency_key=key).enqueue(
            "tests.asyncjobs.thread_span", str(ledger), f"{key}/{i}", 0.05
        )
    for i in range(10):  # a limit of 2 on a fourth key
        q.with_options(concurrency_key="pair", concurrency_limit=2).enqueue(
            "tests.asyncjobs.thread_span", str(ledger), f"pair/{i}", 0.1
        )
    with WorkerPool(redis_server.url, "keys", tmp_path, 5.0, "--concurrency", "4") as pool:
        for _ in range(3):
            pool.spawn()
        wait_for(lambda: len(_spans(ledger)) >= 70, 60, "every job to run")
    by_key: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for token, start, end in _spans(ledger):
        by_key[token.split("/")[0]].append((start, end))
    for key, runs in by_key.items():
        events = sorted([(a, 1) for a, _ in runs] + [(b, -1) for _, b in runs])
        now = peak = 0
        for _, step in events:
            now += step
            peak = max(peak, now)
        assert peak <= (2 if key == "pair" else 1), f"{key}: {peak} at once"
    assert q.finished_job_registry.count == 70


@pytest.mark.slow
def test_a_key_held_by_a_killed_worker_is_free_after_its_lease(
    redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    broker = RedisBroker(redis_client, url=redis_server.url)
    q = Queue("held", broker=broker)
    ledger = tmp_path / "ledger"
    marker = tmp_path / "started"
    slow = q.with_options(concurrency_key="k", timeout=60).enqueue(
        "tests.asyncjobs.thread_pid", str(marker), 30
    )
    after = q.with_options(concurrency_key="k").enqueue(
        "tests.asyncjobs.thread_span", str(ledger), "after", 0
    )
    with WorkerPool(redis_server.url, "held", tmp_path, 1.0, "--concurrency", "4") as pool:
        victim = pool.spawn()
        wait_for(marker.exists, 20, "the slow job to start")
        time.sleep(0.3)
        assert after.get_status() is JobStatus.PENDING and q.count == 0  # parked for its key
        pool.kill(victim)
        pool.spawn()
        wait_for(lambda: after.get_status() is JobStatus.FINISHED, 20, "the key to be freed")
    assert slow.get_status() in (JobStatus.RUNNING, JobStatus.PENDING)  # run again after its lease
