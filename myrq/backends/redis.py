"""Redis broker: the original design's hash + list scheme, made reliable.

Keys (``P`` is the key prefix, ``myrq:`` by default):

``P job:<id>``       hash: the job record (``func``, ``status``, ``timeout``, ``created_at``, ...)
``P queue:<name>``   list of job ids, pushed at the right, taken from the left
``P queues``         set of queue names
``P leases``         sorted set: id of each claimed job -> lease deadline (ms, Redis clock)
``P notify:<name>``  short list of wake-up tokens that idle workers block on

Every step that touches more than one key is one Lua script (``lua/``), so a
crash of the client or of Redis never leaves half a step behind. Times come
from Redis's own clock (``TIME``), so workers' clock skew does not matter.
"""

from __future__ import annotations

import importlib.resources
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

import redis
from redis.commands.core import Script

from myrq.backends.base import Broker, Delivery, EnqueueRequest, Fields, FinishRequest, Reaped
from myrq.backends.redis_client import (
    as_bytes,
    as_str,
    client_from_url,
    describe,
    reply,
    translate_errors,
)
from myrq.exceptions import ConfigurationError, JobExistsError
from myrq.schema import (
    ABANDONED_ERROR_TEMPLATE,
    F_ATTEMPTS,
    F_BATCH,
    F_LEASE,
    F_QUEUE,
    F_STARTED_AT,
    F_STATUS,
    F_WORKER,
    S_PENDING,
    S_RUNNING,
)
from myrq.urls import redact_url

#: Most wake-up tokens kept per queue; more would only cause spurious wake-ups.
NOTIFY_CAP = 100
#: Jobs per script call in enqueue_many (bounds how long one call holds Redis).
_ENQUEUE_CHUNK = 500
_GLOB_SPECIALS = str.maketrans({c: "\\" + c for c in "*?[]\\"})


def _load_script(client: redis.Redis, name: str) -> Script:
    text = importlib.resources.files("myrq.backends").joinpath("lua", name).read_text("utf-8")
    return client.register_script(text)


class RedisBroker(Broker):
    """A broker on one Redis server (or anything speaking its protocol).

    Args:
        client: a ``redis.Redis`` (or ``fakeredis.FakeRedis``) made with
            ``decode_responses=False``. Built from ``url`` when omitted.
        url: used when ``client`` is omitted; also shown (password hidden) in
            errors and ``myrq info``.
        key_prefix: prepended to every key. Under Redis Cluster it must
            contain a hash tag, e.g. ``"{myrq}:"``.
        poll_interval: longest single blocking wait while idle, in seconds.
            Jobs enqueued by myrq wake workers at once; this bounds how long a
            job pushed by a foreign client (which sends no wake-up) waits.
    """

    batch_claims = True

    def __init__(
        self,
        client: redis.Redis | None = None,
        *,
        url: str | None = None,
        key_prefix: str = "myrq:",
        poll_interval: float = 1.0,
    ) -> None:
        if client is None:
            client = client_from_url(url or "redis://127.0.0.1:6379/0")
        kwargs = getattr(client, "connection_pool", None)
        if kwargs is not None and kwargs.connection_kwargs.get("decode_responses"):
            raise ConfigurationError(
                "RedisBroker needs a redis client made with decode_responses=False "
                "(it stores bytes); pass a client without decode_responses=True"
            )
        if not key_prefix:
            raise ConfigurationError("key_prefix must not be empty; the default is 'myrq:'")
        self.client = client
        self.url = redact_url(url) if url else describe(client)
        self.prefix = key_prefix
        self.poll_interval = poll_interval
        # A blocking wait must end before the client's own socket timeout would.
        socket_timeout = kwargs.connection_kwargs.get("socket_timeout") if kwargs else None
        self._max_block = poll_interval
        if socket_timeout:
            self._max_block = min(poll_interval, socket_timeout / 2)
        self._leases_key = f"{key_prefix}leases"
        self._queues_key = f"{key_prefix}queues"
        self._enqueue = _load_script(client, "enqueue.lua")
        self._finish_and_claim = _load_script(client, "finish_and_claim.lua")
        self._renew = _load_script(client, "renew.lua")
        self._release = _load_script(client, "release.lua")
        self._reap = _load_script(client, "reap.lua")
        self._delete = _load_script(client, "delete.lua")

    @classmethod
    def from_url(cls, url: str, *, key_prefix: str = "myrq:", **kwargs: Any) -> RedisBroker:
        """Make a broker from ``redis://``, ``rediss://`` (TLS) or ``unix://`` URL.

        ``redis://user:password@host:port/db`` carries ACL credentials; extra
        keyword arguments go to the Broker constructor.
        """
        return cls(client_from_url(url), url=url, key_prefix=key_prefix, **kwargs)

    # -- keys --------------------------------------------------------------

    def job_key(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    def queue_key(self, queue: str) -> str:
        return f"{self.prefix}queue:{queue}"

    def notify_key(self, queue: str) -> str:
        return f"{self.prefix}notify:{queue}"

    # -- error translation -------------------------------------------------

    def _translate(self) -> AbstractContextManager[None]:
        return translate_errors(self.url)

    # -- producing ---------------------------------------------------------

    def enqueue(self, queue: str, job_id: str, fields: Fields) -> None:
        if self._enqueue_chunk([EnqueueRequest(queue, job_id, fields)]):
            raise JobExistsError(job_id)

    def enqueue_many(self, requests: Sequence[EnqueueRequest]) -> list[str]:
        # One script call per chunk: one round trip, and no per-job EVALSHA.
        refused: list[str] = []
        for start in range(0, len(requests), _ENQUEUE_CHUNK):
            refused += self._enqueue_chunk(requests[start : start + _ENQUEUE_CHUNK])
        return refused

    def _enqueue_chunk(self, requests: Sequence[EnqueueRequest]) -> list[str]:
        """Run enqueue.lua over ``requests``; return the ids a live job held."""
        keys: list[str] = [self._queues_key]
        args: list[Any] = [NOTIFY_CAP]
        for req in requests:
            keys += (
                self.job_key(req.job_id),
                self.queue_key(req.queue),
                self.notify_key(req.queue),
            )
            fields = req.fields if F_STATUS in req.fields else {**req.fields, F_STATUS: S_PENDING}
            args += (req.job_id, req.queue, len(fields))
            for name, value in fields.items():
                args += (name, value)
        with self._translate():
            done = self._enqueue(keys=keys, args=args)
        return [req.job_id for req, ok in zip(requests, done, strict=True) if not ok]

    # -- consuming ---------------------------------------------------------

    def _claim_call(
        self,
        queues: Sequence[str],
        worker: str,
        lease: float,
        count: int,
        finishes: Sequence[FinishRequest] = (),
    ) -> tuple[list[bool], list[Delivery]]:
        keys = [self._leases_key]
        for q in queues:
            keys += (self.queue_key(q), self.notify_key(q))
        # A fresh random nonce per call makes every lease token unique, even for
        # the same worker re-claiming a released job within one millisecond.
        nonce = secrets.token_hex(8)
        args: list[Any] = [
            self.prefix, worker, max(1, int(lease * 1000)), count, nonce, len(queues), *queues,
            len(finishes),
        ]  # fmt: skip
        for f in finishes:
            keys.append(self.job_key(f.job_id))
            args += (f.job_id, f.token, _ttl_ms(f.ttl), len(f.fields))
            for name, value in f.fields.items():
                args += (name, value)
        raw = self._finish_and_claim(keys=keys, args=args)
        return [bool(w) for w in raw[0]], self._parse_deliveries(raw[1:], worker)

    def dequeue(
        self,
        queues: Sequence[str],
        worker: str,
        lease: float,
        timeout: float = 0,
        count: int = 1,
    ) -> list[Delivery]:
        notify_keys = [self.notify_key(q) for q in queues]
        with self._translate():
            out = self._claim_call(queues, worker, lease, count)[1]
            deadline = time.monotonic() + timeout
            remaining = timeout
            while not out and remaining > 0:
                # Block until an enqueue pushes a wake-up token (or the wait ends),
                # then claim. The token only wakes us; the claim is what is atomic.
                # At least 10 ms: Redis before 7.0.8 read a sub-millisecond timeout as 0,
                # which means "block forever".
                wait = max(min(remaining, self._max_block), 0.01)
                self.client.blpop(
                    notify_keys, timeout=reply(wait)
                )  # float: typed int in redis-py 5
                out = self._claim_call(queues, worker, lease, count)[1]
                remaining = deadline - time.monotonic()
        return out

    def finish_many_and_dequeue(
        self,
        finishes: Sequence[FinishRequest],
        *,
        queues: Sequence[str],
        worker: str,
        lease: float,
        count: int = 1,
    ) -> tuple[list[bool], list[Delivery]]:
        with self._translate():
            return self._claim_call(queues, worker, lease, count, finishes)

    @staticmethod
    def _parse_deliveries(raw: Any, worker: str) -> list[Delivery]:
        out = []
        for job_id, queue, token, flat, *claim in raw:
            fields = None
            if flat:
                it = iter(flat)
                fields = {as_str(k): as_bytes(v) for k, v in zip(it, it, strict=True)}
            if token and fields is not None:
                # The script returns the record as it was before the claim, and
                # what the claim wrote, instead of reading the record again.
                started_at, attempts, batch = claim
                fields.update(
                    {
                        F_STATUS: S_RUNNING,
                        F_STARTED_AT: as_bytes(started_at),
                        F_WORKER: worker.encode(),
                        F_LEASE: as_bytes(token),
                        F_QUEUE: as_bytes(queue),
                        F_ATTEMPTS: str(attempts).encode(),
                        F_BATCH: as_bytes(batch),
                    }
                )
            out.append(
                Delivery(as_str(job_id), as_str(queue), as_str(token) if token else None, fields)
            )
        return out

    def renew(self, job_id: str, token: str, lease: float) -> bool:
        with self._translate():
            return bool(
                self._renew(
                    keys=[self.job_key(job_id), self._leases_key],
                    args=[job_id, token, max(1, int(lease * 1000))],
                )
            )

    def finish(self, job_id: str, token: str, fields: Fields, ttl: float | None) -> bool:
        with self._translate():
            written, _ = self._claim_call((), "", 0, 0, [FinishRequest(job_id, token, fields, ttl)])
        return written[0]

    def release(self, job_id: str, token: str) -> bool:
        with self._translate():
            queue = self.client.hget(self.job_key(job_id), F_QUEUE)
            name = as_str(queue) if queue else "default"
            keys = [
                self.job_key(job_id),
                self._leases_key,
                self.queue_key(name),
                self.notify_key(name),
            ]
            return bool(self._release(keys=keys, args=[job_id, token, NOTIFY_CAP]))

    def reap(
        self, max_attempts: int, failure_ttl: float | None = None, limit: int = 100
    ) -> list[Reaped]:
        default_ttl_ms = -1 if failure_ttl is None or failure_ttl < 0 else int(failure_ttl * 1000)
        args: list[Any] = [
            self.prefix, limit, max_attempts, NOTIFY_CAP, ABANDONED_ERROR_TEMPLATE, default_ttl_ms
        ]  # fmt: skip
        with self._translate():
            raw = self._reap(keys=[self._leases_key], args=args)
        return [
            Reaped(as_str(i), as_str(q) if q else None, as_str(outcome), int(n))  # type: ignore[arg-type]
            for i, q, outcome, n in raw
        ]

    # -- inspecting --------------------------------------------------------

    def get(self, job_id: str) -> dict[str, bytes] | None:
        with self._translate():
            raw = reply(self.client.hgetall(self.job_key(job_id)))
        return {as_str(k): as_bytes(v) for k, v in raw.items()} or None

    def delete(self, job_id: str) -> bool:
        keys = [self.job_key(job_id), self._leases_key, self._queues_key]
        with self._translate():
            return bool(self._delete(keys=keys, args=[self.prefix, job_id]))

    def queue_length(self, queue: str) -> int:
        with self._translate():
            return int(reply(self.client.llen(self.queue_key(queue))))

    def queued_ids(self, queue: str, start: int = 0, stop: int = -1) -> list[str]:
        with self._translate():
            return [
                as_str(i) for i in reply(self.client.lrange(self.queue_key(queue), start, stop))
            ]

    def queue_names(self) -> list[str]:
        # The set has every queue myrq enqueued to; the scan adds queues that
        # foreign clients pushed to without registering them.
        head = self.queue_key("")
        with self._translate():
            names = {as_str(n) for n in reply(self.client.smembers(self._queues_key))}
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
            return [as_str(i) for i in reply(self.client.zrange(self._leases_key, 0, -1))]

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

    def close(self) -> None:
        self.client.close()


def _ttl_ms(ttl: float | None) -> int:
    """A record lifetime for the scripts: -1 keep forever, 0 delete now, else ms."""
    return -1 if ttl is None else max(0, int(ttl * 1000))
