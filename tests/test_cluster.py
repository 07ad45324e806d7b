"""The sharded layout on a real Redis Cluster of 3 masters and 3 replicas that this module starts.

One cluster (free ports, a temporary directory) serves every test of the
module and is torn down at its end. The whole contract suite runs on it with
``wait_replicas=1`` (so every enqueue and outcome of the suite also waits for
its replica), then what only a cluster shows: one queue's keys spread over
every master, workers draining it, wake-up latency, a reap that spans shards,
checks of every primary, and cluster errors as retryable connection errors.
Failovers and slot moves under load: test_cluster_failover.py.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from myrq import Job, Queue
from myrq.backends import Broker, EnqueueRequest
from myrq.backends.redis_client import translate_errors
from myrq.backends.redis_cluster import cluster_client
from myrq.backends.redis_sharded import ShardedRedisBroker
from myrq.exceptions import BrokerConnectionError, BrokerError, ConfigurationError
from myrq.testing.contract.kit import W, record
from myrq.testing.redis_cluster import LocalCluster
from myrq.testing.redis_server import RedisServerNotFound, require_server
from myrq.testing.sharded import ShardedRedisBrokerContract
from tests.faultjobs import WorkerPool, read_ledger, wait_for


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    try:
        made = LocalCluster(masters=3, replicas=1).start()
    except RedisServerNotFound as exc:
        if require_server():
            pytest.fail(f"MYRQ_REQUIRE_REDIS_SERVER is set but {exc}")
        pytest.skip(str(exc))
    yield made
    made.stop()


@pytest.fixture(scope="module")
def module_client(cluster: LocalCluster) -> Iterator[RedisCluster]:
    client = cluster_client(cluster.url)
    yield client
    client.close()


@pytest.fixture
def client(module_client: RedisCluster) -> RedisCluster:
    module_client.flushall()
    return module_client


class TestShardedOnCluster(ShardedRedisBrokerContract):
    @pytest.fixture(autouse=True)
    def _cluster(self, client: RedisCluster, cluster: LocalCluster) -> None:
        self.client, self.url = client, cluster.url

    def make_sharded_broker(self, shards: int | None) -> Broker:
        return ShardedRedisBroker(self.client, url=self.url, shards=shards, wait_replicas=1)


def _keys_per_master(client: RedisCluster) -> dict[str, int]:
    return {
        node.name: int(client.get_redis_connection(node).dbsize())
        for node in client.get_primaries()
    }


@pytest.mark.slow
def test_one_queue_spreads_over_every_master_and_three_workers_drain_it(
    cluster: LocalCluster, client: RedisCluster, tmp_path: Path
) -> None:
    queue = Queue("spread", broker=cluster.url)
    ledger = tmp_path / "ledger"
    made = queue.enqueue_many(
        [queue.prepare("tests.faultjobs.ledger_write", (str(ledger), f"t{n}")) for n in range(1500)]
    )
    keys = _keys_per_master(client)
    total = sum(keys.values())
    assert all(n / total >= 0.2 for n in keys.values()), keys
    assert Job.fetch(made[700].id, broker=queue.broker).get_status().value == "pending"
    with WorkerPool(cluster.url, "spread", tmp_path, 5.0) as pool:
        for _ in range(3):
            pool.spawn()
        wait_for(lambda: sum(read_ledger(ledger).values()) >= 1500, 120, "every job to run")
        wait_for(lambda: queue.broker.status_counts().get("finished") == 1500, 30, "every outcome")
    ran = read_ledger(ledger)
    assert len(ran) == 1500 and max(ran.values()) == 1, "a job ran twice"


def test_an_idle_worker_wakes_within_100_ms(client: RedisCluster, cluster: LocalCluster) -> None:
    broker = ShardedRedisBroker(client, url=cluster.url, poll_interval=5)
    waits: list[float] = []
    for n in range(5):
        woken: list[float] = []

        def consume(woken: list[float] = woken) -> None:
            out = broker.dequeue(["idle"], W, 30, timeout=10)
            woken.append(time.monotonic())
            assert len(out) == 1

        t = threading.Thread(target=consume)
        t.start()
        time.sleep(0.4)  # the worker has swept, waited briefly, swept again and blocks
        broker.enqueue("idle", f"wake{n}", record())
        enqueued = time.monotonic()
        t.join(timeout=15)
        waits.append(woken[0] - enqueued)
    assert statistics.median(waits) < 0.1 and max(waits) < 0.5, waits


def test_a_reap_spans_the_shards_of_every_master(
    client: RedisCluster, cluster: LocalCluster
) -> None:
    broker = ShardedRedisBroker(client, url=cluster.url)
    ids = [f"r{n}" for n in range(40)]
    broker.enqueue_many([EnqueueRequest("q", i, record()) for i in ids])
    while broker.dequeue(["q"], W, 0.2, count=16):
        pass
    time.sleep(0.4)
    reaped = broker.reap(max_attempts=0)
    assert sorted(r.job_id for r in reaped) == sorted(ids)
    masters = {client.get_node_from_key(broker.shard_for(i).leases_key).name for i in ids}
    assert len(masters) == 3


def test_startup_warnings_look_at_every_primary(
    client: RedisCluster, cluster: LocalCluster
) -> None:
    broker = ShardedRedisBroker(client, url=cluster.url)
    assert broker.startup_warnings() == []
    node = client.get_primaries()[-1]
    server = client.get_redis_connection(node)
    server.config_set("maxmemory-policy", "allkeys-lru")
    try:
        [warning] = broker.startup_warnings()
        assert node.name in warning and "allkeys-lru" in warning
    finally:
        server.config_set("maxmemory-policy", "noeviction")


def test_a_cluster_client_must_return_bytes(cluster: LocalCluster) -> None:
    text = RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port, decode_responses=True)
    try:
        with pytest.raises(ConfigurationError, match="decode_responses"):
            ShardedRedisBroker(text)
    finally:
        text.close()


@pytest.mark.parametrize(
    "error",
    [
        redis.exceptions.ClusterError("TTL exhausted"),
        redis.exceptions.ClusterDownError("CLUSTERDOWN The cluster is down"),
        redis.exceptions.MovedError("3999 127.0.0.1:6381"),
        redis.exceptions.AskError("3999 127.0.0.1:6381"),
        redis.exceptions.TryAgainError("TRYAGAIN"),
        redis.exceptions.MasterDownError("MASTERDOWN"),
        redis.exceptions.SlotNotCoveredError("slot 3 not covered"),
        redis.exceptions.ReadOnlyError("READONLY You can't write against a read only replica"),
    ],
)
def test_cluster_errors_become_retryable_connection_errors(error: Exception) -> None:
    """The worker retries these (its outcomes are kept), instead of dropping outcomes."""
    with pytest.raises(BrokerConnectionError, match="failing over"), translate_errors("x"):
        raise error


@pytest.mark.parametrize(
    "reply",
    [
        "UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)",
        "NOREPLICAS Not enough good replicas to write.",
    ],
)
def test_a_demoted_or_replica_less_master_is_retried(reply: str) -> None:
    with pytest.raises(BrokerConnectionError, match="cannot take writes"), translate_errors("x"):
        raise redis.exceptions.ResponseError(reply)


def test_other_cluster_client_errors_become_broker_errors() -> None:
    error = redis.exceptions.RedisClusterException("EVALSHA - all keys must map to the same slot")
    with pytest.raises(BrokerError) as info, translate_errors("x"):
        raise error
    assert not isinstance(info.value, BrokerConnectionError)


def test_an_unreachable_cluster_is_a_connection_error() -> None:
    with pytest.raises(BrokerConnectionError, match="cannot reach Redis Cluster"):
        cluster_client("redis+cluster://127.0.0.1:1")


def test_a_bad_cluster_url_is_refused() -> None:
    for bad in ("redis+cluster://h", "redis+cluster://h:1,:2", "redis+cluster://h:1/2"):
        with pytest.raises(ConfigurationError):
            cluster_client(bad)


def test_spread_counts_keys_of_one_queue(client: RedisCluster, cluster: LocalCluster) -> None:
    """Shards land 5/6/5 on three masters with equal slot ranges."""
    broker = ShardedRedisBroker(client, url=cluster.url)
    owners = Counter(client.get_node_from_key(v.leases_key).name for v in broker.views)
    assert sorted(owners.values()) == [5, 5, 6]
