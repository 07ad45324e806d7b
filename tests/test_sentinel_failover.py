"""A Sentinel failover while a producer and a worker process run (its own servers).

The master stalls for 4 s (SIGSTOP, as in a network partition): the Sentinel
promotes the replica, the old master resumes, still taking writes from the
clients connected to it until the Sentinel demotes it, and what it took then is
gone. With ``wait_replicas=1`` no enqueue and no outcome is acknowledged before
a replica has it, so nothing acknowledged is lost, and the producer and the
worker follow the new master without a restart. (The loss without it is
measured by ``benchmarks/cluster.py failover`` and written in
docs/reliability.md.)
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from myrq import Queue
from myrq.testing.redis_cluster import LocalSentinel, SteadyProducer
from myrq.testing.redis_server import RedisServerNotFound, require_server
from tests.faultjobs import WorkerPool, read_ledger, wait_for, wait_until_finished

pytestmark = pytest.mark.slow


@pytest.fixture
def sentinel() -> Iterator[LocalSentinel]:
    try:
        made = LocalSentinel(replicas=1).start()
    except RedisServerNotFound as exc:
        if require_server():
            pytest.fail(f"MYRQ_REQUIRE_REDIS_SERVER is set but {exc}")
        pytest.skip(str(exc))
    yield made
    made.stop()


def _demoted(sentinel: LocalSentinel, old_port: int) -> bool:
    if sentinel.master_port() == old_port:
        return False
    info = redis.Redis(unix_socket_path=str(sentinel.node_of_port(old_port).socket)).info(
        "replication"
    )
    return info.get("role") == "slave" and info.get("master_link_status") == "up"


def test_a_four_second_master_stall_loses_nothing_acknowledged_with_wait_replicas(
    sentinel: LocalSentinel, tmp_path: Path
) -> None:
    url = sentinel.url + "?wait_replicas=1&wait_timeout=0.5"
    queue = Queue("stall", broker=url)
    ledger = tmp_path / "ledger"
    producer = SteadyProducer(queue, "tests.faultjobs.ledger_write", ledger, per_second=300)
    with WorkerPool(url, "stall", tmp_path, 5.0) as pool:
        worker = pool.spawn()
        producer.start()
        time.sleep(1.5)
        old = sentinel.master
        assert old.pid is not None
        os.kill(old.pid, signal.SIGSTOP)
        try:
            time.sleep(4.0)
        finally:
            os.kill(old.pid, signal.SIGCONT)
        wait_for(lambda: _demoted(sentinel, old.port), 30, "the old master to be demoted", 0.2)
        after = len(producer.acked)
        wait_for(lambda: len(producer.acked) > after + 100, 30, "enqueues on the new master")
        producer.halt.set()
        producer.join(timeout=10)
        acked = list(producer.acked)
        assert producer.retries > 0, "the stall was not felt: nothing was tested"
        wait_for(lambda: set(read_ledger(ledger)) >= set(acked), 60, "every acknowledged job")
        missing = [i for i in acked if queue.broker.get(i) is None]
        assert missing == [], f"{len(missing)} of {len(acked)} acknowledged jobs were lost"
        # With the worker still running: an outcome dropped in the stall is
        # written when the job runs again after its lease is reaped.
        wait_until_finished(queue.broker, acked, 60)
        assert worker.proc.poll() is None, "the worker died instead of following the failover"
