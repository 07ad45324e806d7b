"""What a worker has done, and the log line for each recorded outcome."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from myrq.backends import Delivery
from myrq.schema import F_STATUS
from myrq.status import JobStatus

logger = logging.getLogger("myrq.worker")


@dataclass
class WorkerStats:
    """What a worker has done since it started."""

    finished: int = 0
    failed: int = 0
    timed_out: int = 0
    stopped: int = 0
    retried: int = 0  # failed runs that will run again
    skipped: int = 0  # ids taken off a queue without a runnable record
    lost_leases: int = 0  # outcomes discarded because another worker took the job over

    @property
    def processed(self) -> int:
        return self.finished + self.failed + self.timed_out + self.stopped + self.retried

    def count(self, status: JobStatus) -> None:
        """Count one recorded outcome."""
        if status is JobStatus.FINISHED:
            self.finished += 1
        elif status is JobStatus.TIMEOUT:
            self.timed_out += 1
        elif status is JobStatus.STOPPED:
            self.stopped += 1
        else:
            self.failed += 1


def log_skip(delivery: Delivery) -> None:
    """Log an id taken off a queue that was not run (expired, no record, a duplicate)."""
    if delivery.note == "expired":
        logger.warning(
            "%s: job %s was not started within its ttl: canceled, not run",
            delivery.queue,
            delivery.job_id,
        )
    elif delivery.fields is None:
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
