"""Failovers and slot moves on a real 3-master + 3-replica cluster, under load.

Each test starts its own cluster (the fault changes its topology), a producer
that enqueues ledger jobs at a steady rate with ``wait_replicas=1``, and two
``myrq worker`` processes; then it injects the fault. Nothing acknowledged may
be lost, every job must end ``finished``, the workers must carry on without a
restart, and jobs must be acknowledged again once every master has a replica
(a killed master is restarted and rejoins as one: with ``wait_replicas=1`` a
master without a replica cannot confirm writes, see docs/scaling.md). A job may run twice (a claim is not waited for: lost with a
master, its job is reaped and runs again), never zero times.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from myrq import Queue
from myrq.testing.redis_cluster import LocalCluster, SteadyProducer
from myrq.testing.redis_server import RedisServerNotFound, require_server
from tests.faultjobs import WorkerPool, read_ledger, wait_for, wait_until_finished

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    try:
        made = LocalCluster(masters=3, replicas=1).start()
    except RedisServerNotFound as exc:
        if require_server():
            pytest.fail(f"MYRQ_REQUIRE_REDIS_SERVER is set but {exc}")
        pytest.skip(str(exc))
    yield made
    made.stop()


def _run_through(cluster: LocalCluster, tmp_path: Path, fault: Callable[[], None]) -> None:
    url = cluster.url + "?wait_replicas=1&wait_timeout=1"
    queue = Queue("ha", broker=url)
    ledger = tmp_path / "ledger"
    producer = SteadyProducer(queue, "tests.faultjobs.ledger_write", ledger, per_second=200)
    with WorkerPool(url, "ha", tmp_path, 5.0) as pool:
        workers = [pool.spawn(), pool.spawn()]
        producer.start()
        time.sleep(1.5)
        before = len(producer.acked)
        fault()
        cluster.wait_ok(60)  # every master has its replica again
        after = len(producer.acked)
        wait_for(lambda: len(producer.acked) > after + 100, 30, "enqueues on the new topology")
        producer.halt.set()
        producer.join(timeout=30)
        acked = list(producer.acked)
        assert before > 100, "nothing was acknowledged before the fault"
        wait_for(lambda: set(read_ledger(ledger)) >= set(acked), 90, "every acknowledged job")
        missing = [i for i in acked if queue.broker.get(i) is None]
        assert missing == [], f"{len(missing)} of {len(acked)} acknowledged jobs were lost"
        # With the workers still running: an outcome dropped in the fault is
        # written when the job runs again after its lease is reaped.
        wait_until_finished(queue.broker, acked, 60)
        assert all(w.proc.poll() is None for w in workers), pool.all_output()[-3000:]


def test_a_coordinated_failover_loses_nothing(cluster: LocalCluster, tmp_path: Path) -> None:
    def failover() -> None:
        master = cluster.masters_now()[0]
        replica = cluster.replica_of(master)
        cluster.cli(replica, "cluster", "failover")
        wait_for(lambda: cluster.role(replica) == "master", 30, "the replica to take over")

    _run_through(cluster, tmp_path, failover)


def test_a_killed_master_loses_nothing_acknowledged(cluster: LocalCluster, tmp_path: Path) -> None:
    def kill() -> None:
        master = cluster.masters_now()[0]
        replica = cluster.replica_of(master)
        master.kill()
        wait_for(lambda: cluster.role(replica) == "master", 30, "the replica to take over")
        # Until a replica joins it, the new master cannot confirm writes (wait_replicas=1):
        # the operator's move, restarting the old one, which rejoins as its replica.
        master.start()

    _run_through(cluster, tmp_path, kill)


def test_moving_slots_during_a_run_loses_nothing(cluster: LocalCluster, tmp_path: Path) -> None:
    def reshard() -> None:
        source, target = cluster.masters_now()[:2]
        cluster.cli(
            source,
            "--cluster", "reshard", f"127.0.0.1:{source.port}",
            "--cluster-from", cluster.node_id(source),
            "--cluster-to", cluster.node_id(target),
            "--cluster-slots", "3000", "--cluster-yes",
            timeout=120,
        )  # fmt: skip

    _run_through(cluster, tmp_path, reshard)
