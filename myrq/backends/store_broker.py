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
from myrq.backends.base import Broker, Delivery, EnqueueRequest, Fields, FinishRequest, Reaped
from myrq.backends.store import Store, Txn
from myrq.exceptions import JobExistsError
from myrq.schema import (
    F_ATTEMPTS,
    F_BATCH,
    F_CREATED_AT,
    F_ENDED_AT,
    F_ERROR,
    F_FAILURE_TTL,
    F_LEASE,
    F_PAYLOAD,
    F_QUEUE,
    F_SOLO,
    F_STARTED_AT,
    F_STATUS,
    F_WORKER,
    LIVE,
    S_FAILED,
    S_PENDING,
    S_RUNNING,
    UNCLAIMABLE,
    abandoned_error,
    format_time,
    parse_count,
    parse_ttl_ms,
)

LEASES = "leases"
QUEUES = "queues"
WORKERS = "workers"


def job_key(job_id: str) -> str:
    return f"job:{job_id}"


def queue_key(queue: str) -> str:
    return f"queue:{queue}"


def claim_key(claim_id: str) -> str:
    return f"claim:{claim_id}"


def worker_key(name: str) -> str:
    return f"worker:{name}"


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
                    if not _resent(t, key, req.fields):
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
                out = _claim(t, queues, worker, lease_ms, count, claim_id) if count else []
            remaining = deadline - time.monotonic()
            if out or remaining <= 0:
                return out
            self.store.wait(seen, remaining)

    def finish(self, job_id: str, token: str, fields: Fields, ttl: float | None) -> bool:
        ttl_ms = arguments.ttl_ms(ttl)
        with self.store.transaction() as t:
            return _finish(t, FinishRequest(job_id, token, fields, ttl), ttl_ms)

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
            written = [_finish(t, f, ttl_ms) for f, ttl_ms in zip(finishes, ttls, strict=True)]
            claimed = _claim(t, queues, worker, lease_ms, count, claim_id) if count > 0 else []
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
            _requeue(t, job_id, _queue_of(record), front=True)
            return True

    def reap(
        self, max_attempts: int, failure_ttl: float | None = None, limit: int = 100
    ) -> list[Reaped]:
        max_attempts = arguments.whole("max_attempts", max_attempts, minimum=0)
        default_ttl_ms = arguments.ttl_ms(failure_ttl)
        limit = arguments.whole("limit", limit, minimum=1)
        with self.store.transaction() as t:
            expired = t.zrange_by_score(LEASES, t.now(), limit)
            return [_reap_one(t, i, max_attempts, default_ttl_ms) for i in expired]

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
            return [_reap_one(t, i, max_attempts, default_ttl_ms) for i in orphans]

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


# -- the steps' parts: ``t`` is inside one transaction ----------------------------


def _queue_of(record: Fields) -> str:
    raw = record.get(F_QUEUE)
    return raw.decode("utf-8", "replace") if raw else "default"


def _resent(t: Txn, key: str, fields: Fields) -> bool:
    """An enqueue resent after a lost reply finds its own record (enqueue.lua's rule)."""
    created = fields.get(F_CREATED_AT)
    if created is None:
        return False
    return t.hget(key, F_CREATED_AT) == created and t.hget(key, F_PAYLOAD) == fields.get(F_PAYLOAD)


def _finish(t: Txn, f: FinishRequest, ttl_ms: int) -> bool:
    """Fencing: write only if the token still holds a running job."""
    key = job_key(f.job_id)
    current = t.hgetall(key)
    if current is None or current.get(F_LEASE) != f.token.encode():
        return False
    if current.get(F_STATUS) != S_RUNNING or not t.zrem(LEASES, f.job_id):
        return False
    if ttl_ms == 0:
        t.delete(key)
        return True
    if f.fields:
        t.hset(key, f.fields)
    if ttl_ms > 0:
        t.expire(key, t.now() + ttl_ms / 1000)
    return True


def _claim(  # noqa: PLR0917 - one step's arguments
    t: Txn, queues: Sequence[str], worker: str, lease_ms: int, count: int, claim_id: str
) -> list[Delivery]:
    ckey = claim_key(claim_id)
    before = t.lrange(ckey, 0, -1)
    if before:  # a resend of a claim that was carried out: the same jobs, as they are now
        return _replay(t, before, worker, claim_id)
    out: list[Delivery] = []
    claimed: list[str] = []
    now = t.now()
    started = format_time(now)
    batch = b"1" if count > 1 else b"0"
    for name in queues:
        qkey = queue_key(name)
        while len(out) < count:
            job_id = t.pop(qkey)
            if job_id is None:
                break
            key = job_key(job_id)
            record = t.hgetall(key)
            if record is None:  # no record: report it, touch nothing
                out.append(Delivery(job_id, name, None, None))
                continue
            if record.get(F_STATUS) in UNCLAIMABLE:
                out.append(Delivery(job_id, name, None, record))
                continue
            solo = record.get(F_SOLO) == b"1"
            if solo and out:
                t.push(qkey, job_id, front=True)  # runs alone: first in line next time
                return _claimed(t, ckey, claimed, lease_ms, out)
            if solo:
                count = len(out) + 1  # nothing else joins it
            claimed.append(job_id)
            token = f"{worker}:{claim_id}:{len(claimed)}"
            claim = {
                F_STATUS: S_RUNNING,
                F_STARTED_AT: started,
                F_WORKER: worker.encode(),
                F_LEASE: token.encode(),
                F_QUEUE: name.encode(),
                F_ATTEMPTS: str(parse_count(record.get(F_ATTEMPTS)) + 1).encode(),
                F_BATCH: b"0" if solo else batch,
            }
            t.hset(key, claim)
            t.expire(key, None)
            t.zadd(LEASES, job_id, now + lease_ms / 1000)
            record.update(claim)
            out.append(Delivery(job_id, name, token, record))
        if len(out) >= count:
            break
    return _claimed(t, ckey, claimed, lease_ms, out)


def _claimed(
    t: Txn, ckey: str, claimed: list[str], lease_ms: int, out: list[Delivery]
) -> list[Delivery]:
    """Keep the claim's ids for a lease, so that a resend hands out the same jobs."""
    if claimed:
        for job_id in claimed:
            t.push(ckey, job_id)
        t.expire(ckey, t.now() + lease_ms / 1000)
    return out


def _replay(t: Txn, job_ids: list[str], worker: str, claim_id: str) -> list[Delivery]:
    out: list[Delivery] = []
    for n, job_id in enumerate(job_ids, 1):
        token = f"{worker}:{claim_id}:{n}"
        record = t.hgetall(job_key(job_id))
        if record and record.get(F_LEASE) == token.encode() and record.get(F_STATUS) == S_RUNNING:
            out.append(Delivery(job_id, _queue_of(record), token, record))
    return out


def _reap_one(t: Txn, job_id: str, max_attempts: int, default_ttl_ms: int) -> Reaped:
    """Requeue (or fail, past max_attempts) one job whose lease expired (reap.lua)."""
    t.zrem(LEASES, job_id)
    key = job_key(job_id)
    record = t.hgetall(key)
    if record is None:
        return Reaped(job_id, None, "missing", 0)
    queue = _queue_of(record)
    attempts = parse_count(record.get(F_ATTEMPTS))
    if record.get(F_BATCH) == b"1":
        # Claimed in a batch: whether it had started is unknown. Requeue it
        # uncounted, to run alone from now on.
        attempts = max(0, attempts - 1)
        t.hset(key, {F_ATTEMPTS: str(attempts).encode(), F_BATCH: b"0", F_SOLO: b"1"})
        _requeue(t, job_id, queue, front=False)
        return Reaped(job_id, queue, "requeued", attempts)
    if max_attempts > 0 and attempts >= max_attempts:
        _abandon(t, key, record, attempts, default_ttl_ms)
        return Reaped(job_id, queue, "failed", attempts)
    _requeue(t, job_id, queue, front=False)
    return Reaped(job_id, queue, "requeued", attempts)


def _requeue(t: Txn, job_id: str, queue: str, *, front: bool) -> None:
    """Back on its queue as ``pending``, without the claim's fields."""
    key = job_key(job_id)
    t.hset(key, {F_STATUS: S_PENDING})
    t.hdel(key, F_LEASE, F_WORKER, F_STARTED_AT)
    t.push(queue_key(queue), job_id, front=front)


def _abandon(t: Txn, key: str, record: Fields, attempts: int, default_ttl_ms: int) -> None:
    """Fail a job whose worker stopped renewing its lease ``attempts`` times."""
    ttl_ms = parse_ttl_ms(record.get(F_FAILURE_TTL))  # the job's own setting wins
    if ttl_ms is None:
        ttl_ms = default_ttl_ms
    now = t.now()
    t.hset(
        key, {F_STATUS: S_FAILED, F_ENDED_AT: format_time(now), F_ERROR: abandoned_error(attempts)}
    )
    t.hdel(key, F_LEASE)
    if ttl_ms == 0:
        t.delete(key)
    elif ttl_ms > 0:
        t.expire(key, now + ttl_ms / 1000)
