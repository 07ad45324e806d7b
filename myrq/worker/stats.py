"""What a worker has done, and the log line for each recorded outcome."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from myrq.status import JobStatus

logger = logging.getLogger("myrq.worker")


@dataclass
class WorkerStats:
    """What a worker has done since it started."""

    finished: int = 0
    failed: int = 0
    timed_out: int = 0
    retried: int = 0  # failed runs that will run again
    skipped: int = 0  # ids taken off a queue without a runnable record
    lost_leases: int = 0  # outcomes discarded because another worker took the job over

    @property
    def processed(self) -> int:
        return self.finished + self.failed + self.timed_out + self.retried

    def count(self, status: JobStatus) -> None:
        """Count one recorded outcome."""
        if status is JobStatus.FINISHED:
            self.finished += 1
        elif status is JobStatus.TIMEOUT:
            self.timed_out += 1
        else:
            self.failed += 1
