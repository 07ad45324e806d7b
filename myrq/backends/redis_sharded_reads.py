"""The sharded broker's steps on one job (routed to its shard) and its reads over all shards.

A read of a queue or registry gathers every shard's part in one pipeline and
merges them: lists (a queue, its pending registry) shard after shard, each in
its own order; sorted sets (scheduled, running, ended registries) by score, as
on one shard. Counts are sums. Schedules (``cron_*``) live on the shard of their
occurrences' ids (see :func:`myrq.backends.redis_shards.routing_key`).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from myrq.backends import arguments
from myrq.backends.redis_client import as_str, reply
from myrq.backends.redis_inspect import _GLOB_SPECIALS
from myrq.backends.redis_replicas import server_of
from myrq.backends.redis_shards import scored
from myrq.backends.values import CronEntry, CronJob, Fields
from myrq.exceptions import BrokerFullError
from myrq.schema import F_STATUS

if TYPE_CHECKING:
    from myrq.backends.redis import RedisBroker
    from myrq.backends.redis_shards import ShardLayout

_ENDED = ("finished", "failed", "timeout", "canceled", "stopped")


class ShardedReads:
    """Mixed into :class:`~myrq.backends.redis_sharded.ShardedRedisBroker`."""

    views: list[RedisBroker]
    layout: ShardLayout
    client: Any

    if TYPE_CHECKING:  # provided by the broker or another of its parts

        def shard_for(self, job_id: str) -> RedisBroker: ...

        def _pipeline(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]: ...

        def _ring(self, shards_by_queue: dict[str, set[int]]) -> None: ...

        def carry_over(self, shards: Sequence[int]) -> int: ...

    def _on_all(self, command: str, key_of: Callable[[RedisBroker], str], *args: Any) -> list[Any]:
        """``command`` on the key ``key_of(view)`` of every shard, in one pipeline."""
        return self._pipeline([(command, key_of(view), *args) for view in self.views])

    # -- one job, on its shard -----------------------------------------------------------------

    def get(self, job_id: str) -> dict[str, bytes] | None:
        return self.shard_for(job_id).get(job_id)

    def delete(self, job_id: str) -> bool:
        # delete.lua takes the id off every queue its shard knows of: make it know
        # the queues registered on the others too (a foreign push may be anywhere).
        view = self.shard_for(job_id)
        names = {n for part in self._on_all("SMEMBERS", lambda v: v.queues_key) for n in part}
        if names:
            try:
                with view._translate():
                    view.client.sadd(view.queues_key, *names)
            except BrokerFullError:
                pass  # a full Redis: delete from the queues it knows
        existed = view.delete(job_id)
        if existed:  # dependents on other shards are canceled through the outbox
            self.carry_over([self.views.index(view)])
        return existed

    def lease_deadline(self, job_id: str) -> float | None:
        return self.shard_for(job_id).lease_deadline(job_id)

    def stop(self, job_id: str) -> str | None:
        return self.shard_for(job_id).stop(job_id)

    def set_fields(self, job_id: str, fields: Fields) -> bool:
        return self.shard_for(job_id).set_fields(job_id, fields)

    def wait_for_end(self, job_id: str, timeout: float) -> bool:
        return self.shard_for(job_id).wait_for_end(job_id, timeout)

    def cancel(self, job_id: str, ttl: float | None, error: bytes) -> str | None:
        view = self.shard_for(job_id)
        had = view.cancel(job_id, ttl, error)
        if had:  # it may have had dependents on other shards
            self.carry_over([self.views.index(view)])
        return had

    def run_now(self, job_id: str) -> bool:
        return self._and_ring(job_id, self.shard_for(job_id).run_now)

    def requeue(self, job_id: str) -> bool:
        return self._and_ring(job_id, self.shard_for(job_id).requeue)

    def _and_ring(self, job_id: str, step: Any) -> bool:
        done = bool(step(job_id))
        if done:
            view = self.shard_for(job_id)
            with view._translate():
                queue = as_str(view.client.hget(view.job_key(job_id), "queue") or b"default")
            self._ring({queue: {self.views.index(view)}})
        return done

    # -- queues --------------------------------------------------------------------------------

    def queue_length(self, queue: str) -> int:
        return sum(int(n) for n in self._on_all("LLEN", lambda v: v.queue_key(queue)))

    def queued_ids(self, queue: str, start: int = 0, stop: int = -1) -> list[str]:
        """The ids on ``queue``, shard after shard (each shard's part in its own order)."""
        lengths = [int(n) for n in self._on_all("LLEN", lambda v: v.queue_key(queue))]
        total = sum(lengths)
        first = start if start >= 0 else max(total + start, 0)
        last = (stop if stop >= 0 else total + stop) + 1
        commands, offset = [], 0
        for view, length in zip(self.views, lengths, strict=True):
            low, high = max(first - offset, 0), min(last - offset, length)
            if low < high:
                commands.append(("LRANGE", view.queue_key(queue), low, high - 1))
            offset += length
        return [as_str(i) for part in self._pipeline(commands) for i in part]

    def queue_names(self) -> list[str]:
        names = {
            as_str(n) for part in self._on_all("SMEMBERS", lambda v: v.queues_key) for n in part
        }
        head = f"{self.layout.prefix}".translate(_GLOB_SPECIALS)
        with self.views[0]._translate():
            for raw in self.client.scan_iter(match=f"{head}{{*}}:queue:*", count=1000):
                names.add(as_str(raw).rsplit(":queue:", 1)[1])
        return sorted(names)

    def job_ids(self) -> Iterator[str]:
        head = f"{self.layout.prefix}".translate(_GLOB_SPECIALS)
        prefixes = {view.prefix: n for n, view in enumerate(self.views)}
        found = []
        with self.views[0]._translate():
            for raw in self.client.scan_iter(match=f"{head}{{*}}:job:*", count=1000):
                key = as_str(raw)
                prefix, _, job_id = key.partition("job:")
                if prefixes.get(prefix) == self.layout.shard_of(job_id):
                    found.append(job_id)
        return iter(found)

    def leased_ids(self) -> list[str]:
        parts = self._on_all("ZRANGE", lambda v: v.leases_key, 0, -1, "WITHSCORES")
        pairs = [scored(part) for part in parts]
        return [as_str(i) for i, _ in heapq.merge(*pairs, key=lambda pair: pair[1])]

    def status_counts(self) -> dict[str, int]:
        ids = list(self.job_ids())
        counts: dict[str, int] = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            statuses = self._pipeline(
                [("HGET", self.shard_for(i).job_key(i), F_STATUS) for i in part]
            )
            for status in statuses:
                if status is not None:
                    name = as_str(status) or "(none)"
                    counts[name] = counts.get(name, 0) + 1
        return counts

    def empty(self, queue: str) -> int:
        deleted = sum(view.empty(queue) for view in self.views)
        if deleted:  # their dependents on other shards are canceled through the outbox
            self.carry_over(range(len(self.views)))
        return deleted

    # -- registries ----------------------------------------------------------------------------

    def registry(self, queue: str, state: str, start: int = 0, stop: int = -1) -> list[str]:
        state = arguments.state(state)
        if state == "pending":
            return self.queued_ids(queue, start, stop)
        if stop != -1 and stop < start:
            return []
        want = -1 if stop == -1 else stop
        if state in _ENDED:
            now = f"({self._now_ms()}"
            parts = self._pipeline(
                [
                    ("ZRANGEBYSCORE", v.state_key(queue, state), now, "+inf", "WITHSCORES",
                     "LIMIT", 0, want + 1 if want >= 0 else -1)
                    for v in self.views
                ]
            )  # fmt: skip
        else:
            parts = self._pipeline(
                [("ZRANGE", v.state_key(queue, state), 0, want, "WITHSCORES") for v in self.views]
            )
        pairs = [scored(part) for part in parts]
        merged = [as_str(i) for i, _ in heapq.merge(*pairs, key=lambda p: p[1])]
        return merged[start:] if stop == -1 else merged[start : stop + 1]

    def registry_count(self, queue: str, state: str) -> int:
        state = arguments.state(state)
        if state == "pending":
            return self.queue_length(queue)
        key_of = lambda v: v.state_key(queue, state)  # noqa: E731
        if state in _ENDED:
            parts = self._on_all("ZCOUNT", key_of, f"({self._now_ms()}", "+inf")
        else:
            parts = self._on_all("ZCARD", key_of)
        return sum(int(n) for n in parts)

    def trim_registries(self, queue: str) -> int:
        now = self._now_ms()
        commands = [
            ("ZREMRANGEBYSCORE", view.state_key(queue, state), "-inf", now)
            for view in self.views
            for state in _ENDED
        ]
        return sum(int(n) for n in self._pipeline(commands))

    def scheduled(self, queue: str, limit: int = 1000) -> list[tuple[str, float]]:
        limit = arguments.whole("limit", limit, minimum=1)
        parts = self._on_all("ZRANGE", lambda v: v.scheduled_key(queue), 0, limit - 1, "WITHSCORES")
        merged = heapq.merge(*[scored(part) for part in parts], key=lambda p: p[1])
        return [(as_str(i), float(score) / 1000) for i, score in list(merged)[:limit]]

    def _now_ms(self) -> int:
        with self.views[0]._translate():
            seconds, micros = reply(self.client.time())
        return int(seconds) * 1000 + int(micros) // 1000

    # -- periodic jobs: on the shard of their occurrences --------------------------------------

    def _cron_view(self, queue: str, name: str) -> RedisBroker:
        return self.shard_for(f"cron:{queue}:{name}:0")

    def cron_set(self, queue: str, name: str, spec: bytes, version: str, first: CronJob) -> None:
        self._cron_view(queue, name).cron_set(queue, name, spec, version, first)

    def cron_next(self, queue: str, name: str, version: str, job: CronJob) -> bool:
        return self._cron_view(queue, name).cron_next(queue, name, version, job)

    def cron_remove(self, queue: str, name: str) -> bool:
        return self._cron_view(queue, name).cron_remove(queue, name)

    def crons(self, queue: str) -> dict[str, CronEntry]:
        out: dict[str, CronEntry] = {}
        for view, raw in zip(
            self.views, self._on_all("HGETALL", lambda v: v.cron_key(queue)), strict=True
        ):
            if raw:
                out.update(view.crons(queue))
        return out

    # -- workers: on the first shard -----------------------------------------------------------

    def register_worker(self, name: str, fields: Fields, ttl: float) -> None:
        self.views[0].register_worker(name, fields, ttl)

    def unregister_worker(self, name: str) -> None:
        # MULTI on the server of the registry's slot: some cluster clients refuse
        # transactions, though both keys share a slot.
        view = self.views[0]
        with view._translate():
            pipe = server_of(self.client, view.workers_key).pipeline(transaction=True)
            pipe.delete(view.worker_key(name))
            pipe.zrem(view.workers_key, name)
            pipe.execute()

    def workers(self) -> dict[str, dict[str, bytes]]:
        return self.views[0].workers()

    def startup_warnings(self) -> list[str]:
        if not hasattr(self.client, "get_primaries"):
            return self.views[0].startup_warnings()
        from myrq.backends.redis_cluster import cluster_warnings  # noqa: PLC0415 - cluster only

        url = self.views[0].url
        return cluster_warnings(self.client, url, self.layout.count, [v.prefix for v in self.views])
