"""The keys of a :class:`~myrq.backends.store_broker.StoreBroker`: Redis's, without the prefix."""

from __future__ import annotations

from myrq.backends.values import Fields
from myrq.schema import F_QUEUE

LEASES = "leases"
QUEUES = "queues"
WORKERS = "workers"
#: States whose registries are scored by when the record expires.
ENDED_STATES = ("finished", "failed", "timeout", "canceled", "stopped")


def job_key(job_id: str) -> str:
    return f"job:{job_id}"


def queue_key(queue: str) -> str:
    return f"queue:{queue}"


def scheduled_key(queue: str) -> str:
    return f"scheduled:{queue}"


def state_key(queue: str, state: str) -> str:
    """The registry of ``queue``'s jobs in ``state`` (pending: the queue itself)."""
    return queue_key(queue) if state == "pending" else f"{state}:{queue}"


def dependents_key(job_id: str) -> str:
    return f"dependents:{job_id}"


def ckey_set(key: str) -> str:
    """The ids running with concurrency key ``key`` (a zset of score 0: a set)."""
    return f"ckey:{key}"


def ckey_wait(key: str) -> str:
    """The ids waiting for a slot of concurrency key ``key``."""
    return f"ckwait:{key}"


def cron_key(queue: str) -> str:
    return f"cron:{queue}"


def claim_key(claim_id: str) -> str:
    return f"claim:{claim_id}"


def worker_key(name: str) -> str:
    return f"worker:{name}"


def queue_of(record: Fields) -> str:
    raw = record.get(F_QUEUE)
    return raw.decode("utf-8", "replace") if raw else "default"
