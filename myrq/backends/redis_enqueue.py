"""Reading enqueue.lua's replies: one per job, tallied into what a caller is told.

Shared by :class:`~myrq.backends.redis.RedisBroker` (one call per chunk of 500
jobs) and the sharded layout (one call per shard and chunk), so that every
layout refuses, reports and raises alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from myrq.backends import arguments
from myrq.backends.redis_client import as_str
from myrq.backends.values import EnqueueRequest
from myrq.exceptions import BrokerError, BrokerFullError, InvalidJobError


def check_requests(requests: Sequence[EnqueueRequest]) -> None:
    """Check every request's id, fields and dependencies before anything is sent."""
    for r in requests:
        arguments.job_id(r.job_id)
        arguments.fields(r.fields)
        for parent in r.depends_on:
            arguments.job_id(parent)


class EnqueueTally:
    """What became of each job of one ``enqueue_many`` call, as replies come in."""

    def __init__(self, url: str, total: int) -> None:
        self.url = url
        self.total = total
        self.stored: list[str] = []
        self.refused: list[str] = []
        self.missing: list[tuple[str, str]] = []  # (job id, the parent that does not exist)
        self.broken: list[str] = []

    def add(self, requests: Sequence[EnqueueRequest], results: Sequence[Any]) -> None:
        """Count enqueue.lua's reply for each of ``requests``: 1 stored, 0 refused, or an error."""
        for req, done in zip(requests, results, strict=True):
            if done == 1:
                self.stored.append(req.job_id)
            elif done == 0:
                self.refused.append(req.job_id)
            else:
                text = as_str(done)
                if text.startswith("NOPARENT "):
                    self.missing.append((req.job_id, text[9:]))
                else:
                    self.broken.append(f"{req.job_id!r} ({text})")

    def partly_full(self, exc: BrokerFullError, *, sent: int) -> BrokerFullError:
        """The error for a Redis that filled up after ``sent`` jobs of the call were sent."""
        return BrokerFullError(
            f"{exc} This batch was sent in parts: the first {sent} job(s) were sent "
            f"and {len(self.stored)} stored (exc.stored_ids), the other "
            f"{self.total - sent} were not",
            self.stored,
        )

    def finish(self) -> list[str]:
        """The refused ids; raises for jobs that were not stored for another reason.

        Raises:
            InvalidJobError: a job depends on a job that does not exist.
            BrokerError: a job's keys hold something else.
        """
        if self.missing:
            raise InvalidJobError(arguments.missing_parents(self.missing, self.total))
        if self.broken:
            kept = self.total - len(self.broken) - len(self.refused)
            raise BrokerError(
                f"Redis at {self.url} could not store job(s) {', '.join(self.broken[:5])}: "
                f"their keys hold something else; {kept} other job(s) were stored"
            )
        return self.refused
