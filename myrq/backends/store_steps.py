"""The parts of the broker steps that :mod:`myrq.backends.store_broker` runs.

Each function works inside one transaction ``t`` and mirrors a part of a Lua
script (named in its docstring); keys are as in the Redis broker, without
its prefix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from myrq.backends.store import Txn
from myrq.backends.values import CronJob, Delivery, EnqueueRequest, Fields, FinishRequest, Reaped
from myrq.schema import (
    EXPIRED_ERROR,
    F_AT_FRONT,
    F_ATTEMPTS,
    F_BATCH,
    F_CREATED_AT,
    F_ENDED_AT,
    F_ERROR,
    F_EXPIRES_AT,
    F_FAILURE_TTL,
    F_LEASE,
    F_PAYLOAD,
    F_QUEUE,
    F_SOLO,
    F_STARTED_AT,
    F_STATUS,
    F_WORKER,
    LIVE,
    S_CANCELED,
    S_FAILED,
    S_PENDING,
    S_RUNNING,
    S_SCHEDULED,
    UNCLAIMABLE,
    abandoned_error,
    format_number,
    format_time,
    parse_count,
    parse_number,
    parse_ttl_ms,
)

LEASES = "leases"
QUEUES = "queues"
WORKERS = "workers"


def job_key(job_id: str) -> str:
    return f"job:{job_id}"


def queue_key(queue: str) -> str:
    return f"queue:{queue}"


def scheduled_key(queue: str) -> str:
    return f"scheduled:{queue}"


def cron_key(queue: str) -> str:
    return f"cron:{queue}"


def claim_key(claim_id: str) -> str:
    return f"claim:{claim_id}"


def worker_key(name: str) -> str:
    return f"worker:{name}"


# -- the steps' parts: ``t`` is inside one transaction ----------------------------


def queue_of(record: Fields) -> str:
    raw = record.get(F_QUEUE)
    return raw.decode("utf-8", "replace") if raw else "default"


def resent(t: Txn, key: str, fields: Fields) -> bool:
    """An enqueue resent after a lost reply finds its own record, in any status (enqueue.lua)."""
    created = fields.get(F_CREATED_AT)
    if created is None:
        return False
    return t.hget(key, F_CREATED_AT) == created and t.hget(key, F_PAYLOAD) == fields.get(F_PAYLOAD)


def finish(t: Txn, f: FinishRequest, ttl_ms: int, retry_ms: int) -> bool:
    """Fencing: write only if the token still holds a running job (finish_and_claim.lua)."""
    key = job_key(f.job_id)
    current = t.hgetall(key)
    if current is None or current.get(F_LEASE) != f.token.encode():
        return False
    if current.get(F_STATUS) != S_RUNNING or not t.zrem(LEASES, f.job_id):
        return False
    if retry_ms >= 0:  # not final: back on its queue, or scheduled
        t.hset(key, {**f.fields, F_ATTEMPTS: b"0"})
        if retry_ms == 0:
            t.push(queue_key(f.queue), f.job_id)
        else:
            t.zadd(scheduled_key(f.queue), f.job_id, t.now() + retry_ms / 1000)
        return True
    if ttl_ms == 0:
        t.delete(key)
    else:
        if f.fields:
            t.hset(key, f.fields)
        if ttl_ms > 0:
            t.expire(key, t.now() + ttl_ms / 1000)
    t.wake = True  # a client may wait for it to end
    return True


def claim(  # noqa: PLR0917 - one step's arguments
    t: Txn,
    queues: Sequence[str],
    worker: str,
    lease_ms: int,
    count: int,
    claim_id: str,
    expired_ttl_ms: int,
) -> tuple[list[Delivery], float | None]:
    """The claim part of finish_and_claim.lua: (deliveries, seconds until the next due job)."""
    ckey = claim_key(claim_id)
    before = t.lrange(ckey, 0, -1)
    if before:  # a resend of a claim that was carried out: the same jobs, as they are now
        return replay(t, before, worker, claim_id), None
    out: list[Delivery] = []
    claimed: list[str] = []
    now = t.now()
    started = format_time(now)
    batch = b"1" if count > 1 else b"0"
    for name in queues:
        qkey = queue_key(name)
        promote(t, name, now)
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
            expires = parse_number(record.get(F_EXPIRES_AT))
            if expires is not None and expires < now * 1000:
                expire(t, key, record, expired_ttl_ms)
                out.append(
                    Delivery(job_id, name, None, {**record, F_STATUS: S_CANCELED}, "expired")
                )
                continue
            solo = record.get(F_SOLO) == b"1"
            if solo and out:
                t.push(qkey, job_id, front=True)  # runs alone: first in line next time
                return remember_claim(t, ckey, claimed, lease_ms, out), None
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
            if expires is not None:
                t.hdel(key, F_EXPIRES_AT)  # the ttl bounds the first start only
            t.expire(key, None)
            t.zadd(LEASES, job_id, now + lease_ms / 1000)
            record.update(claim)
            out.append(Delivery(job_id, name, token, record))
        if len(out) >= count:
            break
    if claimed or out:
        return remember_claim(t, ckey, claimed, lease_ms, out), None
    dues = [t.zrange_with_scores(scheduled_key(q), 1) for q in queues]
    soonest = [items[0][1] for items in dues if items]
    return out, (max(min(soonest) - now, 0.0) if soonest else None)


def promote(t: Txn, queue: str, now: float) -> None:
    """Scheduled jobs of ``queue`` now due go to its end (or front): a claim's first part."""
    skey = scheduled_key(queue)
    for job_id in t.zrange_by_score(skey, now, 100):
        t.zrem(skey, job_id)
        key = job_key(job_id)
        if t.hget(key, F_STATUS) == S_SCHEDULED:
            t.hset(key, {F_STATUS: S_PENDING})
            t.push(queue_key(queue), job_id, front=t.hget(key, F_AT_FRONT) == b"1")


def expire(t: Txn, key: str, record: Fields, expired_ttl_ms: int) -> None:
    """Not started within its ttl: canceled, not run."""
    now = t.now()
    t.hset(key, {F_STATUS: S_CANCELED, F_ENDED_AT: format_time(now), F_ERROR: EXPIRED_ERROR})
    keep(t, key, record, expired_ttl_ms, now)


def keep(t: Txn, key: str, record: Fields, default_ttl_ms: int, now: float) -> None:
    """Set an ended record's lifetime from its failure_ttl, or the default; tell waiters."""
    ttl_ms = parse_ttl_ms(record.get(F_FAILURE_TTL))
    if ttl_ms is None:
        ttl_ms = default_ttl_ms
    if ttl_ms == 0:
        t.delete(key)
    elif ttl_ms > 0:
        t.expire(key, now + ttl_ms / 1000)
    t.wake = True


def cancel(t: Txn, job_id: str, ttl_ms: int, error: bytes) -> str | None:
    """cancel.lua: a pending or scheduled job ends canceled."""
    key = job_key(job_id)
    status = t.hget(key, F_STATUS)
    if status not in (S_PENDING, S_SCHEDULED):
        return None
    queue = queue_of(t.hgetall(key) or {})
    if status == S_PENDING:
        t.remove(queue_key(queue), job_id)
    else:
        t.zrem(scheduled_key(queue), job_id)
    t.hset(key, {F_STATUS: S_CANCELED, F_ENDED_AT: format_time(t.now()), F_ERROR: error})
    if ttl_ms == 0:
        t.delete(key)
    elif ttl_ms > 0:
        t.expire(key, t.now() + ttl_ms / 1000)
    t.wake = True
    return status.decode()


def run_now(t: Txn, job_id: str) -> bool:
    """run_now.lua: a scheduled job goes to its queue now."""
    key = job_key(job_id)
    record = t.hgetall(key)
    if record is None or record.get(F_STATUS) != S_SCHEDULED:
        return False
    queue = queue_of(record)
    t.zrem(scheduled_key(queue), job_id)
    t.hset(key, {F_STATUS: S_PENDING})
    t.push(queue_key(queue), job_id, front=record.get(F_AT_FRONT) == b"1")
    return True


def enqueue(t: Txn, req: EnqueueRequest, due_ms: int, delay_ms: int, ttl_ms: int) -> bool:
    """enqueue.lua for one job: False when a live job holds the id."""
    key = job_key(req.job_id)
    if resent(t, key, req.fields):
        return True  # stored by an earlier send of this very call: not again
    status = t.hget(key, F_STATUS)
    if status in LIVE:
        return False
    now_ms = t.now() * 1000
    due = due_ms if due_ms > 0 else now_ms + delay_ms
    later = due > now_ms
    if status is not None:
        t.delete(key)  # an ended record under this id: replace it whole
    t.hset(key, req.fields if F_STATUS in req.fields else {**req.fields, F_STATUS: S_PENDING})
    if ttl_ms > 0:
        t.hset(key, {F_EXPIRES_AT: format_number(max(due, now_ms) + ttl_ms)})
    t.expire(key, None)
    if later:
        t.hset(key, {F_STATUS: S_SCHEDULED, **({F_AT_FRONT: b"1"} if req.front else {})})
        t.zadd(scheduled_key(req.queue), req.job_id, due / 1000)
    else:
        t.push(queue_key(req.queue), req.job_id, front=req.front)
    t.sadd(QUEUES, req.queue)
    return True


def cron_schedule(t: Txn, queue: str, name: str, job: CronJob) -> bool:
    """cron.lua's schedule(): the next job of a schedule, unless a live job has its id."""
    key = job_key(job.job_id)
    if t.hget(key, F_STATUS) in LIVE:
        return False
    t.delete(key)
    t.hset(key, {**job.fields, F_STATUS: S_SCHEDULED})
    t.zadd(scheduled_key(queue), job.job_id, math.ceil(job.at * 1000) / 1000)
    t.sadd(QUEUES, queue)
    t.hset(cron_key(queue), {f"{name}:next": job.job_id.encode()})
    return True


def cron_drop_next(t: Txn, queue: str, name: str) -> None:
    """cron.lua's drop_next(): the schedule's next job goes, if still scheduled."""
    old = t.hget(cron_key(queue), f"{name}:next")
    if old is not None:
        old_id = old.decode()
        if t.hget(job_key(old_id), F_STATUS) == S_SCHEDULED:
            t.zrem(scheduled_key(queue), old_id)
            t.delete(job_key(old_id))


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
    t.wake = True
