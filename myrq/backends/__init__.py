"""Brokers: the Broker contract, the built-in brokers, selection by URL.

``RedisBroker`` is imported on first use (``from myrq.backends import
RedisBroker`` works as usual), so ``import myrq`` does not import redis-py;
so are the Store brokers (``MemoryBroker``, ``StoreBroker``, ``Store``...),
which a worker on Redis never needs: it starts faster without them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from myrq.backends.base import Broker
from myrq.backends.selection import (
    BrokerFactory,
    broker_from_url,
    check_broker_spec,
    register_scheme,
)
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
    from myrq.backends.memory import MemoryBroker, MemoryStore
    from myrq.backends.redis import RedisBroker
    from myrq.backends.store import Store, Txn
    from myrq.backends.store_broker import StoreBroker

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


#: Names imported on first use, and the module each comes from.
_LAZY = {
    "RedisBroker": "myrq.backends.redis",
    "MemoryBroker": "myrq.backends.memory",
    "MemoryStore": "myrq.backends.memory",
    "Store": "myrq.backends.store",
    "Txn": "myrq.backends.store",
    "StoreBroker": "myrq.backends.store_broker",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value
