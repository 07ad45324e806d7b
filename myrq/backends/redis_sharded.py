"""The sharded Redis broker: one queue spread over N shards, for Redis Cluster.

Each shard is a classic layout (:class:`~myrq.backends.redis.RedisBroker`, the
same Lua scripts) under its own hash-tagged prefix, ``myrq:{s3.28}:`` (see
:mod:`myrq.backends.redis_shards`), so every script touches one slot and a
cluster spreads the shards, and with them one queue, over its masters. A job
lives on the shard of its id; a step on one job goes to its shard.

- **Enqueue**: jobs are grouped by shard, one script call per shard and chunk.
- **Claims**: a worker claims from one shard at a time, starting at its home
  shard and staying on a shard while it has jobs, so a busy worker's step is
  still one script call that writes its outcomes and claims the next batch.
  When the shard is empty it sweeps every shard (one pipelined read of each
  queue's length and next scheduled job) and moves on to the next one with
  work, the highest-priority queue first, in rotation. FIFO order and queue
  priority therefore hold within a shard, not across shards; ids with a hash
  tag share a shard (see docs/scaling.md).
- **Wake-ups**: an idle worker blocks on its queues' *bells*, lists that share
  one slot (``myrq:{bell}:bell:<queue>``); a producer rings after an enqueue
  (the token names the shard), but only while its last ring found an idle
  worker waiting, else at most every :data:`PROBE_EVERY` seconds, so a busy
  system sends almost nothing there. A worker that just found nothing waits
  briefly (:data:`FIRST_WAIT`) before sweeping again, which covers the rings
  such a producer left out.
- **Reap**: one pipelined read of every shard's earliest lease deadline and
  outbox length, then a reap script only on the shards that need one.
- **Dependencies** across shards: :mod:`myrq.backends.redis_sharded_deps`.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from typing import Any

from myrq.backends import arguments
from myrq.backends.base import Broker, EnqueueRequest, Fields
from myrq.backends.redis import RedisBroker
from myrq.backends.redis_client import as_str, client_from_url, reply, script_text, translate_errors
from myrq.backends.redis_enqueue import EnqueueTally, check_requests
from myrq.backends.redis_sharded_claims import ShardedClaims
from myrq.backends.redis_sharded_deps import ShardedDependencies
from myrq.backends.redis_sharded_reads import ShardedReads
from myrq.backends.redis_shards import ShardLayout, scored, settle_count
from myrq.backends.values import Reaped
from myrq.defaults import DEFAULT_FAILURE_TTL
from myrq.exceptions import BrokerFullError, InvalidJobError, JobExistsError
from myrq.ids import key_tag
from myrq.schema import F_CKEY

logger = logging.getLogger("myrq.broker")

_CHUNK = 500


class ShardedRedisBroker(ShardedClaims, ShardedReads, ShardedDependencies, Broker):
    """A broker on the sharded layout, over one Redis, a cluster, or fakeredis.

    Args:
        client: a ``redis.Redis``, ``redis.cluster.RedisCluster`` or
            ``fakeredis.FakeRedis`` made with ``decode_responses=False``.
        url: used when ``client`` is omitted (a ``redis://`` URL); shown in errors.
        key_prefix: the layout's prefix, without a hash tag (``myrq:``).
        shards: the shard count of a new layout (default 16); an existing
            layout keeps its own, and another value is refused.
        poll_interval, expired_ttl, wait_replicas, wait_timeout: as for
            :class:`~myrq.backends.redis.RedisBroker`, on every shard.
    """

    batch_claims = True

    def __init__(
        self,
        client: Any = None,
        *,
        url: str | None = None,
        key_prefix: str = "myrq:",
        shards: int | None = None,
        poll_interval: float = 1.0,
        expired_ttl: float | None = DEFAULT_FAILURE_TTL,
        wait_replicas: int = 0,
        wait_timeout: float = 1.0,
    ) -> None:
        if client is None:
            client = client_from_url(url or "redis://127.0.0.1:6379/0")
        ShardLayout(key_prefix, shards or 1)  # check the prefix before anything is read
        first = RedisBroker(client, url=url, key_prefix=key_prefix)
        count_key = f"{key_prefix}shards"
        with first._translate():
            stored = reply(client.get(count_key))
            if stored is None:
                client.set(count_key, settle_count(key_prefix, None, shards), nx=True)
                stored = reply(client.get(count_key))
        self.layout = ShardLayout(key_prefix, settle_count(key_prefix, stored, shards))
        self.client = client
        self.url = first.url
        self.views = [
            RedisBroker(
                client,
                url=url or first.url,
                key_prefix=self.layout.shard_prefix(k),
                poll_interval=poll_interval,
                expired_ttl=expired_ttl,
                wait_replicas=wait_replicas,
                wait_timeout=wait_timeout,
            )
            for k in range(self.layout.count)
        ]
        self._attach_script = client.register_script(script_text("attach.lua"))
        self._settle_remote_script = client.register_script(script_text("settle_remote.lua"))
        self._cluster = hasattr(client, "nodes_manager")
        self._lock = threading.Lock()
        self._current: dict[str, int] = {}  # see ShardedClaims
        self._until: dict[str, float] = {}
        self._drained: set[str] = set()
        self._claims: OrderedDict[str, list[int]] = OrderedDict()
        self._parents: OrderedDict[str, int] = OrderedDict()  # claimed jobs with dependents
        self._bells: dict[str, tuple[bool, float]] = {}  # queue -> (idle seen, last ring)

    @classmethod
    def from_url(cls, url: str, *, key_prefix: str = "myrq:", **kwargs: Any) -> ShardedRedisBroker:
        """From a ``redis+cluster://`` or ``redis+sharded://`` URL (see ``redis_cluster``)."""
        from myrq.backends.redis_cluster import sharded_from_url  # noqa: PLC0415 - one place

        return sharded_from_url(url, key_prefix=key_prefix, **kwargs)

    def shard_of(self, job_id: str) -> int:
        return self.layout.shard_of(job_id)

    def shard_for(self, job_id: str) -> RedisBroker:
        """The classic-layout view of the shard that keeps ``job_id``."""
        return self.views[self.layout.shard_of(job_id)]

    def _translate(self) -> Any:
        return translate_errors(self.url)

    # -- pipelines of plain commands, on one server or across a cluster ------------------------

    def _run_pipeline(self, shard: int, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        return self._pipeline(commands)

    def _pipeline(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Run keyed commands in one pipeline (a cluster pipeline sends to each node once)."""
        if not commands:
            return []
        with self._translate():
            pipe = self.client.pipeline(transaction=False)
            for command in commands:
                pipe.execute_command(*command)
            return list(pipe.execute())

    # -- producing -----------------------------------------------------------------------------

    def enqueue(
        self,
        queue: str,
        job_id: str,
        fields: Fields,
        *,
        at: float | None = None,
        delay: float | None = None,
        front: bool = False,
        ttl: float | None = None,
    ) -> None:
        if self.enqueue_many([EnqueueRequest(queue, job_id, fields, at, delay, front, ttl)]):
            raise JobExistsError(job_id)

    def enqueue_many(self, requests: Sequence[EnqueueRequest]) -> list[str]:
        check_requests(requests)
        by_shard: dict[int, list[EnqueueRequest]] = defaultdict(list)
        for req in requests:
            self._check_key_shard(req)
            by_shard[self.layout.shard_of(req.job_id)].append(req)
        edges = self._attach(requests) if any(r.depends_on for r in requests) else {}
        tally = EnqueueTally(self.url, len(requests))
        sent = 0
        for shard, group in by_shard.items():
            remote, writes = edges.get(shard, ({}, []))
            self._run_pipeline(shard, writes)
            for start in range(0, len(group), _CHUNK):
                chunk = group[start : start + _CHUNK]
                try:
                    results = self.views[shard]._enqueue_chunk(chunk, remote)
                except BrokerFullError as exc:
                    if not sent:
                        raise
                    raise tally.partly_full(exc, sent=sent) from exc
                tally.add(chunk, results)
                sent += len(chunk)
            if remote:
                self._drop_edges(shard, remote)
        ready: dict[str, set[int]] = defaultdict(set)
        stored = set(tally.stored)
        for req in requests:
            if req.job_id in stored and req.at is None and not req.delay:
                ready[req.queue].add(self.layout.shard_of(req.job_id))
        self._ring(ready)
        return tally.finish()

    def _check_key_shard(self, req: EnqueueRequest) -> None:
        """A job with a concurrency key must live on its key's shard, where the key's
        running set and waiting list are (ids myrq makes carry the key's tag)."""
        key = req.fields.get(F_CKEY)
        if key is None:
            return
        tag = key_tag(key.decode("utf-8", "surrogatepass"))
        if self.layout.shard_of(req.job_id) != self.layout.shard_of(f"{{{tag}}}"):
            raise InvalidJobError(
                f"job {req.job_id!r} has a concurrency key, so on the sharded layout its id "
                f"must end with the key's tag {{{tag}}} (every job of a key on one shard): let "
                "myrq choose the id, or build it with myrq.ids.new_job_id(concurrency_key)"
            )

    def finish(self, job_id: str, token: str, fields: Fields, ttl: float | None) -> bool:
        done = self.shard_for(job_id).finish(job_id, token, fields, ttl)
        with self._lock:
            parent = self._parents.pop(job_id, None)
        if done and parent is not None:
            self.carry_over([parent])
        return done

    # -- leases --------------------------------------------------------------------------------

    def renew(self, job_id: str, token: str, lease: float) -> bool:
        return self.shard_for(job_id).renew(job_id, token, lease)

    def renew_many(self, held: Sequence[tuple[str, str]], lease: float) -> list[int]:
        arguments.lease_ms(lease)
        by_shard: dict[int, list[int]] = defaultdict(list)
        for n, (job_id, _) in enumerate(held):
            by_shard[self.layout.shard_of(job_id)].append(n)
        out = [0] * len(held)
        for shard, indexes in by_shard.items():
            got = self.views[shard].renew_many([held[n] for n in indexes], lease)
            for n, value in zip(indexes, got, strict=True):
                out[n] = value
        return out

    def release(self, job_id: str, token: str) -> bool:
        view = self.shard_for(job_id)
        with view._translate():
            queue = as_str(view.client.hget(view.job_key(job_id), "queue") or b"default")
        done = view.release(job_id, token)
        if done:
            self._ring({queue: {self.layout.shard_of(job_id)}})
        return done

    def reap(
        self, max_attempts: int, failure_ttl: float | None = None, limit: int = 100
    ) -> list[Reaped]:
        limit = arguments.whole("limit", limit, minimum=1)
        arguments.whole("max_attempts", max_attempts, minimum=0)
        commands: list[tuple[Any, ...]] = []
        for view in self.views:
            commands.append(("ZRANGE", view.leases_key, 0, 0, "WITHSCORES"))
            commands.append(("LLEN", f"{view.prefix}outbox"))
        with self._translate():
            replies = self._pipeline(commands)
            now_s, now_us = reply(self.client.time())
        now_ms = int(now_s) * 1000 + int(now_us) // 1000
        out: list[Reaped] = []
        requeued: dict[str, set[int]] = defaultdict(set)
        outboxes = {s for s in range(self.layout.count) if int(replies[2 * s + 1])}
        start = secrets.randbelow(self.layout.count)  # no shard always reaped last
        for shard in [(start + n) % self.layout.count for n in range(self.layout.count)]:
            earliest = scored(replies[2 * shard])
            if len(out) >= limit or not earliest or earliest[0][1] > now_ms:
                continue
            got = self.views[shard].reap(max_attempts, failure_ttl, limit - len(out))
            out += got
            for r in got:
                if r.outcome == "requeued":
                    requeued[r.queue or "default"].add(shard)
                elif r.outcome == "failed":  # its dependents may be on other shards
                    outboxes.add(shard)
        self.carry_over(sorted(outboxes))
        self._ring(requeued)
        return out

    def repair(
        self, job_ids: Sequence[str], max_attempts: int, failure_ttl: float | None = None
    ) -> list[Reaped]:
        by_shard: dict[int, list[str]] = defaultdict(list)
        for job_id in job_ids:
            by_shard[self.layout.shard_of(job_id)].append(job_id)
        out: list[Reaped] = []
        for shard, ids in by_shard.items():
            out += self.views[shard].repair(ids, max_attempts, failure_ttl)
        return out

    # -- the servers ---------------------------------------------------------------------------

    def ping(self) -> None:
        with self._translate():
            self.client.ping()

    def close(self) -> None:
        # A cluster client's close() forgets the topology for good; dropping its
        # connections releases the same and leaves a client shared with others usable.
        drop = getattr(self.client, "disconnect_connection_pools", None)
        if drop is not None:
            drop()
        else:
            self.client.close()
