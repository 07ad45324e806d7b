"""The Redis broker through Sentinel (``redis+sentinel://``), on servers this module starts.

One master, one replica and one Sentinel (free ports, temporary directories)
serve the module. The whole contract suite runs through the Sentinel-managed
client, then ``wait_replicas``: a write returns once the replica has it, and
fails clearly when no replica confirms it. Failovers: test_sentinel_failover.py.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
import redis

from myrq.backends import Broker, RedisBroker
from myrq.backends.redis_sentinel import sentinel_client, sentinel_from_url
from myrq.config import get_broker
from myrq.exceptions import BrokerConnectionError, ConfigurationError
from myrq.testing.brokers import RedisBrokerContract
from myrq.testing.contract.kit import W, claim_one, put, record
from myrq.testing.redis_cluster import LocalSentinel
from myrq.testing.redis_server import RedisServerNotFound, require_server


@pytest.fixture(scope="module")
def sentinel() -> Iterator[LocalSentinel]:
    try:
        made = LocalSentinel(replicas=1).start()
    except RedisServerNotFound as exc:
        if require_server():
            pytest.fail(f"MYRQ_REQUIRE_REDIS_SERVER is set but {exc}")
        pytest.skip(str(exc))
    yield made
    made.stop()


@pytest.fixture
def master(sentinel: LocalSentinel) -> Iterator[redis.Redis]:
    client = sentinel_client(sentinel.url)
    client.flushall()
    yield client
    client.close()


class TestRedisBrokerThroughSentinel(RedisBrokerContract):
    @pytest.fixture(autouse=True)
    def _sentinel(self, master: redis.Redis, sentinel: LocalSentinel) -> None:
        self.client, self.url = master, sentinel.url

    def make_broker(self) -> Broker:
        return RedisBroker(self.client, url=self.url)


def _replica(sentinel: LocalSentinel) -> redis.Redis:
    return redis.Redis(unix_socket_path=str(sentinel.replicas[0].socket))


def test_a_sentinel_url_gives_the_redis_broker_on_the_master(
    sentinel: LocalSentinel, master: redis.Redis
) -> None:
    broker = get_broker(sentinel.url + "?wait_replicas=1&wait_timeout=2")
    assert isinstance(broker, RedisBroker) and broker.wait_replicas == 1
    put(broker, "a")
    assert master.exists("myrq:job:a")
    for bad in (
        "redis+sentinel://h:1",
        "redis+sentinel://h:1/svc?shards=4",
        "redis+sentinel://h/svc",
    ):
        with pytest.raises(ConfigurationError):
            get_broker(bad)


def test_with_wait_replicas_an_enqueue_and_an_outcome_are_on_the_replica_when_they_return(
    sentinel: LocalSentinel, master: redis.Redis
) -> None:
    broker = sentinel_from_url(sentinel.url, wait_replicas=1)
    replica = _replica(sentinel)
    for n in range(20):
        put(broker, f"j{n}")
        assert replica.hget(f"myrq:job:j{n}", "status") == b"pending"
    job_id, token = claim_one(broker)
    assert broker.finish(job_id, token, {"status": b"finished"}, None)
    assert replica.hget(f"myrq:job:{job_id}", "status") == b"finished"


def test_with_wait_replicas_a_write_no_replica_confirms_raises(
    sentinel: LocalSentinel, master: redis.Redis
) -> None:
    broker = sentinel_from_url(sentinel.url, wait_replicas=1, wait_timeout=0.3)
    put(broker, "before")
    replica_pid = sentinel.replicas[0].pid
    assert replica_pid is not None
    os.kill(replica_pid, signal.SIGSTOP)
    try:
        with pytest.raises(BrokerConnectionError, match=r"0 of the 1 replica\(s\)"):
            broker.enqueue("q", "unconfirmed", record())
        assert broker.get("unconfirmed") is not None  # on the master, just not confirmed
    finally:
        os.kill(replica_pid, signal.SIGCONT)
    # A resend once the replica is back is recognised as the same enqueue.
    broker.enqueue("q", "unconfirmed", record())
    assert broker.queued_ids("q") == ["before", "unconfirmed"]
    assert broker.dequeue(["q"], W, 30)[0].job_id == "before"
