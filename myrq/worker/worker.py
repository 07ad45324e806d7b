"""Worker: takes jobs from queues, runs them, records the outcome.

One job at a time, in the worker's own process by default, or in a forked
child per job with ``isolate``. While jobs are quick, a small batch is
claimed at once and their outcomes are written together. A heartbeat thread
renews the leases the worker holds and reaps leases that other, dead workers
left behind, so their jobs run again.

The parts, one module each: :mod:`~myrq.worker.settings` (checked options),
:mod:`~myrq.worker.runner` (a claimed record in, an outcome out),
:mod:`~myrq.worker.outbox` (claimed and unwritten jobs, the broker calls),
:mod:`~myrq.worker.shutdown` (signals, grace period),
:mod:`~myrq.worker.heartbeat`, :mod:`~myrq.worker.alarm` and
:mod:`~myrq.worker.isolation`. This module is the loop that ties them.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from myrq import config
from myrq.backends import Broker, Delivery
from myrq.context import reset_current, set_current
from myrq.durations import Duration, ttl_for_broker
from myrq.hooks import ExceptionHandler, Hooks
from myrq.queue import Queue
from myrq.registry import AllowList, FunctionRegistry, registry
from myrq.schema import F_CRON
from myrq.serializers import Serializer
from myrq.status import JobStatus
from myrq.worker import upkeep
from myrq.worker.after import AfterJob
from myrq.worker.alarm import JobAlarm
from myrq.worker.concurrent import ConcurrentLoop
from myrq.worker.guard import JobGuard
from myrq.worker.heartbeat import Heartbeat
from myrq.worker.outbox import Outbox
from myrq.worker.runner import Call, Runner, stopped
from myrq.worker.settings import WorkerSettings
from myrq.worker.shutdown import Shutdown, ShutdownNow
from myrq.worker.stats import WorkerStats, log_skip
from myrq.worker.stopping import StopRequests
from myrq.worker.upkeep import worker_record

logger = logging.getLogger("myrq.worker")

#: Jobs quicker than this (seconds) let the worker prefetch a batch and write
#: outcomes together; after a slower one it claims and writes one at a time.
QUICK = 0.005


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
        secret_key: require records signed with this key, or one of these keys
            (default: configured, ``MYRQ_SECRET_KEY``; ``b""``: do not check).
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
        hooks: :class:`~myrq.Hooks` called around every job (beside those
            installed with :func:`myrq.hooks.install`).
        exception_handlers: RQ-style ``handler(job, exc_type, exc_value, tb)``
            called for each failed or timed-out run until one returns False.
        concurrency: run up to this many jobs at once: ``async def`` jobs on an
            event loop, sync ones each in a thread (see :mod:`myrq.worker.concurrent`
            for how timeouts are enforced there). 1: one at a time in the main thread.
    """

    def __init__(
        self,
        queues: Sequence[str | Queue] | str = ("default",),
        broker: Broker | str | None = None,
        serializer: Serializer | str | None = None,
        *,
        name: str | None = None,
        lease_ttl: Duration = 15.0,
        max_attempts: int = 3,
        idle_wait: Duration = 1.0,
        default_timeout: Duration = config.DEFAULT_TIMEOUT,
        result_ttl: Duration = config.DEFAULT_RESULT_TTL,
        failure_ttl: Duration = config.DEFAULT_FAILURE_TTL,
        allow: Sequence[str] | str = (),
        registry: FunctionRegistry = registry,
        secret_key: str | bytes | Sequence[str | bytes] | None = None,
        max_payload_size: int | None = None,
        grace_period: Duration | None = 30.0,
        isolate: bool | Sequence[str] = False,
        job_memory_limit: int | None = None,
        prefetch: int = 16,
        hooks: Sequence[Hooks] = (),
        exception_handlers: Sequence[ExceptionHandler] = (),
        concurrency: int = 1,
    ) -> None:
        if isinstance(queues, str):
            queues = [queues]
        self.settings = WorkerSettings.build(
            [q.name if isinstance(q, Queue) else q for q in queues],
            name,
            lease_ttl,
            max_attempts,
            idle_wait,
            default_timeout,
            result_ttl,
            failure_ttl,
            secret_key,
            max_payload_size,
            grace_period,
            isolate,
            job_memory_limit,
            prefetch,
            concurrency,
        )
        self.name = self.settings.name
        self.queue_names = list(self.settings.queue_names)
        self.broker = config.get_broker(broker)
        self.serializer = config.get_serializer(serializer)
        allowed = AllowList(config.allowed_modules(), registry).modules
        self.allow = AllowList((*allowed, *AllowList(allow).modules), registry)
        self.stats = WorkerStats()
        self._stop = threading.Event()  # take no more jobs
        self._alarm = JobAlarm()
        guard = JobGuard(self._alarm)
        self._shutdown = Shutdown(self.name, self.settings.grace_period, self._stop, guard)
        self._runner = Runner(self.settings, self.serializer, self.allow, guard)
        self._stops = StopRequests(self._alarm, guard)
        self._after = AfterJob(
            self.broker, self.serializer, self.allow, guard, hooks, exception_handlers
        )
        self._durations: dict[str, float] = {}  # function name -> its last run, seconds
        self._concurrent: ConcurrentLoop | None = None
        self._started_at = 0.0

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
        start = self.stats.processed
        self._stop.clear()
        stop_at = None if max_jobs is None else start + max_jobs
        with self._session() as outbox:
            if self.settings.concurrency > 1:
                self._concurrent = ConcurrentLoop(self)
                try:
                    self._concurrent.run(outbox, burst, stop_at)
                finally:
                    self._concurrent = None
            else:
                self._loop(outbox, burst, stop_at)
        return self.stats.processed - start

    def process(self, delivery: Delivery) -> JobStatus | None:
        """Run one claimed delivery and record its outcome, outside :meth:`work`.

        For tests and custom loops. Returns the recorded status, or None when
        nothing was recorded (the id was unclaimed, or the lease was lost).
        """
        if not delivery.claimed:
            self._skip(delivery)
            return None
        outbox = Outbox(self.broker, self.settings, self.stats, threading.Event())
        outbox.on_written = self._after.written
        outbox.received([delivery])
        outbox.next()
        installed = self._alarm._installed
        try:
            self._process(delivery, outbox)
        finally:
            if not installed:  # the job armed the alarm: leave no SIGALRM handler behind
                self._alarm.uninstall()
        done = outbox.unwritten[0]
        outbox.flush()
        return done.outcome.status if done.written else None

    # -- the loop ------------------------------------------------------------

    def _loop(self, outbox: Outbox, burst: bool, stop_at: int | None) -> None:
        batch = 1  # jobs to claim at once: the prefetch size while jobs are quick
        while not self._stop.is_set():
            left = (
                None if stop_at is None else stop_at - self.stats.processed - len(outbox.unwritten)
            )
            if left is not None and left <= 0:
                return
            if not outbox.claimed:
                got = outbox.refill(min(batch, left or batch), block=not burst)
                if not got:
                    if got is False and burst:
                        return  # the queues are empty
                    continue
            delivery = outbox.next()
            if not delivery.claimed:
                outbox.drop()
                self._skip(delivery)
                continue
            try:
                elapsed = self._process(delivery, outbox)
            except ShutdownNow:
                return
            except Exception:
                # Our own bug. Never die on it: stop renewing the job's lease, so it
                # expires and the job runs again.
                outbox.drop()
                logger.exception(
                    "worker %s: error while handling job %s", self.name, delivery.job_id
                )
                continue
            # Prefetch only while jobs are quick: a slow job would hold the rest
            # of a batch back from other workers.
            quick = elapsed < QUICK
            batch = self.settings.prefetch if quick and self.broker.batch_claims else 1
            if outbox.claimed and (
                len(outbox.unwritten) >= batch or not quick or self._stop.is_set()
            ):
                outbox.flush()

    def _process(self, delivery: Delivery, outbox: Outbox) -> float:
        """Run the outbox's running job and hold its outcome there; return its run time."""
        if F_CRON in (delivery.fields or {}):
            self._schedule_next(delivery)
        self._shutdown.ensure_installed()
        prepared = self._runner.prepare(delivery)
        if isinstance(prepared, Call) and self._stops.take(delivery.job_id):
            prepared = stopped(prepared.func_name, 0.0)  # asked to stop before it started
        if isinstance(prepared, Call):
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "%s: %s (%s) started", delivery.queue, prepared.func_name, delivery.job_id
                )
            if outbox.unwritten and not self._known_quick(prepared.func_name):
                # Outcomes of quick jobs are written together, but a job that may
                # be slow must not keep them unwritten (their callers waiting).
                outbox.flush()
            self._after.before(delivery)
            stops = self._stops
            stops.start(delivery.job_id)
            current = set_current(functools.partial(self._after.job_of, delivery))
            try:
                outcome = self._runner.run(prepared)
            except ShutdownNow:
                outbox.drop()
                outbox.give_back(delivery)
                raise
            finally:
                reset_current(current)
                stops.end(delivery.job_id)
            self._remember(outcome.func_name, outcome.elapsed)
        else:
            outcome = prepared
        after = self._after
        done = outbox.add(delivery, after.failed(delivery, outcome))
        after.ran(delivery, outcome, done)
        return outcome.elapsed

    def _schedule_next(self, delivery: Delivery) -> None:
        """A periodic schedule's job: schedule the next one first, so a crash cannot end it."""
        upkeep.schedule_next_run(self, delivery)

    def _stop_requested(self, job_id: str) -> None:
        """From the heartbeat: someone asked to stop ``job_id``, which this worker holds."""
        self._stops.request(job_id)
        concurrent = self._concurrent
        if concurrent is not None:
            concurrent.stop_job(job_id)

    def _maintain(self) -> None:
        upkeep.maintain(self)

    def _known_quick(self, func_name: str) -> bool:
        return self._durations.get(func_name, QUICK) < QUICK

    def _remember(self, func_name: str, elapsed: float) -> None:
        if len(self._durations) < 10_000 or func_name in self._durations:  # bounded
            self._durations[func_name] = elapsed

    def _skip(self, delivery: Delivery) -> None:
        self.stats.skipped += 1
        log_skip(delivery)

    # -- start and stop -----------------------------------------------------

    @contextmanager
    def _session(self) -> Iterator[Outbox]:
        """Signals, the job alarm and the heartbeat for one run of :meth:`work`."""
        settings = self.settings
        self._started_at = time.time()
        outbox = Outbox(self.broker, settings, self.stats, self._stop)
        outbox.on_written = self._after.written
        self._after.refresh()
        heartbeat = Heartbeat(
            self.broker,
            self.name,
            lease_ttl=settings.lease_ttl,
            max_attempts=settings.max_attempts,
            failure_ttl=ttl_for_broker(settings.failure_ttl),
            held=outbox.held,
            info=lambda: worker_record(self, outbox),
            on_stop=self._stop_requested,
            maintenance=self._maintain,
        )
        restore_signals = self._shutdown.install()
        in_main = threading.current_thread() is threading.main_thread()
        if in_main:
            self._alarm.install()
        logger.info(
            "worker %s started on queues %s (%s)", self.name, self.queue_names, self.broker.url
        )
        for warning in self.broker.startup_warnings():
            logger.warning("%s", warning)
        if not in_main:
            logger.warning(
                "worker %s runs outside the main thread: job timeouts cannot be "
                "enforced there (SIGALRM reaches only the main thread)",
                self.name,
            )
        heartbeat.start()
        self._after.around_worker("worker_started", self)
        try:
            yield outbox
        finally:
            try:
                outbox.close()
                self._after.around_worker("worker_stopped", self)
            finally:
                self._stop.set()
                self._shutdown.close()
                heartbeat.stop()
                self._alarm.uninstall()
                restore_signals()
                s = self.stats
                logger.info(
                    "worker %s stopped: %d finished, %d failed, %d timed out, %d stopped, "
                    "%d skipped",
                    self.name, s.finished, s.failed, s.timed_out, s.stopped, s.skipped,
                )  # fmt: skip
