"""The broker contract suite, run on every built-in broker through the kit's hooks."""

from __future__ import annotations

from collections.abc import Iterator

import fakeredis
import pytest
import redis

from myrq.backends import Broker, MemoryBroker, RedisBroker
from myrq.testing.brokers import RedisBrokerContract, StoreBrokerContract
from myrq.testing.redis_server import RedisServer


class TestMemoryBroker(StoreBrokerContract):
    def make_broker(self) -> Broker:
        return MemoryBroker()


class TestRedisBrokerOnFakeredis(RedisBrokerContract):
    def make_broker(self) -> Broker:
        return RedisBroker(fakeredis.FakeRedis())


class TestRedisBrokerOnRedisServer(RedisBrokerContract):
    @pytest.fixture
    def broker(self, redis_client: redis.Redis, redis_server: RedisServer) -> Iterator[Broker]:
        b = RedisBroker(redis_client, url=redis_server.url)
        yield b
        b.close()
