"""Steps of workflows on a Store: registries, dependencies, enqueue, cancel, requeue, stop, empty.

Each function works inside one transaction ``t`` and mirrors a Lua script or
a function of ``lua/_lib.lua`` (named in its docstring).
"""

from __future__ import annotations

import math

from myrq.backends.store import Txn
from myrq.backends.store_keys import (
    ENDED_STATES,
    QUEUES,
    ckey_set,
    ckey_wait,
    cron_key,
    dependents_key,
    job_key,
    queue_key,
    queue_of,
    scheduled_key,
    state_key,
)
from myrq.backends.values import CronJob, EnqueueRequest, Fields
from myrq.schema import (
    F_ALLOW_FAILURE,
    F_AT_FRONT,
    F_ATTEMPTS,
    F_CKEY,
    F_CLIMIT,
    F_CREATED_AT,
    F_ENDED_AT,
    F_ERROR,
    F_EXPIRES_AT,
    F_FAILURE_TTL,
    F_HAS_DEPENDENTS,
    F_LEASE,
    F_PAYLOAD,
    F_PENDING_DEPS,
    F_QUEUE,
    F_RESULT,
    F_STARTED_AT,
    F_STATUS,
    F_STOP,
    F_TRIES,
    F_TTL_MS,
    F_WORKER,
    LIVE,
    S_CANCELED,
    S_DEFERRED,
    S_PENDING,
    S_RUNNING,
    S_SCHEDULED,
    format_number,
    format_time,
    parse_count,
    parse_number,
    parse_ttl_ms,
)


def registered(t: Txn, queue: str, job_id: str, state: str, ttl_ms: int) -> None:
    """_lib.lua's registered(): the job ended in ``state``, kept ``ttl_ms``."""
    if ttl_ms != 0 and state in ENDED_STATES:
        until = math.inf if ttl_ms < 0 else t.now() + ttl_ms / 1000
        t.zadd(state_key(queue, state), job_id, until)


def keep(t: Txn, key: str, ttl_ms: int) -> None:
    """An ended record's lifetime: -1 forever, 0 gone now, else ``ttl_ms``."""
    if ttl_ms == 0:
        t.delete(key)
    elif ttl_ms > 0:
        t.expire(key, t.now() + ttl_ms / 1000)
    t.wake = True  # a client may wait for it to end


def dependency_failed(parent: str) -> bytes:
    return (
        b'{"type":"DependencyFailed","message":"a job it depends on ('
        + parent.encode()
        + b') did not finish","traceback":""}'
    )


def settle(t: Txn, job_id: str, ok: bool, default_ttl_ms: int) -> None:
    """_lib.lua's settle(): release (or cancel) the jobs waiting for ``job_id``, down the chain."""
    todo = [(job_id, ok)]
    changed = 0
    while todo and changed < 10_000:
        parent, parent_ok = todo.pop()
        kids = t.smembers(dependents_key(parent))
        t.delete(dependents_key(parent))
        for kid in kids:
            key = job_key(kid)
            record = t.hgetall(key)
            if record is None or record.get(F_STATUS) != S_DEFERRED:
                continue
            queue = queue_of(record)
            changed += 1
            if parent_ok or record.get(F_ALLOW_FAILURE) == b"1":
                left = parse_count(record.get(F_PENDING_DEPS)) - 1
                t.hset(key, {F_PENDING_DEPS: str(left).encode()})
                if left <= 0:
                    t.zrem(state_key(queue, "deferred"), kid)
                    t.hset(key, {F_STATUS: S_PENDING})
                    ttl = parse_number(record.get(F_TTL_MS))
                    if ttl is not None:
                        t.hset(key, {F_EXPIRES_AT: format_number(t.now() * 1000 + ttl)})
                    t.push(queue_key(queue), kid)
            else:
                t.zrem(state_key(queue, "deferred"), kid)
                t.hset(key, {F_STATUS: S_CANCELED, F_ENDED_AT: format_time(t.now()),
                             F_ERROR: dependency_failed(parent)})  # fmt: skip
                ttl_ms = parse_ttl_ms(record.get(F_FAILURE_TTL))
                ttl_ms = default_ttl_ms if ttl_ms is None else ttl_ms
                registered(t, queue, kid, "canceled", ttl_ms)
                keep(t, key, ttl_ms)
                if record.get(F_HAS_DEPENDENTS) == b"1":
                    todo.append((kid, False))


def resent(t: Txn, key: str, fields: Fields) -> bool:
    """An enqueue resent after a lost reply finds its own record, in any status (enqueue.lua)."""
    created = fields.get(F_CREATED_AT)
    if created is None:
        return False
    return t.hget(key, F_CREATED_AT) == created and t.hget(key, F_PAYLOAD) == fields.get(F_PAYLOAD)


def parents(t: Txn, req: EnqueueRequest) -> tuple[list[str], str | None] | str:
    """enqueue.lua's checks of the jobs ``req`` depends on.

    Returns (the ones not ended yet, the first that failed), or the id of one
    that does not exist.
    """
    waiting, failed = [], None
    for parent in req.depends_on:
        status = t.hget(job_key(parent), F_STATUS)
        if status is None:
            return parent
        name = status.decode("utf-8", "replace")
        if name in ("failed", "timeout", "canceled", "stopped"):
            failed = failed or parent
        elif name != "finished":
            waiting.append(parent)
    return waiting, failed


def enqueue(  # noqa: PLR0917 - one job's enqueue.lua
    t: Txn, req: EnqueueRequest, due_ms: int, delay_ms: int, ttl_ms: int, canceled_ttl_ms: int
) -> bool | str:
    """enqueue.lua for one job: True stored, False refused, or the missing parent's id."""
    key = job_key(req.job_id)
    if resent(t, key, req.fields):
        return True  # stored by an earlier send of this very call: not again
    checked = parents(t, req)
    if isinstance(checked, str):
        return checked
    waiting, failed_parent = checked
    old = t.hgetall(key)
    if old is not None and old.get(F_STATUS) in LIVE:
        return False
    if old is not None:  # an ended record under this id: replace it whole
        old_state = old.get(F_STATUS, b"").decode("utf-8", "replace")
        if old_state in ENDED_STATES:
            t.zrem(state_key(queue_of(old), old_state), req.job_id)
        t.delete(key)
    t.hset(key, req.fields if F_STATUS in req.fields else {**req.fields, F_STATUS: S_PENDING})
    t.expire(key, None)
    t.sadd(QUEUES, req.queue)
    if failed_parent is not None and not req.allow_failure:
        t.hset(key, {F_STATUS: S_CANCELED, F_ENDED_AT: format_time(t.now()),
                     F_ERROR: dependency_failed(failed_parent)})  # fmt: skip
        own = parse_ttl_ms(req.fields.get(F_FAILURE_TTL))  # its own setting wins
        kept_ms = canceled_ttl_ms if own is None else own
        registered(t, req.queue, req.job_id, "canceled", kept_ms)
        keep(t, key, kept_ms)
    elif waiting:
        defer(t, req, waiting, ttl_ms)
    else:
        place(t, req, due_ms, delay_ms, ttl_ms)
    return True


def defer(t: Txn, req: EnqueueRequest, waiting: list[str], ttl_ms: int) -> None:
    """Wait, deferred, for the jobs in ``waiting`` to end (enqueue.lua)."""
    key = job_key(req.job_id)
    t.hset(key, {F_STATUS: S_DEFERRED, F_PENDING_DEPS: str(len(waiting)).encode()})
    if req.allow_failure:
        t.hset(key, {F_ALLOW_FAILURE: b"1"})
    if ttl_ms > 0:
        t.hset(key, {F_TTL_MS: str(ttl_ms).encode()})
    t.zadd(state_key(req.queue, "deferred"), req.job_id, t.now())
    for parent in waiting:
        t.sadd(dependents_key(parent), req.job_id)
        t.hset(job_key(parent), {F_HAS_DEPENDENTS: b"1"})


def place(t: Txn, req: EnqueueRequest, due_ms: int, delay_ms: int, ttl_ms: int) -> None:
    """On its queue now, or scheduled when due later (enqueue.lua)."""
    key = job_key(req.job_id)
    now_ms = t.now() * 1000
    due = due_ms if due_ms > 0 else now_ms + delay_ms
    if ttl_ms > 0:
        t.hset(key, {F_EXPIRES_AT: format_number(max(due, now_ms) + ttl_ms)})
    if due > now_ms:
        t.hset(key, {F_STATUS: S_SCHEDULED, **({F_AT_FRONT: b"1"} if req.front else {})})
        t.zadd(scheduled_key(req.queue), req.job_id, due / 1000)
    else:
        t.push(queue_key(req.queue), req.job_id, front=req.front)


def ckey_pass(t: Txn, key_name: bytes | None) -> None:
    """_lib.lua's ckey_pass(): a pending job of the key left its queue without running;
    if the key has a free slot, the first job waiting for it goes back to its queue."""
    if key_name is None:
        return
    key = key_name.decode("utf-8", "replace")
    wait = ckey_wait(key)
    for _ in range(100):
        head = t.lrange(wait, 0, 0)
        if not head:
            return
        record = t.hgetall(job_key(head[0]))
        if record is not None and record.get(F_STATUS) == S_PENDING:
            if len(t.zmembers(ckey_set(key))) >= max(parse_count(record.get(F_CLIMIT)), 1):
                return
            t.pop(wait)
            t.push(queue_key(queue_of(record)), head[0], front=True)
            return
        t.pop(wait)  # no longer waiting (canceled, deleted): dropped


def cancel(t: Txn, job_id: str, ttl_ms: int, error: bytes, default_ttl_ms: int) -> str | None:
    """cancel.lua: a pending, scheduled or deferred job ends canceled, and its dependents."""
    key = job_key(job_id)
    record = t.hgetall(key)
    status = None if record is None else record.get(F_STATUS)
    if record is None or status not in (S_PENDING, S_SCHEDULED, S_DEFERRED):
        return None
    queue = queue_of(record)
    if status == S_PENDING:
        t.remove(queue_key(queue), job_id)
    else:
        held = scheduled_key(queue) if status == S_SCHEDULED else state_key(queue, "deferred")
        t.zrem(held, job_id)
    t.hset(key, {F_STATUS: S_CANCELED, F_ENDED_AT: format_time(t.now()), F_ERROR: error})
    if status == S_PENDING:
        ckey_pass(t, record.get(F_CKEY))
    registered(t, queue, job_id, "canceled", ttl_ms)
    if record.get(F_HAS_DEPENDENTS) == b"1":
        settle(t, job_id, False, default_ttl_ms)
    keep(t, key, ttl_ms)
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


def requeue_ended(t: Txn, job_id: str) -> bool:
    """requeue.lua: an ended job goes back to the end of its queue, pending."""
    key = job_key(job_id)
    record = t.hgetall(key)
    state = None if record is None else record.get(F_STATUS, b"").decode("utf-8", "replace")
    if record is None or state not in ENDED_STATES:
        return False
    queue = queue_of(record)
    t.zrem(state_key(queue, state), job_id)
    claim = (F_LEASE, F_WORKER, F_STARTED_AT, F_STOP, F_EXPIRES_AT)
    t.hdel(key, F_ENDED_AT, F_ERROR, F_RESULT, *claim)
    t.hset(key, {F_STATUS: S_PENDING, F_ATTEMPTS: b"0", F_TRIES: b"0"})
    t.expire(key, None)
    t.push(queue_key(queue), job_id)
    return True


def stop(t: Txn, job_id: str) -> str | None:
    """stop.lua: mark a running job, so that its worker stops it."""
    status = t.hget(job_key(job_id), F_STATUS)
    if status is None:
        return None
    if status == S_RUNNING:
        t.hset(job_key(job_id), {F_STOP: b"1"})
    return status.decode("utf-8", "replace")


def empty(t: Txn, queue: str, default_ttl_ms: int) -> int:
    """empty.lua: every pending job of ``queue`` goes, record and place; jobs that waited
    for one of them are canceled."""
    deleted = 0
    while (job_id := t.pop(queue_key(queue))) is not None:
        record = t.hgetall(job_key(job_id))
        if record is None or record.get(F_STATUS) != S_PENDING:
            continue
        if record.get(F_QUEUE) not in (None, queue.encode()):
            continue
        t.delete(job_key(job_id))
        deleted += 1
        if record.get(F_HAS_DEPENDENTS) == b"1":
            settle(t, job_id, False, default_ttl_ms)
            t.delete(dependents_key(job_id))
    return deleted


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
