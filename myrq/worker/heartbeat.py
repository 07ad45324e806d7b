"""The worker's heartbeat: renews the leases the worker holds, keeps its
registration alive, and reaps leases that dead workers left behind.

It runs in a thread of its own, so a long job (even a CPU-bound one, which
still yields the GIL between bytecodes) keeps its lease, and leases left by
dead workers are reaped while this worker is busy. Every beat costs at most
three broker calls whatever the worker holds: one renewal of all its leases
(none when it holds none), one registration, one reap; and about once a
minute, the worker's upkeep (a few calls per queue: see ``Worker._maintain``).
A renewal also tells the worker which of its jobs someone asked to stop (see
:mod:`~myrq.worker.stopping`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from myrq.backends import Broker, Delivery
from myrq.exceptions import BrokerError

logger = logging.getLogger("myrq.worker")

#: Seconds between two runs of the worker's upkeep.
MAINTAIN_EVERY = 60.0


class Heartbeat:
    """Every ``lease_ttl / 3`` seconds: renew, register, reap."""

    def __init__(
        self,
        broker: Broker,
        worker_name: str,
        *,
        lease_ttl: float,
        max_attempts: int,
        failure_ttl: float | None,
        held: Callable[[], Sequence[Delivery]] = list,
        info: Callable[[], Mapping[str, bytes]] | None = None,
        on_stop: Callable[[str], None] | None = None,
        maintenance: Callable[[], None] | None = None,
    ) -> None:
        self.broker = broker
        self.worker_name = worker_name
        self.lease_ttl = lease_ttl
        self.max_attempts = max_attempts
        self.failure_ttl = failure_ttl
        self.held = held  # the deliveries whose leases the worker holds right now
        self.info = info  # the worker's record for the registry (None: not registered)
        self.on_stop = on_stop  # told the id of a held job someone asked to stop
        self.maintenance = maintenance  # run about once a minute
        self._last_maintenance = time.monotonic()
        self._halt = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"myrq-heartbeat-{worker_name}", daemon=True
        )

    def start(self) -> None:
        """Register and reap once now, then beat in the background."""
        self.register()
        self.reap()
        self._thread.start()

    def stop(self) -> None:
        """End the thread and unregister. Call it once the worker holds no job any more."""
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self.info is not None:
            try:
                self.broker.unregister_worker(self.worker_name)
            except BrokerError as exc:
                logger.warning("worker %s: could not unregister: %s", self.worker_name, exc)

    def _run(self) -> None:
        # At most a third of the lease between beats (Event.wait cannot take ten years).
        interval = min(self.lease_ttl / 3, threading.TIMEOUT_MAX)
        # A stop request does not end this loop: the job being finished still
        # needs its lease. Only stop(), after the worker's loop returned, does.
        while not self._halt.wait(interval):
            self.renew()
            self.register()
            self.reap()
            self.maintain()

    def renew(self) -> None:
        """Renew every lease the worker holds now, in one broker call."""
        # Asked at every beat, never remembered: a job the worker no longer
        # holds (ended, given back, or dropped after an error) is not renewed.
        held = [d for d in self.held() if d.token is not None]
        if not held:
            return
        try:
            renewed = self.broker.renew_many(
                [(d.job_id, d.token or "") for d in held], self.lease_ttl
            )
        except BrokerError as exc:
            logger.warning("worker %s: could not renew its leases: %s", self.worker_name, exc)
            return
        still_held = {id(d) for d in self.held()}
        for delivery, ok in zip(held, renewed, strict=True):
            if ok == 2 and self.on_stop is not None and id(delivery) in still_held:
                self.on_stop(delivery.job_id)
            # Not renewed because the worker finished it meanwhile is no loss.
            if not ok and id(delivery) in still_held:
                logger.warning(
                    "worker %s: lease on job %s was lost; its outcome will be discarded",
                    self.worker_name,
                    delivery.job_id,
                )

    def maintain(self) -> None:
        """About once a minute, the worker's upkeep (registries, schedules: see Worker)."""
        now = time.monotonic()
        if self.maintenance is None or now - self._last_maintenance < MAINTAIN_EVERY:
            return
        self._last_maintenance = now
        try:
            self.maintenance()
        except BrokerError as exc:
            logger.warning("worker %s: upkeep failed: %s", self.worker_name, exc)
        except Exception:
            logger.exception("worker %s: upkeep failed", self.worker_name)

    def register(self) -> None:
        """Record the worker as alive for one lease (see ``myrq workers``)."""
        if self.info is None:
            return
        try:
            self.broker.register_worker(self.worker_name, self.info(), self.lease_ttl)
        except BrokerError as exc:
            logger.warning("worker %s: could not register: %s", self.worker_name, exc)

    def reap(self) -> None:
        """Requeue (or fail, past max_attempts) jobs whose lease expired."""
        try:
            reaped = self.broker.reap(self.max_attempts, failure_ttl=self.failure_ttl)
        except BrokerError as exc:
            logger.warning(
                "worker %s: could not check for expired leases: %s", self.worker_name, exc
            )
            return
        for item in reaped:
            if item.outcome == "requeued":
                logger.warning(
                    "job %s: its worker stopped renewing the lease; requeued on %s (attempt %d)",
                    item.job_id,
                    item.queue,
                    item.attempts,
                )
            elif item.outcome == "failed":
                logger.error(
                    "job %s: abandoned %d times, marked failed", item.job_id, item.attempts
                )
            elif item.outcome == "blocked":
                logger.error(
                    "job %s: its lease expired but its queue key %r holds something else; "
                    "left as it is until the key is repaired",
                    item.job_id,
                    item.queue,
                )
