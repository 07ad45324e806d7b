"""Every broker step on a :class:`~myrq.backends.store.Store`, in Python.

This is the Python copy of the Redis broker's Lua scripts: the same keys
(``job:<id>``, ``queue:<name>``, ``queues``, ``leases``, ``claim:<id>``,
``workers``, ``worker:<name>``), the same order of checks and writes, the
same results. Each method names the script it mirrors; a change to one is a
change to both, and the broker contract suite runs over both to hold them to
the same behaviour.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Iterator, Sequence

from myrq.backends import arguments
from myrq.backends import store_steps as steps
from myrq.backends import store_workflow as workflow
from myrq.backends.base import Broker
from myrq.backends.control import REGISTRY_STATES
from myrq.backends.store import Store
from myrq.backends.store_keys import (
    ENDED_STATES,
    LEASES,
    QUEUES,
    WORKERS,
    cron_key,
    dependents_key,
    job_key,
    queue_key,
    queue_of,
    scheduled_key,
    state_key,
    worker_key,
)
from myrq.backends.values import (
    CronEntry,
    CronJob,
    Delivery,
    EnqueueRequest,
    Fields,
    FinishRequest,
    Reaped,
)
from myrq.defaults import DEFAULT_FAILURE_TTL
from myrq.exceptions import InvalidJobError, JobExistsError
from myrq.schema import (
    ENDED,
    F_ATTEMPTS,
    F_CKEY,
    F_HAS_DEPENDENTS,
    F_LEASE,
    F_QUEUE,
    F_STATUS,
    F_STOP,
    S_RUNNING,
    parse_count,
)


class StoreBroker(Broker):
    """A broker that keeps its keys in ``store``; see the module docstring."""

    batch_claims = True

    def __init__(self, store: Store, *, expired_ttl: float | None = DEFAULT_FAILURE_TTL) -> None:
        self.store = store
        self.url = store.url
        #: How long a job canceled for its ttl is kept without a failure_ttl of its own.
        self.expired_ttl_ms = arguments.ttl_ms(expired_ttl)

    # -- producing (enqueue.lua) ---------------------------------------------------

    def enqueue(
        self,
        queue: str,
        job_id: str,
        fields: Fields,
        *,
        at: float | None = None,
        delay: float | None = None,
        front: bool = False,
        ttl: float | None = None,
    ) -> None:
        if self.enqueue_many([EnqueueRequest(queue, job_id, fields, at, delay, front, ttl)]):
            raise JobExistsError(job_id)

    def enqueue_many(self, requests: Sequence[EnqueueRequest]) -> list[str]:
        for r in requests:
            arguments.job_id(r.job_id)
            arguments.fields(r.fields)
            for parent in r.depends_on:
                arguments.job_id(parent)
        timing = [arguments.schedule_ms(r.at, r.delay, r.ttl) for r in requests]
        refused: list[str] = []
        missing: list[tuple[str, str]] = []
        with self.store.transaction() as t:
            for req, (due, delay, ttl) in zip(requests, timing, strict=True):
                done = workflow.enqueue(t, req, due, delay, ttl, self.expired_ttl_ms)
                if done is False:
                    refused.append(req.job_id)
                elif isinstance(done, str):
                    missing.append((req.job_id, done))
        if missing:
            raise InvalidJobError(arguments.missing_parents(missing, len(requests)))
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
                out, next_due = steps.claim(
                    t, queues, worker, lease_ms, count, claim_id, self.expired_ttl_ms
                ) if count else ([], None)  # fmt: skip
            remaining = deadline - time.monotonic()
            if out or remaining <= 0:
                return out
            if next_due is not None:  # wake when the next scheduled job falls due
                remaining = min(remaining, next_due + 0.001)
            self.store.wait(seen, remaining)

    def finish(self, job_id: str, token: str, fields: Fields, ttl: float | None) -> bool:
        ttl_ms = arguments.ttl_ms(ttl)
        arguments.fields(fields)
        with self.store.transaction() as t:
            queue = queue_of(t.hgetall(job_key(job_id)) or {})
            request = FinishRequest(job_id, token, fields, ttl, queue)
            return steps.finish(t, request, ttl_ms, -1, self.expired_ttl_ms)

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
        for f in finishes:
            arguments.fields(f.fields)
        plans = [(f, arguments.ttl_ms(f.ttl), arguments.retry_ms(f.retry_delay)) for f in finishes]
        lease_ms = arguments.lease_ms(lease)
        count = arguments.whole("count", count, minimum=0)
        claim_id = claim_id or secrets.token_hex(8)
        with self.store.transaction() as t:
            written = [
                steps.finish(t, f, ttl_ms, retry_ms, self.expired_ttl_ms)
                for f, ttl_ms, retry_ms in plans
            ]
            claimed = (
                steps.claim(t, queues, worker, lease_ms, count, claim_id, self.expired_ttl_ms)[0]
                if count > 0
                else []
            )
        return written, claimed

    # -- leases (renew.lua, release.lua, reap.lua) ---------------------------------

    def renew(self, job_id: str, token: str, lease: float) -> bool:
        return bool(self.renew_many([(job_id, token)], lease)[0])

    def renew_many(self, held: Sequence[tuple[str, str]], lease: float) -> list[int]:
        lease_ms = arguments.lease_ms(lease)
        out: list[int] = []
        with self.store.transaction() as t:
            deadline = t.now() + lease_ms / 1000
            for job_id, token in held:
                record = t.hgetall(job_key(job_id)) or {}
                ok = record.get(F_LEASE) == token.encode() and record.get(F_STATUS) == S_RUNNING
                if ok:  # a lease lost with the lease set is put back (renew.lua)
                    t.zadd(LEASES, job_id, deadline)
                out.append((2 if record.get(F_STOP) == b"1" else 1) if ok else 0)
        return out

    def release(self, job_id: str, token: str) -> bool:
        key = job_key(job_id)
        with self.store.transaction() as t:
            record = t.hgetall(key)
            if record is None or record.get(F_LEASE) != token.encode():
                return False
            if not t.zrem(LEASES, job_id):
                return False
            queue = queue_of(record)
            t.zrem(state_key(queue, "running"), job_id)
            steps.ckey_release(t, job_id, record.get(F_CKEY))
            attempts = parse_count(record.get(F_ATTEMPTS))
            if attempts > 0:
                t.hset(key, {F_ATTEMPTS: str(attempts - 1).encode()})
            steps.requeue(t, job_id, queue, front=True)
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

    # -- control (cancel.lua, run_now.lua, stop.lua, requeue.lua, ...) -------------

    def cancel(self, job_id: str, ttl: float | None, error: bytes) -> str | None:
        ttl_ms = arguments.ttl_ms(ttl)
        with self.store.transaction() as t:
            return workflow.cancel(t, job_id, ttl_ms, error, self.expired_ttl_ms)

    def run_now(self, job_id: str) -> bool:
        with self.store.transaction() as t:
            return workflow.run_now(t, job_id)

    def stop(self, job_id: str) -> str | None:
        with self.store.transaction() as t:
            return workflow.stop(t, job_id)

    def requeue(self, job_id: str) -> bool:
        with self.store.transaction() as t:
            return workflow.requeue_ended(t, job_id)

    def empty(self, queue: str) -> int:
        with self.store.transaction() as t:
            return workflow.empty(t, queue, self.expired_ttl_ms)

    def set_fields(self, job_id: str, fields: Fields) -> bool:
        arguments.fields(fields)
        with self.store.transaction() as t:
            if not t.exists(job_key(job_id)):
                return False
            t.hset(job_key(job_id), fields)
            return True

    # -- registries ------------------------------------------------------------------

    def registry(self, queue: str, state: str, start: int = 0, stop: int = -1) -> list[str]:
        key = state_key(queue, arguments.state(state))
        with self.store.transaction() as t:
            if state == "pending":
                return t.lrange(key, start, stop)
            floor = t.now() if state in ENDED_STATES else -math.inf
            limit = -1 if stop == -1 else max(stop - start + 1, 0)
            return t.zrange_above(key, floor, start, limit)

    def registry_count(self, queue: str, state: str) -> int:
        key = state_key(queue, arguments.state(state))
        with self.store.transaction() as t:
            if state == "pending":
                return t.llen(key)
            return t.zcount_above(key, t.now() if state in ENDED_STATES else -math.inf)

    def trim_registries(self, queue: str) -> int:
        with self.store.transaction() as t:
            now = t.now()
            return sum(t.zremrange_below(state_key(queue, s), now) for s in ENDED_STATES)

    def scheduled(self, queue: str, limit: int = 1000) -> list[tuple[str, float]]:
        limit = arguments.whole("limit", limit, minimum=1)
        with self.store.transaction() as t:
            return t.zrange_with_scores(scheduled_key(queue), limit)

    def wait_for_end(self, job_id: str, timeout: float) -> bool:
        deadline = time.monotonic() + arguments.wait_seconds(timeout)
        while True:
            seen = self.store.version()
            with self.store.transaction() as t:
                status = t.hget(job_key(job_id), F_STATUS)
                gone = status is None and not t.exists(job_key(job_id))
            if gone or status in ENDED:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.store.wait(seen, remaining)

    # -- periodic jobs (cron.lua) ------------------------------------------------------

    def cron_set(self, queue: str, name: str, spec: bytes, version: str, first: CronJob) -> None:
        with self.store.transaction() as t:
            workflow.cron_drop_next(t, queue, name)
            ckey = cron_key(queue)
            t.hset(ckey, {name: spec, f"{name}:version": version.encode()})
            t.hdel(ckey, f"{name}:next")
            workflow.cron_schedule(t, queue, name, first)

    def cron_next(self, queue: str, name: str, version: str, job: CronJob) -> bool:
        with self.store.transaction() as t:
            if t.hget(cron_key(queue), f"{name}:version") != version.encode():
                return False
            return workflow.cron_schedule(t, queue, name, job)

    def cron_remove(self, queue: str, name: str) -> bool:
        with self.store.transaction() as t:
            ckey = cron_key(queue)
            if t.hget(ckey, name) is None:
                return False
            workflow.cron_drop_next(t, queue, name)
            t.hdel(ckey, name, f"{name}:version", f"{name}:next")
            return True

    def crons(self, queue: str) -> dict[str, CronEntry]:
        with self.store.transaction() as t:
            raw = t.hgetall(cron_key(queue)) or {}
        return {
            name: CronEntry(
                spec,
                raw.get(f"{name}:version", b"").decode(),
                raw[f"{name}:next"].decode() if f"{name}:next" in raw else None,
            )
            for name, spec in raw.items()
            if not name.endswith((":version", ":next"))
        }

    # -- workers -----------------------------------------------------------------

    def register_worker(self, name: str, fields: Fields, ttl: float) -> None:
        ttl_ms = arguments.lease_ms(ttl)
        arguments.fields(fields)
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
            if t.hget(key, F_STATUS) == S_RUNNING:  # it held a slot of its concurrency key
                steps.ckey_release(t, job_id, t.hget(key, F_CKEY))
            if t.hget(key, F_HAS_DEPENDENTS) == b"1":  # it will never finish: cancel them
                workflow.settle(t, job_id, False, self.expired_ttl_ms)
            if own is not None:
                queue = own.decode("utf-8", "replace")
                t.zrem(scheduled_key(queue), job_id)
                for state in REGISTRY_STATES:
                    if state != "pending":
                        t.zrem(state_key(queue, state), job_id)
            t.delete(dependents_key(job_id))
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
