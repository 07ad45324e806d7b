"""Worker: takes jobs from queues, runs them, records the outcome.

One job at a time, in the worker's own process by default, or in a forked
child per job with ``isolate``. While jobs are quick, a small batch is
claimed at once and their outcomes are written together. A heartbeat thread
renews the leases the worker holds and reaps leases that other, dead workers
left behind, so their jobs run again.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any, TypeVar

from myrq import config
from myrq.backends import Broker, Delivery, Finish, RedisBroker
from myrq.backends.base import F_ENDED_AT, F_ERROR, F_FAILURE_TTL, F_STATUS
from myrq.exceptions import (
    BrokerConnectionError,
    BrokerError,
    ConfigurationError,
    FunctionLookupError,
    InvalidJobError,
    JobTimeout,
    SignatureError,
)
from myrq.heartbeat import Heartbeat
from myrq.ids import validate_queue_name
from myrq.isolation import run_isolated
from myrq.job import (
    F_FUNC,
    F_RESULT,
    F_RESULT_TTL,
    F_TIMEOUT,
    JobError,
    _fmt,
    _num,
    decode_payload,
    safe_str,
)
from myrq.queue import Queue
from myrq.registry import AllowList, FunctionRegistry, registry
from myrq.serializers import Serializer
from myrq.signing import F_SIGNATURE, verify
from myrq.status import JobStatus
from myrq.timeouts import JobAlarm, check_seconds, ttl_for_broker

logger = logging.getLogger("myrq.worker")
_T = TypeVar("_T")

#: The error type a timed-out job records, in process or isolated.
_TIMEOUT_TYPE = f"{JobTimeout.__module__}.{JobTimeout.__qualname__}"

#: Jobs quicker than this (seconds) let the worker prefetch a batch and write
#: outcomes together; after a slower one it claims and writes one at a time.
_QUICK = 0.005

#: Consecutive broker failures after which a burst worker gives up (about 3 s of backoff).
_BURST_RETRIES = 5


class _ShutdownNow(BaseException):
    """Raised in the running job by a second SIGTERM/SIGINT or the end of the grace period."""


class _Refused(Exception):
    """A job refused before its payload was decoded (size, signature, encoding)."""

    def __init__(self, outcome: _Outcome) -> None:
        super().__init__(outcome.error)
        self.outcome = outcome


@dataclass
class WorkerStats:
    """What a worker has done since it started."""

    finished: int = 0
    failed: int = 0
    timed_out: int = 0
    skipped: int = 0  # ids taken off a queue without a runnable record
    lost_leases: int = 0  # outcomes discarded because another worker took the job over

    @property
    def processed(self) -> int:
        return self.finished + self.failed + self.timed_out


@dataclass
class _Outcome:
    status: JobStatus
    result: bytes | None = None
    error: JobError | None = None


@dataclass
class _Done:
    """A job that ran, with the fields to write; ``written`` once recorded."""

    delivery: Delivery
    outcome: _Outcome
    fields: dict[str, bytes]
    ttl: float | None
    func_name: str
    elapsed: float
    written: bool = False


class Worker:
    """Runs jobs from ``queues``, the first listed having priority.

    Args:
        queues: queue names or :class:`Queue` objects, highest priority first.
        broker: a Broker, a URL, or None for the configured one.
        serializer: how payloads and results are encoded; must match the producers'.
        name: unique worker name (default ``host.pid.random``).
        lease_ttl: seconds a claimed job stays leased without a heartbeat; a
            dead worker's jobs run again this long after it died.
        max_attempts: claims after which a job whose worker keeps dying is
            failed as abandoned instead of requeued (0: no limit).
        idle_wait: longest single blocking wait for a job when idle; bounds
            how quickly a stop request is noticed.
        default_timeout: for jobs whose record has no valid ``timeout``
            (e.g. written by another client).
        result_ttl, failure_ttl: for jobs whose record does not set them.
        allow: module prefixes whose functions may run, added to the
            configured ones (``MYRQ_ALLOW``); functions registered with
            ``@myrq.task`` may always run. Anything else fails its job with
            FunctionNotAllowed, and nothing is imported (see :mod:`myrq.registry`).
        registry: where ``@myrq.task`` functions are looked up (default: global).
        secret_key: require payloads signed with this key (default: configured,
            ``MYRQ_SECRET_KEY``; ``b""``: do not check).
        max_payload_size: fail jobs whose payload is larger, before decoding it
            (default: configured, 1 MiB; 0: no cap).
        grace_period: after a first SIGTERM/SIGINT, seconds the current job may
            still run before it is stopped and put back on its queue (None: no
            limit). A second signal stops it at once.
        isolate: run each job in a forked child process (True), or only jobs
            of the listed queues, so a segfault, ``os._exit`` or memory blow-up
            fails the job and not the worker; its timeout then kills the child.
        job_memory_limit: with isolation, cap each child's address space at
            this many bytes (a larger allocation raises MemoryError in the job).
        prefetch: while jobs take under 5 ms, claim up to this many at once and
            write their outcomes together (one round trip per batch instead of
            per job); 1 turns it off. Only on brokers with ``batch_claims``.
            Claimed jobs not yet started are given back on shutdown.
    """

    def __init__(
        self,
        queues: Sequence[str | Queue] | str = ("default",),
        broker: Broker | str | None = None,
        serializer: Serializer | str | None = None,
        *,
        name: str | None = None,
        lease_ttl: float = 60.0,
        max_attempts: int = 3,
        idle_wait: float = 1.0,
        default_timeout: float = config.DEFAULT_TIMEOUT,
        result_ttl: int = config.DEFAULT_RESULT_TTL,
        failure_ttl: int = config.DEFAULT_FAILURE_TTL,
        allow: Sequence[str] | str = (),
        registry: FunctionRegistry = registry,
        secret_key: bytes | None = None,
        max_payload_size: int | None = None,
        grace_period: float | None = 30.0,
        isolate: bool | Sequence[str] = False,
        job_memory_limit: int | None = None,
        prefetch: int = 16,
    ) -> None:
        if isinstance(queues, str):
            queues = [queues]
        names = [q.name if isinstance(q, Queue) else q for q in queues]
        if not names:
            raise InvalidJobError("a Worker needs at least one queue name")
        self.queue_names: list[str] = [validate_queue_name(n) for n in names]
        check_seconds("lease_ttl", lease_ttl, minimum=1.0)
        check_seconds("idle_wait", idle_wait, minimum=0.01)
        check_seconds("default_timeout", default_timeout, minimum=0.001)
        if not isinstance(max_attempts, int) or isinstance(max_attempts, bool) or max_attempts < 0:
            raise ConfigurationError(
                f"max_attempts must be a whole number >= 0 (0: no limit), not {max_attempts!r}"
            )
        self.broker = config.get_broker(broker)
        self.serializer = config.get_serializer(serializer)
        self.name = name or f"{socket.gethostname()}.{os.getpid()}.{random.getrandbits(32):08x}"
        self.lease_ttl = lease_ttl
        self.max_attempts = max_attempts
        self.idle_wait = idle_wait
        self.default_timeout = default_timeout
        self.result_ttl = result_ttl
        self.failure_ttl = failure_ttl
        allowed = AllowList(config.allowed_modules(), registry).modules
        self.allow = AllowList((*allowed, *AllowList(allow).modules), registry)
        self.secret_key = config.secret_key() if secret_key is None else secret_key
        self.max_payload_size = (
            config.max_payload_size() if max_payload_size is None else max_payload_size
        )
        if grace_period is not None:
            check_seconds("grace_period", grace_period, minimum=0.0)
        self.grace_period = grace_period
        self.isolate_all, self.isolated_queues, self.job_memory_limit = _isolation(
            isolate, job_memory_limit
        )
        if not isinstance(prefetch, int) or isinstance(prefetch, bool) or not 1 <= prefetch <= 1000:
            raise ConfigurationError(
                f"prefetch must be a whole number from 1 to 1000, not {prefetch!r}"
            )
        self.prefetch = prefetch
        self.stats = WorkerStats()
        self._stop = threading.Event()  # take no more jobs
        self._running_job = False
        self._heartbeat: Heartbeat | None = None
        self._grace_timer: threading.Timer | None = None
        self._failures = 0  # consecutive broker failures while taking jobs
        self._alarm = JobAlarm()
        self._durations: dict[str, float] = {}  # function name -> its last run, seconds
        self._pending: deque[Delivery] = deque()
        self._unwritten: list[_Done] = []
        self._grace_over = False

    def __repr__(self) -> str:
        return f"Worker({self.name!r}, queues={self.queue_names!r})"

    # -- public ------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask the worker to stop after the job it is running (thread-safe)."""
        self._stop.set()

    def work(self, burst: bool = False, max_jobs: int | None = None) -> int:
        """Process jobs until stopped; return how many were run.

        With ``burst=True``, return as soon as every queue is empty. Otherwise
        wait for jobs (blocking in the broker, not polling) until SIGTERM or
        SIGINT, or :meth:`request_stop`.
        """
        start_count = self.stats.processed
        self._stop.clear()
        restore = self._install_signal_handlers()
        heartbeat = Heartbeat(
            self.broker,
            self.name,
            self.lease_ttl,
            self.max_attempts,
            ttl_for_broker(self.failure_ttl),
        )
        self._heartbeat = heartbeat
        logger.info(
            "worker %s started on queues %s (%s)", self.name, self.queue_names, self.broker.url
        )
        self._warn_about_eviction()
        if threading.current_thread() is not threading.main_thread():
            logger.warning(
                "worker %s runs outside the main thread: job timeouts cannot be "
                "enforced there (SIGALRM reaches only the main thread)",
                self.name,
            )
        heartbeat.reap()
        heartbeat.start()
        try:
            self._loop(burst, max_jobs, start_count)
        finally:
            self._stop.set()
            if self._grace_timer is not None:
                self._grace_timer.cancel()
                self._grace_timer.join()
                self._grace_timer = None
            heartbeat.stop()
            restore()
            logger.info(
                "worker %s stopped: %d finished, %d failed, %d timed out, %d skipped",
                self.name,
                self.stats.finished,
                self.stats.failed,
                self.stats.timed_out,
                self.stats.skipped,
            )
        return self.stats.processed - start_count

    # -- main loop ---------------------------------------------------------

    def _loop(  # noqa: PLR0912, PLR0915 - the state machine reads best in one place
        self, burst: bool, max_jobs: int | None, start_count: int
    ) -> None:
        backoff = 0.0
        pending: deque[Delivery] = deque()  # claimed (leased to us), not started
        done: list[_Done] = []  # run, outcome not yet written
        self._pending, self._unwritten = pending, done  # for _before_call
        batch = 1
        try:
            while not self._stop.is_set():
                left = None if max_jobs is None else max_jobs - self._count(start_count, done)
                if left is not None and left <= 0:
                    return
                if not pending and done:
                    # Write the outcomes and take the next jobs in one round trip.
                    pending.extend(self._flush(done, claim=min(batch, left or batch)))
                    self._hold(pending, done)
                    if pending or burst:
                        continue
                if not pending:
                    got = self._take(burst, min(batch, left or batch), backoff)
                    if got is None:  # the broker failed; we backed off
                        backoff = min(max(backoff * 2, 0.1), 5.0)
                        continue
                    backoff = 0.0
                    if not got:
                        if burst:
                            return
                        continue
                    pending.extend(got)
                    self._hold(pending, done)
                delivery = pending.popleft()
                if not delivery.claimed:
                    self._skip(delivery)
                    continue
                try:
                    result = self._run(delivery)
                except _ShutdownNow:
                    return
                except Exception:
                    # Our own bug: the job's lease is still held and expires, so it
                    # runs again. Never die on it.
                    logger.exception(
                        "worker %s: error while handling job %s", self.name, delivery.job_id
                    )
                    continue
                done.append(result)
                # Prefetch only while jobs are quick: a slow job would hold the
                # rest of a batch back from other workers.
                quick = result.elapsed < _QUICK
                batch = self.prefetch if quick and self.broker.batch_claims else 1
                if pending and (len(done) >= batch or not quick or self._stop.is_set()):
                    self._flush(done, claim=0)
                # Leases of unwritten outcomes are renewed too: a job that was quick
                # last time may now run for longer than a lease.
                self._hold(pending, done)
        finally:
            try:
                if done:
                    self._flush(done, claim=0)
            finally:
                # Jobs claimed but not started go back to the front of their queues
                # now, rather than waiting for their leases to expire; last first,
                # so that they keep their order.
                for delivery in reversed(pending):
                    if delivery.claimed:
                        self._give_back(delivery)
                self._hold((), ())

    def _take(self, burst: bool, count: int, backoff: float) -> list[Delivery] | None:
        """Claim up to ``count`` jobs, waiting unless ``burst``; None after a broker failure.

        A broker that is unreachable, or refuses (e.g. a queue key of the wrong
        type), is retried with backoff by the caller; the worker never dies of
        it. A burst worker, which is meant to finish, gives up after about 3 s.
        """
        try:
            got = self.broker.dequeue(
                self.queue_names,
                self.name,
                self.lease_ttl,
                timeout=0 if burst else self.idle_wait,
                count=count,
            )
        except BrokerError as exc:
            self._failures += 1
            if burst and self._failures > _BURST_RETRIES:
                raise
            wait = min(max(backoff * 2, 0.1), 5.0)
            logger.warning(
                "worker %s: could not take a job (%s); retrying in %.1fs", self.name, exc, wait
            )
            self._stop.wait(wait)
            return None
        self._failures = 0
        return got

    def _before_call(self, func_name: str) -> None:
        """Write held outcomes first unless this function ran quickly last time.

        Outcomes of quick jobs are written together, but a slow job must not
        keep them unwritten (their callers waiting) for as long as it runs.
        """
        if self._unwritten and self._durations.get(func_name, _QUICK) >= _QUICK:
            self._flush(self._unwritten, claim=0)
            self._hold(self._pending, self._unwritten)

    def _count(self, start_count: int, done: list[_Done]) -> int:
        return self.stats.processed - start_count + len(done)

    def _hold(self, pending: Iterable[Delivery], done: Iterable[_Done]) -> None:
        """Tell the heartbeat which leases to renew: claimed, running and unwritten jobs."""
        if self._heartbeat is not None:
            self._heartbeat.hold([*pending, *(d.delivery for d in done)])

    def process(self, delivery: Delivery) -> JobStatus | None:
        """Run one delivery and record its outcome. Returns the final status."""
        if not delivery.claimed:
            self._skip(delivery)
            return None
        item = self._run(delivery)
        self._flush([item], claim=0)
        return item.outcome.status if item.written else None

    def _skip(self, delivery: Delivery) -> None:
        self.stats.skipped += 1
        if delivery.fields is None:
            logger.warning(
                "queue %s held id %s, which has no job record (expired or deleted); dropped the id",
                delivery.queue,
                delivery.job_id,
            )
        else:
            status = delivery.fields.get(F_STATUS, b"?").decode("utf-8", "replace")
            logger.warning(
                "queue %s held id %s, whose job is already %s; dropped the duplicate id",
                delivery.queue,
                delivery.job_id,
                status,
            )

    def _run(self, delivery: Delivery) -> _Done:
        """Run a claimed delivery; return its outcome, ready to be written."""
        assert delivery.token is not None and delivery.fields is not None
        if self._heartbeat is not None:
            self._heartbeat.running(delivery)
        try:
            outcome, func_name, elapsed = self._execute(delivery)
        finally:
            if self._heartbeat is not None:
                self._heartbeat.running(None)
        fields: dict[str, bytes] = {
            F_STATUS: outcome.status.value.encode(),
            F_ENDED_AT: _fmt(time.time()),
        }
        if outcome.result is not None:
            fields[F_RESULT] = outcome.result
        if outcome.error is not None:
            fields[F_ERROR] = outcome.error.to_bytes()
        if outcome.status is JobStatus.FINISHED:
            ttl_setting = _num(delivery.fields.get(F_RESULT_TTL))
            default = self.result_ttl
        else:
            ttl_setting = _num(delivery.fields.get(F_FAILURE_TTL))
            default = self.failure_ttl
        ttl = ttl_for_broker(ttl_setting if ttl_setting is not None else default)
        # Bounded, whatever names the jobs carry.
        if len(self._durations) < 10_000 or func_name in self._durations:
            self._durations[func_name] = elapsed
        return _Done(delivery, outcome, fields, ttl, func_name, elapsed)

    def _flush(self, done: list[_Done], claim: int) -> list[Delivery]:
        """Write every outcome in ``done`` (emptying it), claiming ``claim`` jobs in the same step.

        Outcomes are written first and the claim comes after, in one round trip
        where the broker allows. A broker failure is retried for up to half a
        lease; past that the outcomes are dropped and their jobs run again when
        their leases expire (at-least-once).
        """
        items = list(done)
        done.clear()
        finishes = [
            Finish(d.delivery.job_id, d.delivery.token or "", d.fields, d.ttl) for d in items
        ]
        try:
            written, following = self._retry(
                lambda: self.broker.finish_many_and_dequeue(
                    finishes,
                    queues=self.queue_names,
                    worker=self.name,
                    lease=self.lease_ttl,
                    count=claim if not self._stop.is_set() else 0,
                )
            )
        except BrokerError:
            logger.exception(
                "worker %s could not record %d outcome(s); their jobs will run again "
                "when their leases expire",
                self.name,
                len(items),
            )
            return []
        for item, ok in zip(items, written, strict=True):
            # Not written may still be ours: a retry after a lost reply is fenced
            # out by our own first write.
            item.written = ok or self._already_written(item.delivery.job_id, item.fields, item.ttl)
            self._account(item)
        return following

    def _account(self, item: _Done) -> None:
        delivery, outcome = item.delivery, item.outcome
        if not item.written:
            self.stats.lost_leases += 1
            logger.warning(
                "worker %s lost its lease on job %s (it expired and was taken over, or the "
                "job was deleted); its outcome %s was not written",
                self.name,
                delivery.job_id,
                outcome.status.value,
            )
            return
        if outcome.status is JobStatus.FINISHED:
            self.stats.finished += 1
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "%s: %s (%s) finished in %.3fs",
                    delivery.queue, item.func_name, delivery.job_id, item.elapsed,
                )  # fmt: skip
            return
        if outcome.status is JobStatus.TIMEOUT:
            self.stats.timed_out += 1
        else:
            self.stats.failed += 1
        logger.info(
            "%s: %s (%s) %s in %.3fs: %s",
            delivery.queue,
            item.func_name,
            delivery.job_id,
            outcome.status.value,
            item.elapsed,
            outcome.error,
        )

    def _execute(self, delivery: Delivery) -> tuple[_Outcome, str, float]:  # noqa: PLR0911
        fields = delivery.fields or {}
        try:
            func_name, args, kwargs = self._decode(delivery.job_id, fields)
        except _Refused as refused:
            return refused.outcome, "<refused>", 0.0
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s: %s (%s) started", delivery.queue, func_name, delivery.job_id)
        self._before_call(func_name)
        timeout = _num(fields.get(F_TIMEOUT))
        if timeout is None or not timeout > 0:  # absent or garbled: the default, not "none"
            timeout = self.default_timeout
        if self.isolate_all or delivery.queue in self.isolated_queues:
            return self._execute_isolated(delivery, func_name, args, kwargs, timeout)
        started = time.monotonic()
        self._running_job = True
        try:
            # The import is inside the timeout too: a module that hangs at import
            # time must not hang the worker.
            result = self._call(func_name, args, kwargs, timeout)
        except FunctionLookupError as exc:  # FunctionNotAllowed too: nothing was imported
            return _failure(type(exc).__name__, str(exc)), func_name, 0.0
        except JobTimeout:
            return (
                _Outcome(
                    JobStatus.TIMEOUT,
                    error=_error_from_current(
                        f"job exceeded its timeout of {timeout:g}s and was stopped"
                    ),
                ),
                func_name,
                time.monotonic() - started,
            )
        except _ShutdownNow:
            self._give_back(delivery)
            raise
        except BaseException as exc:  # a job's SystemExit/KeyboardInterrupt fails the job only
            return (
                _Outcome(JobStatus.FAILED, error=JobError.from_exception(exc)),
                func_name,
                time.monotonic() - started,
            )
        finally:
            self._running_job = False
        elapsed = time.monotonic() - started
        try:
            encoded = self.serializer.dumps(result)
        except Exception as exc:  # SerializationError, or a custom serializer's own error
            return (
                _failure(
                    "ResultSerializationError",
                    f"the job returned a {type(result).__qualname__} that the "
                    f"{self.serializer.name or type(self.serializer).__name__} serializer "
                    f"cannot store: {safe_str(exc)}",
                ),
                func_name,
                elapsed,
            )
        return _Outcome(JobStatus.FINISHED, result=encoded), func_name, elapsed

    def _decode(
        self, job_id: str, fields: dict[str, bytes]
    ) -> tuple[str, list[Any], dict[str, Any]]:
        """Check size and signature, then decode the payload; raise _Refused if bad."""
        payload = fields.get(F_FUNC, b"")
        if self.max_payload_size and len(payload) > self.max_payload_size:
            raise _Refused(
                _failure(
                    "PayloadTooLargeError",
                    f"payload of {len(payload):,} bytes is above this worker's limit of "
                    f"{self.max_payload_size:,} (max_payload_size); it was not decoded",
                )
            )
        if self.secret_key:
            try:
                verify(self.secret_key, job_id, payload, fields.get(F_SIGNATURE))
            except SignatureError as exc:
                raise _Refused(_failure("SignatureError", str(exc))) from None
        try:
            return decode_payload(self.serializer, payload)
        except Exception as exc:  # DeserializationError, or a custom serializer's own error
            raise _Refused(
                _failure("InvalidPayload", f"payload could not be decoded: {safe_str(exc)}")
            ) from None

    def _execute_isolated(
        self,
        delivery: Delivery,
        func_name: str,
        args: list[Any],
        kwargs: dict[str, Any],
        timeout: float,
    ) -> tuple[_Outcome, str, float]:
        started = time.monotonic()
        self._running_job = True
        try:
            child = run_isolated(
                lambda: self.allow.resolve(func_name),
                args,
                kwargs,
                self.serializer,
                timeout,
                self.job_memory_limit,
            )
        except _ShutdownNow:
            self._give_back(delivery)  # the child is already killed and reaped
            raise
        finally:
            self._running_job = False
        elapsed = time.monotonic() - started
        if child.timed_out:
            message = f"job exceeded its timeout of {timeout:g}s; its process was killed"
            return (
                _Outcome(JobStatus.TIMEOUT, error=JobError(_TIMEOUT_TYPE, message, "")),
                func_name,
                elapsed,
            )
        if child.error is not None:
            return _Outcome(JobStatus.FAILED, error=child.error), func_name, elapsed
        return _Outcome(JobStatus.FINISHED, result=child.result), func_name, elapsed

    def _call(
        self,
        func_name: str,
        args: list[Any],
        kwargs: dict[str, Any],
        timeout: float,
    ) -> Any:
        if threading.current_thread() is not threading.main_thread():
            # SIGALRM reaches only the main thread: no timeout here.
            return self.allow.resolve(func_name)(*args, **kwargs)
        with self._alarm(timeout):
            return self.allow.resolve(func_name)(*args, **kwargs)

    def _already_written(self, job_id: str, fields: dict[str, bytes], ttl: float | None) -> bool:
        """True if the record holds exactly the outcome we sent (its status and end time)."""
        if ttl == 0:
            return False  # a deleted record cannot tell us; report the lost lease
        try:
            current = self.broker.get(job_id)
        except BrokerError:
            return False
        return current is not None and all(
            current.get(k) == fields[k] for k in (F_STATUS, F_ENDED_AT)
        )

    def _retry(self, step: Callable[[], _T]) -> _T:
        """Run a broker step, retrying through connection errors for up to half a lease."""
        deadline = time.monotonic() + self.lease_ttl / 2
        delay = 0.05
        while True:
            try:
                return step()
            except BrokerConnectionError:
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _give_back(self, delivery: Delivery) -> None:
        try:
            if self.broker.release(delivery.job_id, delivery.token or ""):
                logger.info(
                    "worker %s: job %s interrupted by shutdown, put back on %s",
                    self.name,
                    delivery.job_id,
                    delivery.queue,
                )
        except BrokerError:
            logger.exception(
                "worker %s could not put job %s back; its lease will expire and it will run again",
                self.name,
                delivery.job_id,
            )

    def _warn_about_eviction(self) -> None:
        if isinstance(self.broker, RedisBroker):
            policy = self.broker.memory_policy()
            if policy and policy.startswith("allkeys"):
                logger.warning(
                    "Redis at %s has maxmemory-policy %s: under memory pressure it may evict "
                    "queued jobs. Set it to noeviction for a job queue.",
                    self.broker.url,
                    policy,
                )

    # -- signals -------------------------------------------------------------

    def _end_grace(self, signum: int) -> None:
        """Timer thread: the grace period is over; interrupt the job in the main thread."""
        if self._running_job:
            self._grace_over = True
            ident = threading.main_thread().ident
            if ident is not None:
                signal.pthread_kill(ident, signum)

    def _install_signal_handlers(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

        def handler(signum: int, frame: FrameType | None) -> None:
            name = signal.Signals(signum).name
            if self._grace_over:
                self._grace_over = False
                if self._running_job:
                    logger.warning(
                        "worker %s: grace period of %gs is over: stopping the current job "
                        "and putting it back on its queue",
                        self.name,
                        self.grace_period,
                    )
                    raise _ShutdownNow
            elif not self._stop.is_set():
                grace = (
                    "" if self.grace_period is None else f" (grace period {self.grace_period:g}s)"
                )
                logger.info(
                    "worker %s got %s: finishing the current job%s, then exiting "
                    "(send it again to stop now)",
                    self.name,
                    name,
                    grace,
                )
                self._stop.set()
                # Started even between jobs: one may be starting right now. At the
                # end of the period, only a job still running is interrupted.
                if self.grace_period is not None:
                    self._grace_timer = threading.Timer(
                        self.grace_period, self._end_grace, args=(signum,)
                    )
                    self._grace_timer.daemon = True
                    self._grace_timer.start()
            elif self._running_job:
                logger.warning(
                    "worker %s got %s again: stopping the current job and "
                    "putting it back on its queue",
                    self.name,
                    name,
                )
                raise _ShutdownNow

        for sig in previous:
            signal.signal(sig, handler)
        self._alarm.install()

        def restore() -> None:
            self._alarm.uninstall()
            for sig, old in previous.items():
                signal.signal(sig, old)

        return restore


def _isolation(
    isolate: bool | Sequence[str], job_memory_limit: int | None
) -> tuple[bool, frozenset[str], int | None]:
    """Check the isolation options: (every job isolated, isolated queues, memory cap)."""
    if isinstance(isolate, str):
        isolate = [isolate]
    isolate_all = isolate is True
    isolated_queues: frozenset[str] = (
        frozenset()
        if isinstance(isolate, bool)
        else frozenset(validate_queue_name(q) for q in isolate)
    )
    if (isolate_all or isolated_queues) and not hasattr(os, "fork"):
        raise ConfigurationError("isolate needs os.fork, which this platform lacks")
    if job_memory_limit is not None and (
        not isinstance(job_memory_limit, int) or job_memory_limit <= 0
    ):
        raise ConfigurationError(
            f"job_memory_limit must be a positive number of bytes, not {job_memory_limit!r}"
        )
    if job_memory_limit is not None and not (isolate_all or isolated_queues):
        raise ConfigurationError(
            "job_memory_limit needs isolation (isolate=True or a list of queues): "
            "only a job's own child process can be capped"
        )
    return isolate_all, isolated_queues, job_memory_limit


def _failure(kind: str, message: str) -> _Outcome:
    return _Outcome(JobStatus.FAILED, error=JobError(kind, message, ""))


def _error_from_current(message: str) -> JobError:
    exc = sys.exc_info()[1]
    if exc is None:
        return JobError("UnknownError", message, "")
    return JobError.from_exception(exc, message)
