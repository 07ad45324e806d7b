"""The Redis broker's lease steps: renew, release, reap and repair (one script each)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.commands.core import Script

from myrq.backends import arguments
from myrq.backends.redis_client import as_str
from myrq.backends.redis_inspect import RedisInspection
from myrq.backends.values import Reaped
from myrq.schema import ABANDONED_ERROR_TEMPLATE, F_QUEUE

#: Wake-up tokens kept per queue (the same cap as redis.NOTIFY_CAP).
NOTIFY_CAP = 100


class RedisLeases(RedisInspection):
    """Mixed into :class:`~myrq.backends.redis.RedisBroker`."""

    _renew: Script
    _release: Script
    _reap: Script

    def renew(self, job_id: str, token: str, lease: float) -> bool:
        return bool(self.renew_many([(job_id, token)], lease)[0])

    def renew_many(self, held: Sequence[tuple[str, str]], lease: float) -> list[int]:
        lease_ms = arguments.lease_ms(lease)
        if not held:
            return []
        keys = [self.leases_key, *(self.job_key(job_id) for job_id, _ in held)]
        args: list[Any] = [lease_ms]
        for job_id, token in held:
            args += (job_id, token)
        with self._translate():
            return [int(r) for r in self._renew(keys=keys, args=args)]

    def release(self, job_id: str, token: str) -> bool:
        with self._translate():
            queue = self.client.hget(self.job_key(job_id), F_QUEUE)
            name = as_str(queue) if queue else "default"
            keys = [
                self.job_key(job_id),
                self.leases_key,
                self.queue_key(name),
                self.notify_key(name),
                self.state_key(name, "running"),
            ]
            return bool(self._release(keys=keys, args=[job_id, token, NOTIFY_CAP]))

    def reap(
        self, max_attempts: int, failure_ttl: float | None = None, limit: int = 100
    ) -> list[Reaped]:
        limit = arguments.whole("limit", limit, minimum=1)
        return self._reap_call(max_attempts, failure_ttl, limit, ())

    def repair(
        self, job_ids: Sequence[str], max_attempts: int, failure_ttl: float | None = None
    ) -> list[Reaped]:
        out: list[Reaped] = []
        for start in range(0, len(job_ids), 500):
            chunk = job_ids[start : start + 500]
            out += self._reap_call(max_attempts, failure_ttl, len(chunk), chunk)
        return out

    def _reap_call(
        self, max_attempts: int, failure_ttl: float | None, limit: int, job_ids: Sequence[str]
    ) -> list[Reaped]:
        max_attempts = arguments.whole("max_attempts", max_attempts, minimum=0)
        args: list[Any] = [
            limit, max_attempts, NOTIFY_CAP, ABANDONED_ERROR_TEMPLATE,
            arguments.ttl_ms(failure_ttl), *job_ids,
        ]  # fmt: skip
        with self._translate():
            raw = self._reap(keys=[self.leases_key], args=args)
        return [
            Reaped(as_str(i), as_str(q) if q else None, as_str(outcome), int(n))  # type: ignore[arg-type]
            for i, q, outcome, n in raw
        ]
