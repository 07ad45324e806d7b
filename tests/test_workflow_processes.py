"""Dependencies with real worker processes on a real redis-server: the enqueue/finish race."""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

import pytest
import redis

from myrq import Dependency, JobStatus, Queue
from myrq.backends import RedisBroker
from myrq.testing.redis_server import RedisServer
from tests.faultjobs import WorkerPool, wait_for


def _spans(path: Path) -> list[tuple[str, float, float]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        token, start, end = line.split()
        out.append((token, float(start), float(end)))
    return out


@pytest.mark.slow
def test_children_enqueued_while_their_parents_end_run_once_after_them(
    redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """Each child is enqueued just as its parent may be ending (parents take 0-4 ms on three
    busy workers): whichever comes first, the child runs exactly once, after its parent
    finished; a failed parent's child is canceled, its allow_failure sibling runs."""
    broker = RedisBroker(redis_client, url=redis_server.url)
    q = Queue("race", broker=broker)
    ledger = tmp_path / "ledger"
    rng = random.Random(7)
    pairs = 300
    failing = set(rng.sample(range(pairs), 30))
    kids = {}
    with WorkerPool(redis_server.url, "race", tmp_path, 5.0) as pool:
        for _ in range(3):
            pool.spawn()
        for i in range(pairs):
            if i in failing:
                parent = q.enqueue("tests.workflowjobs.boom", f"p{i}")
            else:
                parent = q.enqueue(
                    "tests.workflowjobs.stamp_span", str(ledger), f"p{i}", rng.random() * 0.004
                )
            if rng.random() < 0.5:
                time.sleep(rng.random() * 0.003)  # land on either side of the parent's end
            kids[i] = q.enqueue(
                "tests.workflowjobs.stamp_span", str(ledger), f"c{i}", 0, depends_on=parent
            )
            if i in failing:
                q.enqueue(
                    "tests.workflowjobs.stamp_span", str(ledger), f"a{i}", 0,
                    depends_on=Dependency(parent, allow_failure=True),
                )  # fmt: skip
        expected = 2 * pairs - 2 * len(failing) + len(failing)  # parents+kids, minus failures
        wait_for(lambda: len(_spans(ledger)) >= expected, 90, "every runnable job to run")
        time.sleep(0.5)  # a duplicate would show by now
    spans = _spans(ledger)
    counts = Counter(token for token, _, _ in spans)
    assert max(counts.values()) == 1, [t for t, n in counts.items() if n > 1][:5]
    ended = {token: end for token, _, end in spans}
    started = {token: start for token, start, _ in spans}
    for i in range(pairs):
        if i in failing:
            assert f"c{i}" not in counts and f"a{i}" in counts
            assert kids[i].get_status() is JobStatus.CANCELED
        else:
            assert started[f"c{i}"] >= ended[f"p{i}"], f"child {i} started before its parent ended"
    assert q.deferred_job_registry.count == 0 and q.count == 0
