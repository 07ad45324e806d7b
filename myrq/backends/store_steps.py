"""The parts of the broker steps that :mod:`myrq.backends.store_broker` runs.

Each function works inside one transaction ``t`` and mirrors a part of a Lua
script (named in its docstring); keys are as in the Redis broker, without
its prefix.
"""

from __future__ import annotations

from collections.abc import Sequence

from myrq.backends.base import Delivery, Fields, FinishRequest, Reaped
from myrq.backends.store import Txn
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


# -- the steps' parts: ``t`` is inside one transaction ----------------------------


def queue_of(record: Fields) -> str:
    raw = record.get(F_QUEUE)
    return raw.decode("utf-8", "replace") if raw else "default"


def resent(t: Txn, key: str, fields: Fields) -> bool:
    """An enqueue resent after a lost reply finds its own record (enqueue.lua's rule)."""
    created = fields.get(F_CREATED_AT)
    if created is None:
        return False
    return t.hget(key, F_CREATED_AT) == created and t.hget(key, F_PAYLOAD) == fields.get(F_PAYLOAD)


def finish(t: Txn, f: FinishRequest, ttl_ms: int) -> bool:
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


def claim(  # noqa: PLR0917 - one step's arguments
    t: Txn, queues: Sequence[str], worker: str, lease_ms: int, count: int, claim_id: str
) -> list[Delivery]:
    ckey = claim_key(claim_id)
    before = t.lrange(ckey, 0, -1)
    if before:  # a resend of a claim that was carried out: the same jobs, as they are now
        return replay(t, before, worker, claim_id)
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
                return remember_claim(t, ckey, claimed, lease_ms, out)
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
    return remember_claim(t, ckey, claimed, lease_ms, out)


def remember_claim(
    t: Txn, ckey: str, claimed: list[str], lease_ms: int, out: list[Delivery]
) -> list[Delivery]:
    """Keep the claim's ids for a lease, so that a resend hands out the same jobs."""
    if claimed:
        for job_id in claimed:
            t.push(ckey, job_id)
        t.expire(ckey, t.now() + lease_ms / 1000)
    return out


def replay(t: Txn, job_ids: list[str], worker: str, claim_id: str) -> list[Delivery]:
    out: list[Delivery] = []
    for n, job_id in enumerate(job_ids, 1):
        token = f"{worker}:{claim_id}:{n}"
        record = t.hgetall(job_key(job_id))
        if record and record.get(F_LEASE) == token.encode() and record.get(F_STATUS) == S_RUNNING:
            out.append(Delivery(job_id, queue_of(record), token, record))
    return out


def reap_one(t: Txn, job_id: str, max_attempts: int, default_ttl_ms: int) -> Reaped:
    """Requeue (or fail, past max_attempts) one job whose lease expired (reap.lua)."""
    t.zrem(LEASES, job_id)
    key = job_key(job_id)
    record = t.hgetall(key)
    if record is None:
        return Reaped(job_id, None, "missing", 0)
    queue = queue_of(record)
    attempts = parse_count(record.get(F_ATTEMPTS))
    if record.get(F_BATCH) == b"1":
        # Claimed in a batch: whether it had started is unknown. Requeue it
        # uncounted, to run alone from now on.
        attempts = max(0, attempts - 1)
        t.hset(key, {F_ATTEMPTS: str(attempts).encode(), F_BATCH: b"0", F_SOLO: b"1"})
        requeue(t, job_id, queue, front=False)
        return Reaped(job_id, queue, "requeued", attempts)
    if max_attempts > 0 and attempts >= max_attempts:
        abandon(t, key, record, attempts, default_ttl_ms)
        return Reaped(job_id, queue, "failed", attempts)
    requeue(t, job_id, queue, front=False)
    return Reaped(job_id, queue, "requeued", attempts)


def requeue(t: Txn, job_id: str, queue: str, *, front: bool) -> None:
    """Back on its queue as ``pending``, without the claim's fields."""
    key = job_key(job_id)
    t.hset(key, {F_STATUS: S_PENDING})
    t.hdel(key, F_LEASE, F_WORKER, F_STARTED_AT)
    t.push(queue_key(queue), job_id, front=front)


def abandon(t: Txn, key: str, record: Fields, attempts: int, default_ttl_ms: int) -> None:
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
