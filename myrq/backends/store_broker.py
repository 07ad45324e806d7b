"""Every broker step on a :class:`~myrq.backends.store.Store`, in Python.

This is the Python copy of the Redis broker's Lua scripts: the same keys
(``job:<id>``, ``queue:<name>``, ``queues``, ``leases``, ``claim:<id>``,
``workers``, ``worker:<name>``), the same order of checks and writes, the
same results. Each method names the script it mirrors; a change to one is a
change to both, and the broker contract suite runs over both to hold them to
the same behaviour.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Sequence

from myrq.backends import arguments
from myrq.backends import store_steps as steps
from myrq.backends.base import Broker, Delivery, EnqueueRequest, Fields, FinishRequest, Reaped
from myrq.backends.store import Store
from myrq.backends.store_steps import (
    LEASES,
    QUEUES,
    WORKERS,
    job_key,
    queue_key,
    worker_key,
)
from myrq.exceptions import JobExistsError
from myrq.schema import (
    F_ATTEMPTS,
    F_LEASE,
    F_QUEUE,
    F_STATUS,
    LIVE,
    S_PENDING,
    S_RUNNING,
    parse_count,
)


class StoreBroker(Broker):
    """A broker that keeps its keys in ``store``; see the module docstring."""

    batch_claims = True

    def __init__(self, store: Store) -> None:
        self.store = store
        self.url = store.url

    # -- producing (enqueue.lua) ---------------------------------------------------

    def enqueue(self, queue: str, job_id: str, fields: Fields) -> None:
        if self.enqueue_many([EnqueueRequest(queue, job_id, fields)]):
            raise JobExistsError(job_id)

    def enqueue_many(self, requests: Sequence[EnqueueRequest]) -> list[str]:
        refused: list[str] = []
        with self.store.transaction() as t:
            for req in requests:
                key = job_key(req.job_id)
                status = t.hget(key, F_STATUS)
                if status in LIVE:
                    if not steps.resent(t, key, req.fields):
                        refused.append(req.job_id)
                    continue
                t.push(queue_key(req.queue), req.job_id)
                if status is not None:
                    t.delete(key)  # an ended record under this id: replace it whole
                t.hset(
                    key,
                    req.fields if F_STATUS in req.fields else {**req.fields, F_STATUS: S_PENDING},
                )
                t.expire(key, None)
                t.sadd(QUEUES, req.queue)
        return refused

    # -- consuming (finish_and_claim.lua) ------------------------------------------

    def dequeue(
        self,
        queues: Sequence[str],
        worker: str,
        lease: float,
        timeout: float = 0,
        count: int = 1,
        *,
        claim_id: str | None = None,
    ) -> list[Delivery]:
        lease_ms = arguments.lease_ms(lease)
        deadline = time.monotonic() + arguments.wait_seconds(timeout)
        count = arguments.whole("count", count, minimum=0)
        claim_id = claim_id or secrets.token_hex(8)
        while True:
            seen = self.store.version()
            with self.store.transaction() as t:
                out = steps.claim(t, queues, worker, lease_ms, count, claim_id) if count else []
            remaining = deadline - time.monotonic()
            if out or remaining <= 0:
                return out
            self.store.wait(seen, remaining)

    def finish(self, job_id: str, token: str, fields: Fields, ttl: float | None) -> bool:
        ttl_ms = arguments.ttl_ms(ttl)
        with self.store.transaction() as t:
            return steps.finish(t, FinishRequest(job_id, token, fields, ttl), ttl_ms)

    def finish_many_and_dequeue(
        self,
        finishes: Sequence[FinishRequest],
        *,
        queues: Sequence[str],
        worker: str,
        lease: float,
        count: int = 1,
        claim_id: str | None = None,
    ) -> tuple[list[bool], list[Delivery]]:
        ttls = [arguments.ttl_ms(f.ttl) for f in finishes]
        lease_ms = arguments.lease_ms(lease)
        count = arguments.whole("count", count, minimum=0)
        claim_id = claim_id or secrets.token_hex(8)
        with self.store.transaction() as t:
            written = [steps.finish(t, f, ttl_ms) for f, ttl_ms in zip(finishes, ttls, strict=True)]
            claimed = steps.claim(t, queues, worker, lease_ms, count, claim_id) if count > 0 else []
        return written, claimed

    # -- leases (renew.lua, release.lua, reap.lua) ---------------------------------

    def renew(self, job_id: str, token: str, lease: float) -> bool:
        return self.renew_many([(job_id, token)], lease)[0]

    def renew_many(self, held: Sequence[tuple[str, str]], lease: float) -> list[bool]:
        lease_ms = arguments.lease_ms(lease)
        out: list[bool] = []
        with self.store.transaction() as t:
            deadline = t.now() + lease_ms / 1000
            for job_id, token in held:
                ok = t.hget(job_key(job_id), F_LEASE) == token.encode() and t.zrem(LEASES, job_id)
                if ok:
                    t.zadd(LEASES, job_id, deadline)
                out.append(ok)
        return out

    def release(self, job_id: str, token: str) -> bool:
        key = job_key(job_id)
        with self.store.transaction() as t:
            record = t.hgetall(key)
            if record is None or record.get(F_LEASE) != token.encode():
                return False
            if not t.zrem(LEASES, job_id):
                return False
            attempts = parse_count(record.get(F_ATTEMPTS))
            if attempts > 0:
                t.hset(key, {F_ATTEMPTS: str(attempts - 1).encode()})
            steps.requeue(t, job_id, steps.queue_of(record), front=True)
            return True

    def reap(
        self, max_attempts: int, failure_ttl: float | None = None, limit: int = 100
    ) -> list[Reaped]:
        max_attempts = arguments.whole("max_attempts", max_attempts, minimum=0)
        default_ttl_ms = arguments.ttl_ms(failure_ttl)
        limit = arguments.whole("limit", limit, minimum=1)
        with self.store.transaction() as t:
            expired = t.zrange_by_score(LEASES, t.now(), limit)
            return [steps.reap_one(t, i, max_attempts, default_ttl_ms) for i in expired]

    def repair(
        self, job_ids: Sequence[str], max_attempts: int, failure_ttl: float | None = None
    ) -> list[Reaped]:
        max_attempts = arguments.whole("max_attempts", max_attempts, minimum=0)
        default_ttl_ms = arguments.ttl_ms(failure_ttl)
        with self.store.transaction() as t:
            orphans = [
                i
                for i in job_ids
                if t.hget(job_key(i), F_STATUS) == S_RUNNING and t.zscore(LEASES, i) is None
            ]
            return [steps.reap_one(t, i, max_attempts, default_ttl_ms) for i in orphans]

    # -- workers -----------------------------------------------------------------

    def register_worker(self, name: str, fields: Fields, ttl: float) -> None:
        ttl_ms = arguments.lease_ms(ttl)
        with self.store.transaction() as t:
            key = worker_key(name)
            t.delete(key)
            t.hset(key, fields)
            until = t.now() + ttl_ms / 1000
            t.expire(key, until)
            t.zadd(WORKERS, name, until)

    def unregister_worker(self, name: str) -> None:
        with self.store.transaction() as t:
            t.delete(worker_key(name))
            t.zrem(WORKERS, name)

    def workers(self) -> dict[str, dict[str, bytes]]:
        with self.store.transaction() as t:
            for name in t.zrange_by_score(WORKERS, t.now(), 10**9):
                t.zrem(WORKERS, name)  # expired: forget it
            found = {name: t.hgetall(worker_key(name)) for name in t.zmembers(WORKERS)}
        return {name: record for name, record in found.items() if record is not None}

    # -- inspecting ------------------------------------------------------------------

    def get(self, job_id: str) -> dict[str, bytes] | None:
        with self.store.transaction() as t:
            return t.hgetall(job_key(job_id))

    def delete(self, job_id: str) -> bool:  # delete.lua
        key = job_key(job_id)
        with self.store.transaction() as t:
            names = set(t.smembers(QUEUES))
            own = t.hget(key, F_QUEUE)
            if own is not None:
                names.add(own.decode("utf-8", "replace"))
            for name in names:
                t.remove(queue_key(name), job_id)
            t.zrem(LEASES, job_id)
            return t.delete(key)

    def queue_length(self, queue: str) -> int:
        with self.store.transaction() as t:
            return t.llen(queue_key(queue))

    def queued_ids(self, queue: str, start: int = 0, stop: int = -1) -> list[str]:
        with self.store.transaction() as t:
            return t.lrange(queue_key(queue), start, stop)

    def queue_names(self) -> list[str]:
        with self.store.transaction() as t:
            return sorted(t.smembers(QUEUES))

    def job_ids(self) -> Iterator[str]:
        head = job_key("")
        with self.store.transaction() as t:
            keys = t.keys(head)
        return iter([k[len(head) :] for k in keys])

    def leased_ids(self) -> list[str]:
        with self.store.transaction() as t:
            return t.zmembers(LEASES)

    def lease_deadline(self, job_id: str) -> float | None:
        with self.store.transaction() as t:
            return t.zscore(LEASES, job_id)

    def close(self) -> None:
        self.store.close()
