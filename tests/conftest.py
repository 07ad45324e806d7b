"""Shared fixtures: a private redis-server and the broker matrix.

Every behavioural test that takes ``broker`` runs three times: on the memory
broker, on the Redis broker over fakeredis, and on the Redis broker over a
real redis-server that this test session starts on a unix socket. Without a
redis-server binary the real-server runs are skipped, unless
MYRQ_REQUIRE_REDIS_SERVER=1 (set by .ci/run), which makes them fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import fakeredis
import pytest
import redis

from myrq import config
from myrq.backends import Broker, MemoryBroker, RedisBroker
from myrq.testing.redis_server import RedisServer, RedisServerNotFound, require_server

# Workers run only allow-listed functions; the suite's jobs live in the tests
# package. Set in the environment so worker subprocesses inherit it.
os.environ["MYRQ_ALLOW"] = "tests"


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


@pytest.fixture(params=["memory", "fakeredis", "redis"])
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    b: Broker
    if request.param == "memory":
        b = MemoryBroker()
    elif request.param == "fakeredis":
        b = RedisBroker(fakeredis.FakeRedis())
    else:
        client = request.getfixturevalue("redis_client")
        b = RedisBroker(client, url=request.getfixturevalue("redis_server").url)
    yield b
    b.close()


@pytest.fixture(autouse=True)
def _reset_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("MYRQ_BROKER_URL", "MYRQ_SERIALIZER", "MYRQ_KEY_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    config.reset()
    yield
    config.reset()
