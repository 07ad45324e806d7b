"""Redis broker: the original design's hash + list scheme, made reliable.

Keys (``P`` is the key prefix, ``myrq:`` by default):

``P job:<id>``       hash: the job record (``func``, ``status``, ``timeout``, ``created_at``, ...)
``P queue:<name>``   list of job ids, pushed at the right, taken from the left
``P queues``         set of queue names
``P leases``         sorted set: id of each claimed job -> lease deadline (ms, Redis clock)
``P notify:<name>``  short list of wake-up tokens that idle workers block on
``P claim:<id>``     list: the ids one claim took, kept for a lease (a resent claim replays it)
``P workers``        sorted set: name of each live worker -> when its record expires (ms)
``P worker:<name>``  hash: a worker's record (host, pid, queues, current job, counts)

Every step that touches more than one key is one Lua script (``lua/``), so a
crash of the client or of Redis never leaves half a step behind; each script
checks everything that can fail before its first write, and is safe to send
twice (a client that retries after a lost reply). Times come from Redis's own
clock (``TIME``), so workers' clock skew does not matter. The reads and the
worker registry, plain commands, are in :mod:`myrq.backends.redis_inspect`.
"""

from __future__ import annotations

import importlib.resources
import logging
import secrets
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import redis
from redis.commands.core import Script

from myrq.backends import arguments
from myrq.backends.base import Broker, Delivery, EnqueueRequest, Fields, FinishRequest, Reaped
from myrq.backends.redis_client import (
    as_bytes,
    as_str,
    client_from_url,
    describe,
    reply,
    translate_errors,
)
from myrq.backends.redis_inspect import RedisInspection
from myrq.exceptions import BrokerError, ConfigurationError, JobExistsError
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

logger = logging.getLogger("myrq.broker")

#: Most wake-up tokens kept per queue; more would only cause spurious wake-ups.
NOTIFY_CAP = 100
#: Jobs per script call in enqueue_many (bounds how long one call holds Redis).
_ENQUEUE_CHUNK = 500


def _load_script(client: redis.Redis, name: str) -> Script:
    lua = importlib.resources.files("myrq.backends").joinpath("lua")
    text = lua.joinpath("_lib.lua").read_text("utf-8") + lua.joinpath(name).read_text("utf-8")
    return client.register_script(text)


class RedisBroker(RedisInspection, Broker):
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
        self._enqueue = _load_script(client, "enqueue.lua")
        self._finish_and_claim = _load_script(client, "finish_and_claim.lua")
        self._renew = _load_script(client, "renew.lua")
        self._release = _load_script(client, "release.lua")
        self._reap = _load_script(client, "reap.lua")
        self._delete = _load_script(client, "delete.lua")
        self._register = _load_script(client, "register.lua")

    @classmethod
    def from_url(cls, url: str, *, key_prefix: str = "myrq:", **kwargs: Any) -> RedisBroker:
        """Make a broker from ``redis://``, ``rediss://`` (TLS) or ``unix://`` URL.

        ``redis://user:password@host:port/db`` carries ACL credentials; extra
        keyword arguments go to the Broker constructor.
        """
        return cls(client_from_url(url), url=url, key_prefix=key_prefix, **kwargs)

    def _translate(self) -> AbstractContextManager[None]:
        return translate_errors(self.url)

    # -- producing (enqueue.lua) -------------------------------------------------

    def enqueue(self, queue: str, job_id: str, fields: Fields) -> None:
        if self.enqueue_many([EnqueueRequest(queue, job_id, fields)]):
            raise JobExistsError(job_id)

    def enqueue_many(self, requests: Sequence[EnqueueRequest]) -> list[str]:
        # One script call per chunk: one round trip, and no per-job EVALSHA.
        refused: list[str] = []
        broken: list[str] = []
        for start in range(0, len(requests), _ENQUEUE_CHUNK):
            chunk = requests[start : start + _ENQUEUE_CHUNK]
            for req, done in zip(chunk, self._enqueue_chunk(chunk), strict=True):
                if done == 0:
                    refused.append(req.job_id)
                elif done != 1:
                    broken.append(f"{req.job_id!r} ({as_str(done)})")
        if broken:
            stored = len(requests) - len(broken) - len(refused)
            raise BrokerError(
                f"Redis at {self.url} could not store job(s) {', '.join(broken[:5])}: their keys "
                f"hold something else; {stored} other job(s) were stored"
            )
        return refused

    def _enqueue_chunk(self, requests: Sequence[EnqueueRequest]) -> list[Any]:
        keys: list[str] = [self.queues_key]
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
            return list(self._enqueue(keys=keys, args=args))

    # -- consuming (finish_and_claim.lua) -----------------------------------------

    def _claim_call(  # noqa: PLR0917 - the script's arguments
        self,
        queues: Sequence[str],
        worker: str,
        lease_ms: int,
        count: int,
        claim_id: str,
        finishes: Sequence[tuple[FinishRequest, int]] = (),
    ) -> tuple[list[bool], list[Delivery], list[str]]:
        keys = [self.leases_key, self.claim_key(claim_id)]
        for q in queues:
            keys += (self.queue_key(q), self.notify_key(q))
        args: list[Any] = [worker, lease_ms, count, claim_id, len(queues), *queues, len(finishes)]
        for f, ttl_ms in finishes:
            keys.append(self.job_key(f.job_id))
            args += (f.job_id, f.token, ttl_ms, len(f.fields))
            for name, value in f.fields.items():
                args += (name, value)
        raw = self._finish_and_claim(keys=keys, args=args)
        errors = [as_str(e) for e in raw[1]]
        return [bool(w) for w in raw[0]], self._parse_deliveries(raw[2:], worker), errors

    def dequeue(
        self,
        queues: Sequence[str],
        worker: str,
        lease: float,
        timeout: float = 0,
        count: int = 1,
        *,
        claim_id: str | None = None,
    ) -> list[Delivery]:
        lease_ms = arguments.lease_ms(lease)
        remaining = arguments.wait_seconds(timeout)
        count = arguments.whole("count", count, minimum=0)
        claim_id = claim_id or secrets.token_hex(8)
        notify_keys = [self.notify_key(q) for q in queues]
        deadline = time.monotonic() + remaining
        with self._translate():
            while True:
                _, out, errors = self._claim_call(queues, worker, lease_ms, count, claim_id)
                if errors and not out:
                    raise BrokerError(f"Redis at {self.url} refused the claim: {errors[0]}")
                _log(errors)
                remaining = deadline - time.monotonic()
                if out or remaining <= 0 or count == 0:
                    return out
                # Block until an enqueue pushes a wake-up token (or the wait ends),
                # then claim. The token only wakes us; the claim is what is atomic.
                # At least 10 ms: Redis before 7.0.8 read a sub-millisecond timeout
                # as 0, which means "block forever". (float: typed int in redis-py 5)
                wait = max(min(remaining, self._max_block), 0.01)
                self.client.blpop(notify_keys, timeout=reply(wait))

    def finish(self, job_id: str, token: str, fields: Fields, ttl: float | None) -> bool:
        finish = FinishRequest(job_id, token, fields, ttl)
        with self._translate():
            written, _, _ = self._claim_call((), "", 1, 0, "-", [(finish, arguments.ttl_ms(ttl))])
        return written[0]

    def finish_many_and_dequeue(
        self,
        finishes: Sequence[FinishRequest],
        *,
        queues: Sequence[str],
        worker: str,
        lease: float,
        count: int = 1,
        claim_id: str | None = None,
    ) -> tuple[list[bool], list[Delivery]]:
        steps = [(f, arguments.ttl_ms(f.ttl)) for f in finishes]
        lease_ms = arguments.lease_ms(lease)
        count = arguments.whole("count", count, minimum=0)
        with self._translate():
            written, out, errors = self._claim_call(
                queues, worker, lease_ms, count, claim_id or secrets.token_hex(8), steps
            )
        _log(errors)
        return written, out

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
                        F_ATTEMPTS: as_bytes(attempts),
                        F_BATCH: as_bytes(batch),
                    }
                )
            out.append(
                Delivery(as_str(job_id), as_str(queue), as_str(token) if token else None, fields)
            )
        return out

    # -- leases (renew.lua, release.lua, reap.lua) ---------------------------------

    def renew(self, job_id: str, token: str, lease: float) -> bool:
        return self.renew_many([(job_id, token)], lease)[0]

    def renew_many(self, held: Sequence[tuple[str, str]], lease: float) -> list[bool]:
        lease_ms = arguments.lease_ms(lease)
        if not held:
            return []
        keys = [self.leases_key, *(self.job_key(job_id) for job_id, _ in held)]
        args: list[Any] = [lease_ms]
        for job_id, token in held:
            args += (job_id, token)
        with self._translate():
            return [bool(r) for r in self._renew(keys=keys, args=args)]

    def release(self, job_id: str, token: str) -> bool:
        with self._translate():
            queue = self.client.hget(self.job_key(job_id), F_QUEUE)
            name = as_str(queue) if queue else "default"
            keys = [
                self.job_key(job_id),
                self.leases_key,
                self.queue_key(name),
                self.notify_key(name),
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

    # -- deleting (delete.lua) -------------------------------------------------------

    def delete(self, job_id: str) -> bool:
        keys = [self.job_key(job_id), self.leases_key, self.queues_key]
        with self._translate():
            return bool(self._delete(keys=keys, args=[job_id]))

    def close(self) -> None:
        self.client.close()


def _log(errors: list[str]) -> None:
    for error in errors:
        logger.error("a claim stopped early: %s (the jobs it did claim were handed out)", error)
