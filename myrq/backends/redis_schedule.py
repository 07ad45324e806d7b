"""The Redis broker's scheduled and periodic jobs, cancel, and waiting for a job's end."""

from __future__ import annotations

import time
from typing import Any

from redis.commands.core import Script

from myrq.backends import arguments
from myrq.backends.redis_client import as_bytes, as_str, reply
from myrq.backends.redis_inspect import RedisInspection, _now_ms
from myrq.backends.values import CronEntry, CronJob
from myrq.schema import F_QUEUE

_ENDED_STATES = ("finished", "failed", "timeout", "canceled", "stopped")
#: Wake-up tokens kept per queue (the same cap as redis.NOTIFY_CAP).
_NOTIFY_CAP = 100


class RedisScheduling(RedisInspection):
    """Mixed into :class:`~myrq.backends.redis.RedisBroker`."""

    _max_block: float
    expired_ttl_ms: int
    _cancel: Script
    _run_now: Script
    _watch: Script
    _cron: Script
    _requeue: Script
    _stop: Script
    _empty: Script
    _set_fields: Script

    def _queue_of(self, job_id: str) -> str:
        raw = self.client.hget(self.job_key(job_id), F_QUEUE)
        return as_str(raw) if raw else "default"

    # -- control (cancel.lua, run_now.lua) ----------------------------------------

    def cancel(self, job_id: str, ttl: float | None, error: bytes) -> str | None:
        ttl_ms = arguments.ttl_ms(ttl)
        with self._translate():
            queue = self._queue_of(job_id)
            keys = [
                self.job_key(job_id),
                self.queue_key(queue),
                self.scheduled_key(queue),
                self.state_key(queue, "deferred"),
                self.state_key(queue, "canceled"),
            ]
            args: list[Any] = [job_id, ttl_ms, error, queue, self.expired_ttl_ms]
            had = self._cancel(keys=keys, args=args)
        return as_str(had) if had else None

    def run_now(self, job_id: str) -> bool:
        with self._translate():
            queue = self._queue_of(job_id)
            keys = [
                self.job_key(job_id),
                self.queue_key(queue),
                self.notify_key(queue),
                self.scheduled_key(queue),
            ]
            return bool(self._run_now(keys=keys, args=[job_id, _NOTIFY_CAP]))

    def scheduled(self, queue: str, limit: int = 1000) -> list[tuple[str, float]]:
        limit = arguments.whole("limit", limit, minimum=1)
        with self._translate():
            raw = reply(
                self.client.zrange(self.scheduled_key(queue), 0, limit - 1, withscores=True)
            )
        return [(as_str(job_id), float(score) / 1000) for job_id, score in raw]

    def stop(self, job_id: str) -> str | None:
        with self._translate():
            status = self._stop(keys=[self.job_key(job_id)])
        return as_str(status) if status else None

    def requeue(self, job_id: str) -> bool:
        with self._translate():
            queue = self._queue_of(job_id)  # the status is read by the script itself
            keys = [self.job_key(job_id), self.queue_key(queue), self.notify_key(queue)]
            return bool(self._requeue(keys=keys, args=[job_id, _NOTIFY_CAP, queue]))

    def empty(self, queue: str) -> int:
        deleted = 0
        with self._translate():
            while True:
                args: list[Any] = [1000, queue, self.expired_ttl_ms]
                gone, left = self._empty(keys=[self.queue_key(queue)], args=args)
                deleted += int(gone)
                if not left:
                    return deleted

    def set_fields(self, job_id: str, fields: Any) -> bool:
        arguments.fields(fields)
        with self._translate():
            return bool(self._set_fields(keys=[self.job_key(job_id)], args=_pairs(fields)))

    # -- registries -------------------------------------------------------------------

    def registry(self, queue: str, state: str, start: int = 0, stop: int = -1) -> list[str]:
        key = self.state_key(queue, arguments.state(state))
        with self._translate():
            if state in _ENDED_STATES:  # only the ids whose records have not expired
                count = -1 if stop == -1 else max(stop - start + 1, 0)
                now = f"({_now_ms(self.client)}"
                ids = reply(self.client.zrangebyscore(key, now, "+inf", start=start, num=count))
            elif state == "pending":
                ids = reply(self.client.lrange(key, start, stop))
            else:
                ids = reply(self.client.zrange(key, start, stop))
        return [as_str(i) for i in ids]

    def registry_count(self, queue: str, state: str) -> int:
        key = self.state_key(queue, arguments.state(state))
        with self._translate():
            if state == "pending":
                return int(reply(self.client.llen(key)))
            if state in _ENDED_STATES:
                return int(reply(self.client.zcount(key, f"({_now_ms(self.client)}", "+inf")))
            return int(reply(self.client.zcard(key)))

    def trim_registries(self, queue: str) -> int:
        with self._translate():
            now = _now_ms(self.client)
            pipe = self.client.pipeline(transaction=False)
            for state in _ENDED_STATES:
                pipe.zremrangebyscore(self.state_key(queue, state), "-inf", now)
            return sum(int(n) for n in pipe.execute())

    # -- waiting (watch.lua) -------------------------------------------------------

    def wait_for_end(self, job_id: str, timeout: float) -> bool:
        deadline = time.monotonic() + arguments.wait_seconds(timeout)
        done = self.done_key(job_id)
        with self._translate():
            while True:
                if self._watch(keys=[self.job_key(job_id)]):
                    return True  # ended, or gone
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                # The list is rotated, not consumed: every waiter sees the push.
                wait = max(min(remaining, self._max_block), 0.01)
                self.client.blmove(done, done, reply(wait), "RIGHT", "LEFT")

    # -- periodic jobs (cron.lua) ------------------------------------------------------

    def _cron_keys(self, queue: str, job_id: str) -> list[str]:
        return [
            self.cron_key(queue),
            self.scheduled_key(queue),
            self.queues_key,
            self.job_key(job_id),
        ]

    def cron_set(self, queue: str, name: str, spec: bytes, version: str, first: CronJob) -> None:
        args: list[Any] = ["set", queue, name, spec, version, first.job_id, _due_ms(first.at)]
        args += _pairs(first.fields)
        with self._translate():
            self._cron(keys=self._cron_keys(queue, first.job_id), args=args)

    def cron_next(self, queue: str, name: str, version: str, job: CronJob) -> bool:
        args: list[Any] = ["next", queue, name, version, job.job_id, _due_ms(job.at)]
        args += _pairs(job.fields)
        with self._translate():
            return bool(self._cron(keys=self._cron_keys(queue, job.job_id), args=args))

    def cron_remove(self, queue: str, name: str) -> bool:
        with self._translate():
            keys = self._cron_keys(queue, "-")
            return bool(self._cron(keys=keys, args=["remove", queue, name]))

    def crons(self, queue: str) -> dict[str, CronEntry]:
        with self._translate():
            raw = {
                as_str(k): as_bytes(v)
                for k, v in reply(self.client.hgetall(self.cron_key(queue))).items()
            }
        return {
            name: CronEntry(
                spec,
                as_str(raw.get(f"{name}:version", b"")),
                as_str(raw[f"{name}:next"]) if f"{name}:next" in raw else None,
            )
            for name, spec in raw.items()
            if not name.endswith((":version", ":next"))
        }


def _due_ms(at: float) -> int:
    due, _, _ = arguments.schedule_ms(at, None, None)
    return due


def _pairs(fields: Any) -> list[Any]:
    out: list[Any] = []
    for name, value in fields.items():
        out += (name, value)
    return out
