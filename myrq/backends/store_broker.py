"""Every broker step on a :class:`~myrq.backends.store.Store`, in Python.

This is the Python copy of the Redis broker's Lua scripts: the same keys
(``job:<id>``, ``queue:<name>``, ``queues``, ``leases``), the same order of
checks and writes, the same results. Each method names the script it mirrors;
a change to one is a change to both, and the broker contract suite runs over
both to hold them to the same behaviour.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Sequence

from myrq.backends.base import Broker, Delivery, EnqueueRequest, Fields, FinishRequest, Reaped
from myrq.backends.store import Store, Txn
from myrq.exceptions import JobExistsError
from myrq.schema import (
    F_ATTEMPTS,
    F_BATCH,
    F_ENDED_AT,
    F_ERROR,
    F_FAILURE_TTL,
    F_LEASE,
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
    parse_number,
)

LEASES = "leases"
QUEUES = "queues"


def job_key(job_id: str) -> str:
    return f"job:{job_id}"


def queue_key(queue: str) -> str:
    return f"queue:{queue}"


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
    ) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        while True:
            seen = self.store.version()
            with self.store.transaction() as t:
                out = _claim(t, queues, worker, lease, count)
            remaining = deadline - time.monotonic()
            if out or remaining <= 0:
                return out
            self.store.wait(seen, remaining)

    def finish(self, job_id: str, token: str, fields: Fields, ttl: float | None) -> bool:
        with self.store.transaction() as t:
            return _finish(t, FinishRequest(job_id, token, fields, ttl))

    def finish_many_and_dequeue(
        self,
        finishes: Sequence[FinishRequest],
        *,
        queues: Sequence[str],
        worker: str,
        lease: float,
        count: int = 1,
    ) -> tuple[list[bool], list[Delivery]]:
        with self.store.transaction() as t:
            written = [_finish(t, f) for f in finishes]
            claimed = _claim(t, queues, worker, lease, count) if count > 0 else []
        return written, claimed

    # -- leases (renew.lua, release.lua, reap.lua) ---------------------------------

    def renew(self, job_id: str, token: str, lease: float) -> bool:
        with self.store.transaction() as t:
            if t.hget(job_key(job_id), F_LEASE) != token.encode():
                return False
            if t.zscore(LEASES, job_id) is None:
                return False
            t.zadd(LEASES, job_id, t.now() + lease)
            return True

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
        out: list[Reaped] = []
        with self.store.transaction() as t:
            now = t.now()
            for job_id in t.zrange_by_score(LEASES, now, limit):
                t.zrem(LEASES, job_id)
                key = job_key(job_id)
                record = t.hgetall(key)
                if record is None:
                    out.append(Reaped(job_id, None, "missing", 0))
                    continue
                queue = _queue_of(record)
                attempts = parse_count(record.get(F_ATTEMPTS))
                if record.get(F_BATCH) == b"1":
                    # Claimed in a batch: whether it had started is unknown. Requeue
                    # it uncounted, to run alone from now on.
                    attempts = max(0, attempts - 1)
                    t.hset(key, {F_ATTEMPTS: str(attempts).encode(), F_BATCH: b"0", F_SOLO: b"1"})
                    _requeue(t, job_id, queue, front=False)
                    out.append(Reaped(job_id, queue, "requeued", attempts))
                elif max_attempts > 0 and attempts >= max_attempts:
                    _abandon(t, key, record, attempts, now, failure_ttl)
                    out.append(Reaped(job_id, queue, "failed", attempts))
                else:
                    _requeue(t, job_id, queue, front=False)
                    out.append(Reaped(job_id, queue, "requeued", attempts))
        return out

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

    def close(self) -> None:
        self.store.close()


# -- the steps' parts: ``t`` is inside one transaction ----------------------------


def _queue_of(record: Fields) -> str:
    raw = record.get(F_QUEUE)
    return raw.decode("utf-8", "replace") if raw else "default"


def _finish(t: Txn, f: FinishRequest) -> bool:
    """Fencing: write only if the token still holds a running job."""
    key = job_key(f.job_id)
    current = t.hgetall(key)
    if current is None or current.get(F_LEASE) != f.token.encode():
        return False
    if current.get(F_STATUS) != S_RUNNING or not t.zrem(LEASES, f.job_id):
        return False
    if f.ttl is not None and f.ttl <= 0:
        t.delete(key)
        return True
    if f.fields:
        t.hset(key, f.fields)
    if f.ttl is not None:
        t.expire(key, t.now() + f.ttl)
    return True


def _claim(t: Txn, queues: Sequence[str], worker: str, lease: float, count: int) -> list[Delivery]:
    out: list[Delivery] = []
    now = t.now()
    started = format_time(now)
    batch = b"1" if count > 1 else b"0"
    nonce = secrets.token_hex(8)
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
                return out
            if solo:
                count = len(out) + 1  # nothing else joins it
            attempts = min(max(parse_count(record.get(F_ATTEMPTS)), 0), 10**9) + 1
            token = f"{worker}:{nonce}:{len(out) + 1}"
            claim = {
                F_STATUS: S_RUNNING,
                F_STARTED_AT: started,
                F_WORKER: worker.encode(),
                F_LEASE: token.encode(),
                F_QUEUE: name.encode(),
                F_ATTEMPTS: str(attempts).encode(),
                F_BATCH: b"0" if solo else batch,
            }
            t.hset(key, claim)
            t.expire(key, None)
            t.zadd(LEASES, job_id, now + lease)
            record.update(claim)
            out.append(Delivery(job_id, name, token, record))
        if len(out) >= count:
            break
    return out


def _requeue(t: Txn, job_id: str, queue: str, *, front: bool) -> None:
    """Back on its queue as ``pending``, without the claim's fields."""
    key = job_key(job_id)
    t.hset(key, {F_STATUS: S_PENDING})
    t.hdel(key, F_LEASE, F_WORKER, F_STARTED_AT)
    t.push(queue_key(queue), job_id, front=front)


def _abandon(  # noqa: PLR0917 - one caller, the reap step
    t: Txn, key: str, record: Fields, attempts: int, now: float, failure_ttl: float | None
) -> None:
    """Fail a job whose worker stopped renewing its lease ``attempts`` times."""
    t.hset(
        key, {F_STATUS: S_FAILED, F_ENDED_AT: format_time(now), F_ERROR: abandoned_error(attempts)}
    )
    t.hdel(key, F_LEASE)
    ttl = parse_number(record.get(F_FAILURE_TTL))  # the job's own setting wins
    if ttl is None:
        ttl = -1 if failure_ttl is None else failure_ttl
    if ttl == 0:
        t.delete(key)
    elif ttl > 0:
        t.expire(key, now + ttl)
