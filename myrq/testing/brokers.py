"""The contract hooks for the built-in brokers and any broker on a Store.

Subclass one of these instead of :class:`~myrq.testing.contract.BrokerContract`
when your broker is a :class:`~myrq.backends.store_broker.StoreBroker` (any
:class:`~myrq.backends.store.Store`) or a :class:`~myrq.backends.redis.RedisBroker`
(for example on another client); then write only ``make_broker``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from myrq.backends.base import Broker
from myrq.backends.store_broker import StoreBroker
from myrq.backends.store_keys import LEASES, job_key, queue_key
from myrq.testing.contract import BrokerContract

if TYPE_CHECKING:
    from myrq.backends.redis import RedisBroker


class StoreBrokerContract(BrokerContract):
    """Hooks for brokers that keep their keys in a Store (memory, SQLite)."""

    def drop_record_only(self, broker: Broker, job_id: str) -> None:
        with cast(StoreBroker, broker).store.transaction() as t:
            t.delete(job_key(job_id))

    def push_id_only(self, broker: Broker, queue: str, job_id: str) -> None:
        with cast(StoreBroker, broker).store.transaction() as t:
            t.push(queue_key(queue), job_id)

    def drop_lease_only(self, broker: Broker, job_id: str) -> None:
        with cast(StoreBroker, broker).store.transaction() as t:
            t.zrem(LEASES, job_id)

    def write_fields(self, broker: Broker, job_id: str, fields: dict[str, bytes]) -> None:
        with cast(StoreBroker, broker).store.transaction() as t:
            t.hset(job_key(job_id), fields)

    def remove_fields(self, broker: Broker, job_id: str, *names: str) -> None:
        with cast(StoreBroker, broker).store.transaction() as t:
            t.hdel(job_key(job_id), *names)


class RedisBrokerContract(BrokerContract):
    """Hooks for the Redis broker, through its own client."""

    def drop_record_only(self, broker: Broker, job_id: str) -> None:
        redis_broker = cast("RedisBroker", broker)
        redis_broker.client.delete(redis_broker.job_key(job_id))

    def push_id_only(self, broker: Broker, queue: str, job_id: str) -> None:
        redis_broker = cast("RedisBroker", broker)
        redis_broker.client.rpush(redis_broker.queue_key(queue), job_id)

    def drop_lease_only(self, broker: Broker, job_id: str) -> None:
        redis_broker = cast("RedisBroker", broker)
        redis_broker.client.zrem(redis_broker.leases_key, job_id)

    def write_fields(self, broker: Broker, job_id: str, fields: dict[str, bytes]) -> None:
        redis_broker = cast("RedisBroker", broker)
        redis_broker.client.hset(redis_broker.job_key(job_id), mapping=fields)  # type: ignore[arg-type,unused-ignore]  # redis-py 5 and 8 type it apart

    def remove_fields(self, broker: Broker, job_id: str, *names: str) -> None:
        redis_broker = cast("RedisBroker", broker)
        redis_broker.client.hdel(redis_broker.job_key(job_id), *names)
