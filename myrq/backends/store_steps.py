"""The parts of the broker steps that :mod:`myrq.backends.store_broker` runs.

Each function works inside one transaction ``t`` and mirrors a part of a Lua
script (named in its docstring); keys are as in the Redis broker, without
its prefix (:mod:`myrq.backends.store_keys`). Enqueue, cancel and the other
workflow steps are in :mod:`myrq.backends.store_workflow`.
"""

from __future__ import annotations

from collections.abc import Sequence

from myrq.backends.store import Txn
from myrq.backends.store_keys import (
    LEASES,
    ckey_set,
    ckey_wait,
    claim_key,
    job_key,
    queue_key,
    queue_of,
    scheduled_key,
    state_key,
)
from myrq.backends.store_workflow import ckey_pass, keep, registered, settle
from myrq.backends.values import Delivery, Fields, FinishRequest, Reaped
from myrq.schema import (
    EXPIRED_ERROR,
    F_AT_FRONT,
    F_ATTEMPTS,
    F_BATCH,
    F_CKEY,
    F_CLIMIT,
    F_ENDED_AT,
    F_ERROR,
    F_EXPIRES_AT,
    F_FAILURE_TTL,
    F_HAS_DEPENDENTS,
    F_LEASE,
    F_QUEUE,
    F_SOLO,
    F_STARTED_AT,
    F_STATUS,
    F_WORKER,
    S_CANCELED,
    S_FAILED,
    S_PENDING,
    S_RUNNING,
    S_SCHEDULED,
    UNCLAIMABLE,
    abandoned_error,
    format_time,
    parse_count,
    parse_number,
    parse_ttl_ms,
)


def finish(t: Txn, f: FinishRequest, ttl_ms: int, retry_ms: int, expired_ttl_ms: int) -> bool:
    """Fencing: write only if the token still holds a running job (finish_and_claim.lua)."""
    key = job_key(f.job_id)
    current = t.hgetall(key)
    if current is None or current.get(F_LEASE) != f.token.encode():
        return False
    if current.get(F_STATUS) != S_RUNNING or not t.zrem(LEASES, f.job_id):
        return False
    t.zrem(state_key(f.queue, "running"), f.job_id)
    ckey_release(t, f.job_id, current.get(F_CKEY))
    if retry_ms >= 0:  # not final: back on its queue, or scheduled
        t.hset(key, {**f.fields, F_ATTEMPTS: b"0"})
        if retry_ms == 0:
            t.push(queue_key(f.queue), f.job_id)
        else:
            t.zadd(scheduled_key(f.queue), f.job_id, t.now() + retry_ms / 1000)
        return True
    state = f.fields.get(F_STATUS, b"finished").decode("utf-8", "replace")
    if ttl_ms != 0 and f.fields:
        t.hset(key, f.fields)
    registered(t, f.queue, f.job_id, state, ttl_ms)
    keep(t, key, ttl_ms)
    if current.get(F_HAS_DEPENDENTS) == b"1":
        settle(t, f.job_id, state == "finished", expired_ttl_ms)
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
    parked = 0  # ids parked for a full concurrency key (at most 100 per call)
    now = t.now()
    batch = b"1" if count > 1 else b"0"
    for name in queues:
        qkey = queue_key(name)
        promote(t, name, now)
        while len(out) < count:
            job_id = t.pop(qkey)
            if job_id is None:
                break
            record = t.hgetall(job_key(job_id))
            unrunnable = skip(t, job_id, name, record, now, expired_ttl_ms)
            if unrunnable is not None or record is None:
                out.append(unrunnable or Delivery(job_id, name, None, None))
                continue
            solo = record.get(F_SOLO) == b"1"
            if solo and out:
                t.push(qkey, job_id, front=True)  # runs alone: first in line next time
                return remember_claim(t, ckey, claimed, lease_ms, out), None
            key_name = record.get(F_CKEY)
            if key_name is not None and not ckey_admit(t, job_id, key_name, record):
                parked += 1  # its key is full: parked until a run of the key ends
                if parked >= 100:
                    break
                continue
            if solo:
                count = len(out) + 1  # nothing else joins it
            claimed.append(job_id)
            token = f"{worker}:{claim_id}:{len(claimed)}"
            out.append(lease(t, Delivery(job_id, name, token, record), lease_ms, solo, batch))
        if len(out) >= count or parked >= 100:
            break
    if claimed or out:
        return remember_claim(t, ckey, claimed, lease_ms, out), None
    if parked >= 100:
        return out, 0.0  # stopped after parking 100: more may be claimable now
    return out, next_due(t, queues, now)


def skip(  # noqa: PLR0917 - the claim's state
    t: Txn,
    job_id: str,
    queue: str,
    record: dict[str, bytes] | None,
    now: float,
    expired_ttl_ms: int,
) -> Delivery | None:
    """A taken id that is not claimed, as reported (None: claim it)."""
    if record is None:  # no record: report it, touch nothing
        return Delivery(job_id, queue, None, None)
    if record.get(F_STATUS) in UNCLAIMABLE:
        return Delivery(job_id, queue, None, record)
    expires = parse_number(record.get(F_EXPIRES_AT))
    if expires is not None and expires < now * 1000:
        expire(t, job_id, queue, record, expired_ttl_ms)
        return Delivery(job_id, queue, None, {**record, F_STATUS: S_CANCELED}, "expired")
    return None


def lease(t: Txn, d: Delivery, lease_ms: int, solo: bool, batch: bytes) -> Delivery:
    """Claim the job of ``d`` under its token: running, leased, in its running registry."""
    now = t.now()
    key = job_key(d.job_id)
    record = d.fields or {}
    claim = {
        F_STATUS: S_RUNNING,
        F_STARTED_AT: format_time(now),
        F_WORKER: (d.token or "").rsplit(":", 2)[0].encode(),
        F_LEASE: (d.token or "").encode(),
        F_QUEUE: d.queue.encode(),
        F_ATTEMPTS: str(parse_count(record.get(F_ATTEMPTS)) + 1).encode(),
        F_BATCH: b"0" if solo else batch,
    }
    t.hset(key, claim)
    if F_EXPIRES_AT in record:
        t.hdel(key, F_EXPIRES_AT)  # the ttl bounds the first start only
    t.expire(key, None)
    t.zadd(LEASES, d.job_id, now + lease_ms / 1000)
    t.zadd(state_key(d.queue, "running"), d.job_id, now)
    record.update(claim)
    return d


def next_due(t: Txn, queues: Sequence[str], now: float) -> float | None:
    """Seconds until the next scheduled job of ``queues`` is due (None: none is)."""
    dues = [t.zrange_with_scores(scheduled_key(q), 1) for q in queues]
    soonest = [items[0][1] for items in dues if items]
    return max(min(soonest) - now, 0.0) if soonest else None


def ckey_admit(t: Txn, job_id: str, key_name: bytes, record: Fields) -> bool:
    """_lib.lua's ckey_admit(): may ``job_id`` run now? If so it takes a slot of its key."""
    key = key_name.decode("utf-8", "replace")
    limit = max(parse_count(record.get(F_CLIMIT)), 1)
    held = ckey_set(key)
    if len(t.zmembers(held)) >= limit:
        for member in t.zmembers(held):
            if t.hget(job_key(member), F_STATUS) != S_RUNNING:
                t.zrem(held, member)  # a release was missed: the slot is free
        if len(t.zmembers(held)) >= limit:
            t.push(ckey_wait(key), job_id)
            return False
    t.zadd(held, job_id, 0)
    return True


def ckey_release(t: Txn, job_id: str, key_name: bytes | None) -> None:
    """_lib.lua's ckey_release(): free the slot, wake the first pending job of the key."""
    if key_name is None:
        return
    key = key_name.decode("utf-8", "replace")
    t.zrem(ckey_set(key), job_id)
    for _ in range(100):
        next_id = t.pop(ckey_wait(key))
        if next_id is None:
            return
        record = t.hgetall(job_key(next_id))
        if record is not None and record.get(F_STATUS) == S_PENDING:
            t.push(queue_key(queue_of(record)), next_id, front=True)
            return


def promote(t: Txn, queue: str, now: float) -> None:
    """Scheduled jobs of ``queue`` now due go to its end (or front): a claim's first part."""
    skey = scheduled_key(queue)
    for job_id in t.zrange_by_score(skey, now, 100):
        t.zrem(skey, job_id)
        key = job_key(job_id)
        if t.hget(key, F_STATUS) == S_SCHEDULED:
            t.hset(key, {F_STATUS: S_PENDING})
            t.push(queue_key(queue), job_id, front=t.hget(key, F_AT_FRONT) == b"1")


def expire(t: Txn, job_id: str, queue: str, record: Fields, expired_ttl_ms: int) -> None:
    """Not started within its ttl: canceled, not run (finish_and_claim.lua's expire())."""
    key = job_key(job_id)
    t.hset(key, {F_STATUS: S_CANCELED, F_ENDED_AT: format_time(t.now()), F_ERROR: EXPIRED_ERROR})
    ckey_pass(t, record.get(F_CKEY))
    ttl_ms = parse_ttl_ms(record.get(F_FAILURE_TTL))
    ttl_ms = expired_ttl_ms if ttl_ms is None else ttl_ms
    registered(t, queue, job_id, "canceled", ttl_ms)
    keep(t, key, ttl_ms)
    if record.get(F_HAS_DEPENDENTS) == b"1":
        settle(t, job_id, False, expired_ttl_ms)


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
    t.zrem(state_key(queue, "running"), job_id)
    ckey_release(t, job_id, record.get(F_CKEY))
    attempts = parse_count(record.get(F_ATTEMPTS))
    if record.get(F_BATCH) == b"1":
        # Claimed in a batch: whether it had started is unknown. Requeue it
        # uncounted, to run alone from now on.
        attempts = max(0, attempts - 1)
        t.hset(key, {F_ATTEMPTS: str(attempts).encode(), F_BATCH: b"0", F_SOLO: b"1"})
        requeue(t, job_id, queue, front=False)
        return Reaped(job_id, queue, "requeued", attempts)
    if max_attempts > 0 and attempts >= max_attempts:
        abandon(t, job_id, queue, record, attempts, default_ttl_ms)
        return Reaped(job_id, queue, "failed", attempts)
    requeue(t, job_id, queue, front=False)
    return Reaped(job_id, queue, "requeued", attempts)


def requeue(t: Txn, job_id: str, queue: str, *, front: bool) -> None:
    """Back on its queue as ``pending``, without the claim's fields."""
    key = job_key(job_id)
    t.hset(key, {F_STATUS: S_PENDING})
    t.hdel(key, F_LEASE, F_WORKER, F_STARTED_AT)
    t.push(queue_key(queue), job_id, front=front)


def abandon(  # noqa: PLR0917 - reap.lua's failing branch
    t: Txn, job_id: str, queue: str, record: Fields, attempts: int, default_ttl_ms: int
) -> None:
    """Fail a job whose worker stopped renewing its lease ``attempts`` times."""
    key = job_key(job_id)
    ttl_ms = parse_ttl_ms(record.get(F_FAILURE_TTL))  # the job's own setting wins
    ttl_ms = default_ttl_ms if ttl_ms is None else ttl_ms
    error = abandoned_error(attempts)
    t.hset(key, {F_STATUS: S_FAILED, F_ENDED_AT: format_time(t.now()), F_ERROR: error})
    t.hdel(key, F_LEASE)
    registered(t, queue, job_id, "failed", ttl_ms)
    if record.get(F_HAS_DEPENDENTS) == b"1":
        settle(t, job_id, False, default_ttl_ms)
    keep(t, key, ttl_ms)
