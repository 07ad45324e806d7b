"""The worker's heartbeat: renews the leases the worker holds and reaps expired ones.

It runs in a thread of its own, so a long job (even a CPU-bound one, which
still yields the GIL between bytecodes) keeps its lease, and leases left by
dead workers are reaped while this worker is busy.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from myrq.backends import Broker, Delivery
from myrq.exceptions import BrokerError

logger = logging.getLogger("myrq.worker")


class Heartbeat:
    """Every ``lease_ttl / 3`` seconds: renew the held jobs' leases, and reap."""

    def __init__(  # noqa: PLR0917 - one caller, the worker
        self,
        broker: Broker,
        worker_name: str,
        lease_ttl: float,
        max_attempts: int,
        failure_ttl: float | None,
        held: Callable[[], Sequence[Delivery]] = list,
    ) -> None:
        self.broker = broker
        self.worker_name = worker_name
        self.lease_ttl = lease_ttl
        self.max_attempts = max_attempts
        self.failure_ttl = failure_ttl
        self.held = held  # the deliveries whose leases the worker holds right now
        self._halt = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"myrq-heartbeat-{worker_name}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """End the thread. Call it only once the worker holds no job any more."""
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        interval = self.lease_ttl / 3
        # A stop request does not end this loop: the job being finished still
        # needs its lease. Only stop(), after the worker's loop returned, does.
        while not self._halt.wait(interval):
            # Asked at every beat, never remembered: a job the worker no longer
            # holds (ended, given back, or dropped after an error) is not renewed.
            for delivery in self.held():
                if delivery.token is not None:
                    self._renew(delivery.job_id, delivery.token)
            self.reap()

    def _renew(self, job_id: str, token: str) -> None:
        try:
            if not self.broker.renew(job_id, token, self.lease_ttl):
                logger.warning(
                    "worker %s: lease on job %s was lost; its outcome will be discarded",
                    self.worker_name,
                    job_id,
                )
        except BrokerError as exc:
            logger.warning(
                "worker %s: could not renew lease on job %s: %s", self.worker_name, job_id, exc
            )

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
