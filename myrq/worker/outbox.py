"""The worker's side of the broker: jobs claimed ahead, outcomes not yet written.

A busy worker claims a small batch while jobs are quick and writes their
outcomes together, in the same round trip as its next claim
(``Broker.finish_many_and_dequeue``). The :class:`Outbox` holds both lists,
tells the heartbeat which leases they need, retries broker calls through short
outages, and gives unstarted jobs back on shutdown.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from myrq.backends import Broker, Delivery, FinishRequest
from myrq.durations import ttl_for_broker
from myrq.exceptions import BrokerConnectionError, BrokerError
from myrq.schema import (
    F_ENDED_AT,
    F_ERROR,
    F_FAILURE_TTL,
    F_LEASE,
    F_RESULT,
    F_RESULT_TTL,
    F_STARTED_AT,
    F_STATUS,
    format_time,
    parse_number,
)
from myrq.status import JobStatus
from myrq.worker.retrying import plan_retry
from myrq.worker.runner import Outcome
from myrq.worker.settings import WorkerSettings
from myrq.worker.stats import WorkerStats

logger = logging.getLogger("myrq.worker")
_T = TypeVar("_T")

#: Consecutive broker failures after which a burst worker gives up (about 3 s of backoff).
BURST_RETRIES = 5


@dataclass
class Done:
    """A job that ran, with the fields to write; ``written`` once recorded."""

    delivery: Delivery
    outcome: Outcome
    fields: dict[str, bytes]
    ttl: float | None
    written: bool = False
    #: Not None: the job runs again after this many seconds (a retry).
    retry_delay: float | None = None


class Outbox:
    """Claimed jobs not yet started, and outcomes not yet written, for one worker."""

    def __init__(
        self,
        broker: Broker,
        settings: WorkerSettings,
        stats: WorkerStats,
        stop: threading.Event,
    ) -> None:
        self.broker = broker
        self.settings = settings
        self.stats = stats
        self.stop = stop  # set: take no more jobs
        self.claimed: deque[Delivery] = deque()
        # job id -> time.monotonic() when its claim came back, to reckon ended_at
        # on the broker's clock (started_at + time since), never the worker's.
        self._received: dict[str, float] = {}
        self.running: Delivery | None = None  # taken out of claimed, outcome not yet held
        #: Jobs running at once in a concurrent worker, by id (see myrq.worker.concurrent).
        self.in_flight: dict[str, Delivery] = {}
        self.unwritten: list[Done] = []
        self._failures = 0  # consecutive broker failures while claiming
        self._backoff = 0.0
        # One id per claim, kept until the claim's reply arrives: a retry after a
        # lost reply then gets the same jobs back, not a second batch.
        self._claim_id: str | None = None
        #: Told the outcomes each flush wrote (the worker runs their callbacks).
        self.on_written: Callable[[list[Done]], None] | None = None

    # -- claiming ------------------------------------------------------------

    def refill(self, count: int, *, block: bool) -> bool | None:
        """Claim up to ``count`` jobs, writing held outcomes in the same step.

        Returns True if jobs were claimed, False if none are queued (after
        waiting up to ``idle_wait`` when ``block``), None if the broker failed
        (after backing off). A non-blocking (burst) worker gives up after
        about 3 s of failures and raises the BrokerError.
        """
        if self.unwritten:
            self.received(self.flush(claim=count))
            if self.claimed or not block:
                return bool(self.claimed)
        self._claim_id = self._claim_id or secrets.token_hex(8)
        try:
            got = self.broker.dequeue(
                self.settings.queue_names,
                self.settings.name,
                self.settings.lease_ttl,
                timeout=self.settings.idle_wait if block else 0,
                count=count,
                claim_id=self._claim_id,
            )
        except BrokerError as exc:
            # Unreachable, or refusing (e.g. a queue key of the wrong type): back
            # off and try again; never die of it.
            self._failures += 1
            if not block and self._failures > BURST_RETRIES:
                raise
            self._backoff = min(max(self._backoff * 2, 0.1), 5.0)
            logger.warning(
                "worker %s: could not take a job (%s); retrying in %.1fs",
                self.settings.name,
                exc,
                self._backoff,
            )
            self.stop.wait(self._backoff)
            return None
        self._failures = 0
        self._backoff = 0.0
        self._claim_id = None
        self.received(got)
        return bool(got)

    def received(self, deliveries: list[Delivery]) -> None:
        """Hold newly claimed jobs, noting when they came."""
        now = time.monotonic()
        for delivery in deliveries:
            self._received[delivery.job_id] = now
        self.claimed.extend(deliveries)

    def next(self) -> Delivery:
        """The next claimed job; its lease stays held until :meth:`add` or :meth:`drop`."""
        delivery = self.running = self.claimed.popleft()
        return delivery

    def drop(self) -> None:
        """Stop holding the running job's lease (skipped, given back, or abandoned)."""
        if self.running is not None:
            self._received.pop(self.running.job_id, None)
        self.running = None

    def held(self) -> list[Delivery]:
        """Every delivery whose lease this worker holds now (called by the heartbeat thread)."""
        # list() of a deque or a list is one step under the GIL: safe against
        # the main thread changing them meanwhile.
        claimed, unwritten, running = list(self.claimed), list(self.unwritten), self.running
        flying = list(self.in_flight.values())
        return [
            *claimed,
            *(d.delivery for d in unwritten),
            *([running] if running else []),
            *flying,
        ]

    # -- writing -------------------------------------------------------------

    def add(self, delivery: Delivery, outcome: Outcome) -> Done:
        """Hold a job's outcome until the next flush; its lease stays renewed meanwhile."""
        fields = {F_STATUS: outcome.status.value.encode(), F_ENDED_AT: self._ended_at(delivery)}
        if outcome.result is not None:
            fields[F_RESULT] = outcome.result
        record = (delivery.fields or {}) if outcome.trusted else {}
        if outcome.error is not None:
            fields[F_ERROR] = outcome.error.to_bytes()
            plan, counted = plan_retry(record, outcome.status, outcome.error)
            if plan is not None:  # runs again: nothing ends, the record keeps no expiry
                fields = {F_STATUS: fields[F_STATUS], F_ERROR: fields[F_ERROR], **plan.fields}
                done = Done(delivery, outcome, fields, None, retry_delay=plan.delay)
                self.unwritten.append(done)
                self.running = None
                return done
            fields.update(counted)
        if outcome.status is JobStatus.FINISHED:
            setting, default = parse_number(record.get(F_RESULT_TTL)), self.settings.result_ttl
        else:
            setting, default = parse_number(record.get(F_FAILURE_TTL)), self.settings.failure_ttl
        done = Done(
            delivery, outcome, fields, ttl_for_broker(default if setting is None else setting)
        )
        self.unwritten.append(done)
        self.running = None
        return done

    def flush(self, claim: int = 0) -> list[Delivery]:
        """Write every held outcome, claiming ``claim`` jobs in the same step.

        Outcomes are written first and the claim comes after, in one round trip
        where the broker allows. A broker failure is retried for up to half a
        lease; past that the outcomes are dropped and their jobs run again when
        their leases expire (at-least-once).
        """
        items, self.unwritten = self.unwritten, []
        finishes = [
            FinishRequest(
                d.delivery.job_id,
                d.delivery.token or "",
                d.fields,
                d.ttl,
                queue=d.delivery.queue,
                retry_delay=d.retry_delay,
            )
            for d in items
        ]
        claim_id = secrets.token_hex(8)  # the same for every retry of this step
        try:
            written, following = self._retry(
                lambda: self.broker.finish_many_and_dequeue(
                    finishes,
                    queues=self.settings.queue_names,
                    worker=self.settings.name,
                    lease=self.settings.lease_ttl,
                    count=0 if self.stop.is_set() else claim,
                    claim_id=claim_id,
                )
            )
        except BrokerError:
            logger.exception(
                "worker %s could not record %d outcome(s); their jobs will run again "
                "when their leases expire",
                self.settings.name,
                len(items),
            )
            return []
        for item, ok in zip(items, written, strict=True):
            # Not written may still be ours: a retry after a lost reply is fenced
            # out by our own first write.
            item.written = ok or self._already_written(item)
            self._account(item)
        if self.on_written is not None:
            self.on_written(items)
        return following

    def _ended_at(self, delivery: Delivery) -> bytes:
        """Now on the broker's clock: started_at (set by the claim) plus the time since."""
        started = parse_number((delivery.fields or {}).get(F_STARTED_AT))
        received = self._received.pop(delivery.job_id, None)
        if started is None or received is None:
            return format_time(time.time())
        return format_time(started + time.monotonic() - received)

    # -- giving back -----------------------------------------------------------

    def give_back(self, delivery: Delivery) -> None:
        """Put a claimed job back at the front of its queue, uncounted."""
        try:
            if self.broker.release(delivery.job_id, delivery.token or ""):
                logger.info(
                    "worker %s: job %s interrupted by shutdown, put back on %s",
                    self.settings.name,
                    delivery.job_id,
                    delivery.queue,
                )
        except BrokerError:
            logger.exception(
                "worker %s could not put job %s back; its lease will expire and it will run again",
                self.settings.name,
                delivery.job_id,
            )

    def close(self) -> None:
        """Write what is held, then give back unstarted jobs (last first, keeping their order)."""
        try:
            if self.unwritten:
                self.flush()
        finally:
            for delivery in reversed(self.claimed):
                if delivery.claimed:
                    self.give_back(delivery)
            self.claimed.clear()
            self._received.clear()
            self.running = None

    # -- internals -------------------------------------------------------------

    def _retry(self, step: Callable[[], _T]) -> _T:
        """Run a broker step, retrying through connection errors for up to half a lease."""
        deadline = time.monotonic() + self.settings.lease_ttl / 2
        delay = 0.05
        while True:
            try:
                return step()
            except BrokerConnectionError:
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _already_written(self, item: Done) -> bool:
        """True if the record holds the outcome we sent: its status, under our lease token.

        A finish keeps the lease field, so a write of ours whose reply was lost
        (and which a retry then found fenced) is told from another worker's.
        """
        if item.ttl == 0:
            return False  # a deleted record cannot tell us; report the lost lease
        try:
            current = self.broker.get(item.delivery.job_id)
        except BrokerError:
            return False
        token = (item.delivery.token or "").encode()
        return (
            current is not None
            and current.get(F_STATUS) == item.fields[F_STATUS]
            and current.get(F_LEASE) == token
        )

    def _account(self, item: Done) -> None:
        delivery, outcome = item.delivery, item.outcome
        if not item.written:
            self.stats.lost_leases += 1
            logger.warning(
                "worker %s lost its lease on job %s (it expired and was taken over, or the "
                "job was deleted); its outcome %s was not written",
                self.settings.name,
                delivery.job_id,
                outcome.status.value,
            )
            return
        if item.retry_delay is not None:
            self.stats.retried += 1
            tries = item.fields.get("tries", b"?").decode()
            logger.info(
                "%s: %s (%s) %s in %.3fs (try %s): %s; runs again in %s",
                delivery.queue,
                outcome.func_name,
                delivery.job_id,
                outcome.status.value,
                outcome.elapsed,
                tries,
                outcome.error,
                f"{item.retry_delay:g}s" if item.retry_delay else "a moment",
            )
            return
        self.stats.count(outcome.status)
        if outcome.status is JobStatus.FINISHED:
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "%s: %s (%s) finished in %.3fs",
                    delivery.queue, outcome.func_name, delivery.job_id, outcome.elapsed,
                )  # fmt: skip
            return
        logger.info(
            "%s: %s (%s) %s in %.3fs: %s",
            delivery.queue,
            outcome.func_name,
            delivery.job_id,
            outcome.status.value,
            outcome.elapsed,
            outcome.error,
        )
