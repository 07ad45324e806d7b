"""The Redis broker's reads and its worker registry (plain commands, no scripts)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import redis
from redis.commands.core import Script

from myrq.backends import arguments
from myrq.backends.base import Fields
from myrq.backends.redis_client import as_bytes, as_str, reply
from myrq.schema import F_STATUS

#: Most queues (or queue and state pairs) whose key names a broker keeps built.
KEY_CACHE = 1000
_GLOB_SPECIALS = str.maketrans({c: "\\" + c for c in "*?[]\\"})


class RedisInspection:
    """Mixed into :class:`~myrq.backends.redis.RedisBroker`: everything but the scripted steps."""

    client: redis.Redis
    prefix: str
    url: str
    _register: Script  # register.lua, loaded by the broker
    # Key names per queue (and end state), built once: the hot path names them per job.
    _enqueue_keys: dict[str, tuple[str, str, str, str]]
    _finish_keys: dict[tuple[str, str], tuple[str, str, str, str, str]]

    def _translate(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    def job_key(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    def queue_key(self, queue: str) -> str:
        return f"{self.prefix}queue:{queue}"

    def notify_key(self, queue: str) -> str:
        return f"{self.prefix}notify:{queue}"

    def scheduled_key(self, queue: str) -> str:
        return f"{self.prefix}scheduled:{queue}"

    def state_key(self, queue: str, state: str) -> str:
        """The registry of ``queue``'s jobs in ``state`` (pending: the queue itself)."""
        return self.queue_key(queue) if state == "pending" else f"{self.prefix}{state}:{queue}"

    def dependents_key(self, job_id: str) -> str:
        return f"{self.prefix}dependents:{job_id}"

    def _keys_for_enqueue(self, queue: str) -> tuple[str, str, str, str]:
        """``queue``'s list, wake-up list, scheduled and deferred sets (enqueue.lua)."""
        keys = self._enqueue_keys.get(queue)
        if keys is None:
            keys = (
                self.queue_key(queue),
                self.notify_key(queue),
                self.scheduled_key(queue),
                self.state_key(queue, "deferred"),
            )
            if len(self._enqueue_keys) < KEY_CACHE:
                self._enqueue_keys[queue] = keys
        return keys

    def _keys_for_finish(self, queue: str, state: str) -> tuple[str, str, str, str, str]:
        """``queue``'s list, wake-up list, scheduled and running sets, and the registry of
        ``state`` (finish_and_claim.lua)."""
        keys = self._finish_keys.get((queue, state))
        if keys is None:
            keys = (
                self.queue_key(queue),
                self.notify_key(queue),
                self.scheduled_key(queue),
                self.state_key(queue, "running"),
                self.state_key(queue, state),
            )
            if len(self._finish_keys) < KEY_CACHE:
                self._finish_keys[queue, state] = keys
        return keys

    def cron_key(self, queue: str) -> str:
        return f"{self.prefix}cron:{queue}"

    def done_key(self, job_id: str) -> str:
        return f"{self.prefix}done:{job_id}"

    def claim_key(self, claim_id: str) -> str:
        return f"{self.prefix}claim:{claim_id}"

    def worker_key(self, name: str) -> str:
        return f"{self.prefix}worker:{name}"

    @property
    def leases_key(self) -> str:
        return f"{self.prefix}leases"

    @property
    def queues_key(self) -> str:
        return f"{self.prefix}queues"

    @property
    def workers_key(self) -> str:
        return f"{self.prefix}workers"

    # -- records and queues ------------------------------------------------------

    def get(self, job_id: str) -> dict[str, bytes] | None:
        with self._translate():
            raw = reply(self.client.hgetall(self.job_key(job_id)))
        return {as_str(k): as_bytes(v) for k, v in raw.items()} or None

    def queue_length(self, queue: str) -> int:
        with self._translate():
            return int(reply(self.client.llen(self.queue_key(queue))))

    def queued_ids(self, queue: str, start: int = 0, stop: int = -1) -> list[str]:
        with self._translate():
            ids = reply(self.client.lrange(self.queue_key(queue), start, stop))
        return [as_str(i) for i in ids]

    def queue_names(self) -> list[str]:
        # The set has every queue myrq enqueued to; the scan adds queues that
        # foreign clients pushed to without registering them.
        head = self.queue_key("")
        with self._translate():
            names = {as_str(n) for n in reply(self.client.smembers(self.queues_key))}
            for key in self.client.scan_iter(match=head.translate(_GLOB_SPECIALS) + "*"):
                names.add(as_str(key)[len(head) :])
        return sorted(names)

    def job_ids(self) -> Iterator[str]:
        head = self.job_key("")
        pattern = head.translate(_GLOB_SPECIALS) + "*"
        with self._translate():
            keys = list(self.client.scan_iter(match=pattern, count=1000))
        return iter(as_str(k)[len(head) :] for k in keys)

    def leased_ids(self) -> list[str]:
        with self._translate():
            return [as_str(i) for i in reply(self.client.zrange(self.leases_key, 0, -1))]

    def lease_deadline(self, job_id: str) -> float | None:
        with self._translate():
            score = reply(self.client.zscore(self.leases_key, job_id))
        return None if score is None else float(score) / 1000

    def status_counts(self) -> dict[str, int]:
        ids = list(self.job_ids())
        counts: dict[str, int] = {}
        with self._translate():
            for start in range(0, len(ids), 500):
                pipe = self.client.pipeline(transaction=False)
                for job_id in ids[start : start + 500]:
                    pipe.hget(self.job_key(job_id), F_STATUS)
                for status in pipe.execute():
                    if status is None:
                        continue  # expired between the scan and the read
                    name = as_str(status) or "(none)"
                    counts[name] = counts.get(name, 0) + 1
        return counts

    # -- workers -------------------------------------------------------------------

    def register_worker(self, name: str, fields: Fields, ttl: float) -> None:
        arguments.fields(fields)
        args: list[Any] = [arguments.lease_ms(ttl), name]
        for field, value in fields.items():
            args += (field, value)
        with self._translate():
            self._register(keys=[self.workers_key, self.worker_key(name)], args=args)

    def unregister_worker(self, name: str) -> None:
        with self._translate():
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(self.worker_key(name))
            pipe.zrem(self.workers_key, name)
            pipe.execute()

    def workers(self) -> dict[str, dict[str, bytes]]:
        with self._translate():
            self.client.zremrangebyscore(self.workers_key, "-inf", _now_ms(self.client))
            names = [as_str(n) for n in reply(self.client.zrange(self.workers_key, 0, -1))]
            pipe = self.client.pipeline(transaction=False)
            for name in names:
                pipe.hgetall(self.worker_key(name))
            records: list[dict[Any, Any]] = pipe.execute() if names else []
        return {
            name: {as_str(k): as_bytes(v) for k, v in rec.items()}
            for name, rec in zip(names, records, strict=True)
            if rec
        }

    # -- the server ------------------------------------------------------------------

    def ping(self) -> None:
        with self._translate():
            self.client.ping()

    def memory_policy(self) -> str | None:
        """Redis's ``maxmemory-policy``, or None if it cannot be read."""
        try:
            value = reply(self.client.config_get("maxmemory-policy")).get("maxmemory-policy")
        except redis.RedisError:
            return None
        return as_str(value) if value is not None else None

    def startup_warnings(self) -> list[str]:
        policy = self.memory_policy()
        if policy and policy.startswith("allkeys"):
            return [
                f"Redis at {self.url} has maxmemory-policy {policy}: under memory pressure it "
                "may evict queued jobs. Set it to noeviction for a job queue."
            ]
        return []


def _now_ms(client: redis.Redis) -> int:
    seconds, micros = reply(client.time())
    return int(seconds) * 1000 + int(micros) // 1000
