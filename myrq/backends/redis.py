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

import logging
import secrets
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import redis
from redis.commands.core import Script

from myrq.backends import arguments
from myrq.backends.base import Broker, Delivery, EnqueueRequest, Fields, FinishRequest
from myrq.backends.redis_client import (
    as_bytes,
    as_str,
    broker_options,
    client_from_url,
    connection_kwargs,
    describe,
    load_script,
    reply,
    translate_errors,
)
from myrq.backends.redis_enqueue import EnqueueTally, check_requests
from myrq.backends.redis_leases import RedisLeases
from myrq.backends.redis_schedule import RedisScheduling
from myrq.defaults import DEFAULT_FAILURE_TTL
from myrq.exceptions import BrokerError, BrokerFullError, ConfigurationError, JobExistsError
from myrq.schema import (
    EXPIRED_ERROR,
    F_ATTEMPTS,
    F_BATCH,
    F_LEASE,
    F_QUEUE,
    F_STARTED_AT,
    F_STATUS,
    F_WORKER,
    S_CANCELED,
    S_PENDING,
    S_RUNNING,
)
from myrq.urls import redact_url

logger = logging.getLogger("myrq.broker")

#: Most wake-up tokens kept per queue; more would only cause spurious wake-ups.
NOTIFY_CAP = 100
#: Jobs per script call in enqueue_many (bounds how long one call holds Redis).
_ENQUEUE_CHUNK = 500


class RedisBroker(RedisScheduling, RedisLeases, Broker):
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
        expired_ttl: how long the record of a job canceled for its ``ttl`` is
            kept when it has no ``failure_ttl`` (seconds; None: forever).
        wait_replicas: an enqueue, and a step that records outcomes, returns
            only once this many replicas confirm its writes (``WAIT``), within
            ``wait_timeout`` seconds, else raises BrokerConnectionError (the
            write is on the master; sending the step again is safe). 0: no
            wait. See docs/reliability.md.
    """

    batch_claims = True

    def __init__(
        self,
        client: redis.Redis | None = None,
        *,
        url: str | None = None,
        key_prefix: str = "myrq:",
        poll_interval: float = 1.0,
        expired_ttl: float | None = DEFAULT_FAILURE_TTL,
        wait_replicas: int = 0,
        wait_timeout: float = 1.0,
    ) -> None:
        if client is None:
            client = client_from_url(url or "redis://127.0.0.1:6379/0")
        kwargs = connection_kwargs(client)
        if kwargs.get("decode_responses"):
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
        socket_timeout = kwargs.get("socket_timeout")
        self._max_block = poll_interval
        if socket_timeout:
            self._max_block = min(poll_interval, socket_timeout / 2)
        self._enqueue = load_script(client, "enqueue.lua")
        self._finish_and_claim = load_script(client, "finish_and_claim.lua")
        self._renew = load_script(client, "renew.lua")
        self._release = load_script(client, "release.lua")
        self._reap = load_script(client, "reap.lua")
        self._delete = load_script(client, "delete.lua")
        self._register = load_script(client, "register.lua")
        self._cancel = load_script(client, "cancel.lua")
        self._run_now = load_script(client, "run_now.lua")
        self._watch = load_script(client, "watch.lua")
        self._cron = load_script(client, "cron.lua")
        self._requeue = load_script(client, "requeue.lua")
        self._stop = load_script(client, "stop.lua")
        self._empty = load_script(client, "empty.lua")
        self._set_fields = load_script(client, "set_fields.lua")
        self.expired_ttl_ms = arguments.ttl_ms(expired_ttl)
        self.wait_replicas = arguments.whole("wait_replicas", wait_replicas, minimum=0)
        self._wait_ms = max(1, round(arguments.wait_seconds(wait_timeout) * 1000))
        self._enqueue_keys, self._finish_keys = {}, {}  # see RedisInspection

    @classmethod
    def from_url(cls, url: str, *, key_prefix: str = "myrq:", **kwargs: Any) -> RedisBroker:
        """Make a broker from ``redis://``, ``rediss://`` (TLS) or ``unix://`` URL.

        ``redis://user:password@host:port/db`` carries ACL credentials;
        ``?wait_replicas=N&wait_timeout=S`` set those arguments; extra keyword
        arguments go to the Broker constructor.
        """
        options = {k: v for k, v in broker_options(url).items() if k != "shards"}
        return cls(client_from_url(url), url=url, key_prefix=key_prefix, **options, **kwargs)

    def _translate(self) -> AbstractContextManager[None]:
        return translate_errors(self.url)

    def _script(self, script: Script, keys: list[Any], args: list[Any], *, durable: bool) -> Any:
        """Run a script; a durable one waits for ``wait_replicas`` replicas to confirm it."""
        if durable and self.wait_replicas:
            from myrq.backends.redis_replicas import call_and_wait  # noqa: PLC0415 - rarely used

            return call_and_wait(
                self.client, script, keys, args, self.wait_replicas, self._wait_ms, self.url
            )
        return script(keys=keys, args=args)

    # -- producing (enqueue.lua) -------------------------------------------------

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
        request = EnqueueRequest(queue, job_id, fields, at, delay, front, ttl)
        if self.enqueue_many([request]):
            raise JobExistsError(job_id)

    def enqueue_many(self, requests: Sequence[EnqueueRequest]) -> list[str]:
        # One script call per chunk: one round trip, and no per-job EVALSHA.
        check_requests(requests)
        tally = EnqueueTally(self.url, len(requests))
        for start in range(0, len(requests), _ENQUEUE_CHUNK):
            chunk = requests[start : start + _ENQUEUE_CHUNK]
            try:
                results = self._enqueue_chunk(chunk)
            except BrokerFullError as exc:
                if not start:
                    raise
                raise tally.partly_full(exc, sent=start) from exc
            tally.add(chunk, results)
        return tally.finish()

    def _enqueue_chunk(
        self,
        requests: Sequence[EnqueueRequest],
        remote: Mapping[tuple[str, str], tuple[str, str]] | None = None,
    ) -> list[Any]:
        keys, args = self._enqueue_args(requests, remote or {})
        with self._translate():
            return list(self._script(self._enqueue, keys, args, durable=True))

    def _enqueue_args(
        self,
        requests: Sequence[EnqueueRequest],
        remote: Mapping[tuple[str, str], tuple[str, str]],
    ) -> tuple[list[Any], list[Any]]:
        """enqueue.lua's KEYS and ARGV. ``remote`` names, per ``(job id, parent id)``, the
        keys read as that parent's record and dependents set (a parent on another shard)."""
        keys: list[str] = [self.queues_key]
        args: list[Any] = [NOTIFY_CAP, self.expired_ttl_ms]
        for req in requests:
            keys.append(self.job_key(req.job_id))
            keys += self._keys_for_enqueue(req.queue)
            for parent in req.depends_on:
                keys += remote.get((req.job_id, parent)) or (
                    self.job_key(parent),
                    self.dependents_key(parent),
                )
            fields = req.fields if F_STATUS in req.fields else {**req.fields, F_STATUS: S_PENDING}
            due, delay, ttl = arguments.schedule_ms(req.at, req.delay, req.ttl)
            args += (req.job_id, req.queue, due, delay, int(req.front), ttl)
            args += (int(req.allow_failure), len(req.depends_on), *req.depends_on, len(fields))
            for name, value in fields.items():
                args += (name, value)
        return keys, args

    # -- consuming (finish_and_claim.lua) -----------------------------------------

    def _claim_call(  # noqa: PLR0917 - the script's arguments
        self,
        queues: Sequence[str],
        worker: str,
        lease_ms: int,
        count: int,
        claim_id: str,
        finishes: Sequence[tuple[FinishRequest, int, int]] = (),
    ) -> tuple[list[bool], list[Delivery], list[str], float | None]:
        """Run the script; return (written, deliveries, errors, seconds until the next due job)."""
        keys = [self.leases_key, self.claim_key(claim_id)]
        for q in queues:
            keys += (self.queue_key(q), self.notify_key(q), self.scheduled_key(q))
            keys.append(self.state_key(q, "running"))
        args: list[Any] = [
            worker, lease_ms, count, claim_id, self.expired_ttl_ms, EXPIRED_ERROR, len(queues),
            *queues, len(finishes),
        ]  # fmt: skip
        for f, ttl_ms, retry_ms in finishes:
            q = f.queue or "default"
            state = as_str(f.fields.get(F_STATUS, b"finished"))
            keys.append(self.job_key(f.job_id))
            keys += self._keys_for_finish(q, state)
            args += (f.job_id, f.token, ttl_ms, retry_ms, state, len(f.fields))
            for name, value in f.fields.items():
                args += (name, value)
        raw = self._script(self._finish_and_claim, keys, args, durable=bool(finishes))
        errors = [as_str(e) for e in raw[1]]
        next_due = None if raw[2] is None else int(raw[2]) / 1000
        return [bool(w) for w in raw[0]], self._parse_deliveries(raw[3:], worker), errors, next_due

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
                _, out, errors, next_due = self._claim_call(
                    queues, worker, lease_ms, count, claim_id
                )
                if errors and not out:
                    raise BrokerError(f"Redis at {self.url} refused the claim: {errors[0]}")
                _log(errors)
                remaining = deadline - time.monotonic()
                if out or remaining <= 0 or count == 0:
                    return out
                # Block until an enqueue pushes a wake-up token, the next scheduled
                # job falls due, or the wait ends; then claim. The token only wakes
                # us; the claim is what is atomic. At least 10 ms: Redis before
                # 7.0.8 read a sub-millisecond timeout as 0, which means "block
                # forever". (float: typed int in redis-py 5)
                if next_due is not None:
                    remaining = min(remaining, next_due + 0.001)
                wait = max(min(remaining, self._max_block), 0.01)
                woken = self.client.blpop(notify_keys, timeout=reply(wait))
                if woken is None and time.monotonic() >= deadline and next_due is None:
                    # Nothing came: the caller's next dequeue claims first anyway, so a
                    # claim here would only double an idle worker's commands.
                    return []

    def finish(self, job_id: str, token: str, fields: Fields, ttl: float | None) -> bool:
        arguments.fields(fields)
        ttl_ms = arguments.ttl_ms(ttl)
        with self._translate():
            raw = self.client.hget(self.job_key(job_id), F_QUEUE)  # its registries' queue
            queue = as_str(raw) if raw else "default"
            finish = FinishRequest(job_id, token, fields, ttl, queue)
            written, _, _, _ = self._claim_call((), "", 1, 0, "-", [(finish, ttl_ms, -1)])
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
        for f in finishes:
            arguments.fields(f.fields)
        steps = [(f, arguments.ttl_ms(f.ttl), arguments.retry_ms(f.retry_delay)) for f in finishes]
        lease_ms = arguments.lease_ms(lease)
        count = arguments.whole("count", count, minimum=0)
        with self._translate():
            written, out, errors, _ = self._claim_call(
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
                # HGETALL's reply: bulk strings, so bytes (the client never decodes).
                fields = {k.decode("utf-8", "replace"): v for k, v in zip(it, it, strict=True)}
            if claim and not token:  # canceled by the claim: its ttl had passed
                if fields is not None:
                    fields[F_STATUS] = S_CANCELED
                out.append(Delivery(as_str(job_id), as_str(queue), None, fields, "expired"))
                continue
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

    # -- deleting (delete.lua) -------------------------------------------------------

    def delete(self, job_id: str) -> bool:
        keys = [self.job_key(job_id), self.leases_key, self.queues_key]
        with self._translate():
            return bool(self._delete(keys=keys, args=[job_id, self.expired_ttl_ms]))

    def close(self) -> None:
        self.client.close()


def _log(errors: list[str]) -> None:
    for error in errors:
        logger.error("a claim stopped early: %s (the jobs it did claim were handed out)", error)
