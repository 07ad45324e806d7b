"""Brokers: the Broker contract, the built-in brokers, selection by URL.

``RedisBroker`` is imported on first use (``from myrq.backends import
RedisBroker`` works as usual), so ``import myrq`` does not import redis-py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from myrq.backends.base import Broker
from myrq.backends.memory import MemoryBroker, MemoryStore
from myrq.backends.selection import (
    BrokerFactory,
    broker_from_url,
    check_broker_spec,
    register_scheme,
)
from myrq.backends.store import Store, Txn
from myrq.backends.store_broker import StoreBroker
from myrq.backends.values import (
    CronEntry,
    CronJob,
    Delivery,
    EnqueueRequest,
    Finish,
    FinishRequest,
    Reaped,
)

if TYPE_CHECKING:
    from myrq.backends.redis import RedisBroker

__all__ = [
    "Broker",
    "BrokerFactory",
    "CronEntry",
    "CronJob",
    "Delivery",
    "EnqueueRequest",
    "Finish",
    "FinishRequest",
    "MemoryBroker",
    "MemoryStore",
    "Reaped",
    "RedisBroker",
    "Store",
    "StoreBroker",
    "Txn",
    "broker_from_url",
    "check_broker_spec",
    "register_scheme",
]


def __getattr__(name: str) -> Any:
    if name == "RedisBroker":
        from myrq.backends.redis import RedisBroker  # noqa: PLC0415 - lazy by design

        return RedisBroker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
