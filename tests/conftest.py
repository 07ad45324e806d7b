"""Shared fixtures: a private redis-server and the broker matrix.

Every behavioural test that takes ``broker`` runs on each built-in broker and
on the SQLite example: the memory broker, the Redis broker over fakeredis, the
Redis broker over a real redis-server that this test session starts on a unix
socket, and ``examples/sqlite_broker.py``. ``hooks`` gives the matching
contract-kit hooks (``myrq.testing.brokers``) for what a test must do behind
the broker's back. Without a redis-server binary the real-server runs are
skipped, unless MYRQ_REQUIRE_REDIS_SERVER=1 (set by .ci/run), which makes
them fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import fakeredis
import pytest
import redis

from examples.sqlite_broker import SQLiteBroker
from myrq import config
from myrq.backends import Broker, MemoryBroker, RedisBroker
from myrq.testing.brokers import RedisBrokerContract, StoreBrokerContract
from myrq.testing.contract import BrokerContract
from myrq.testing.redis_server import RedisServer, RedisServerNotFound, require_server

# Workers run only allow-listed functions; the suite's jobs live in the tests
# package. Set in the environment so worker subprocesses inherit it.
os.environ["MYRQ_ALLOW"] = "tests"

BROKERS = ["memory", "fakeredis", "redis", "sqlite"]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    try:
        server = RedisServer().start()
    except RedisServerNotFound as exc:
        if require_server():
            pytest.fail(f"MYRQ_REQUIRE_REDIS_SERVER is set but {exc}")
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    yield client
    client.flushall()
    client.close()


@pytest.fixture(params=BROKERS)
def broker_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def broker(broker_kind: str, request: pytest.FixtureRequest) -> Iterator[Broker]:
    b: Broker
    if broker_kind == "memory":
        b = MemoryBroker()
    elif broker_kind == "fakeredis":
        b = RedisBroker(fakeredis.FakeRedis())
    elif broker_kind == "sqlite":
        b = SQLiteBroker()
    else:
        client = request.getfixturevalue("redis_client")
        b = RedisBroker(client, url=request.getfixturevalue("redis_server").url)
    yield b
    b.close()


@pytest.fixture
def hooks(broker_kind: str) -> BrokerContract:
    """The contract kit's hooks for the broker under test."""
    if broker_kind in ("memory", "sqlite"):
        return StoreBrokerContract()
    return RedisBrokerContract()


@pytest.fixture(autouse=True)
def _reset_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("MYRQ_BROKER_URL", "MYRQ_SERIALIZER", "MYRQ_KEY_PREFIX", "MYRQ_EAGER"):
        monkeypatch.delenv(name, raising=False)
    config.reset()
    yield
    config.reset()
