"""Whether a failed run is tried again, and what the record keeps of it.

The policy is the job's own (record field ``retry``, see :class:`myrq.retry.Retry`);
this module applies it to one failed run. A retried job keeps its id: the
broker writes these fields, ends the lease and schedules the next try in one
fenced step (``FinishRequest.retry_delay``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from myrq.codec import ErrorInfo
from myrq.exceptions import InvalidJobError
from myrq.retry import DEFAULT_RETRY_LATER_MAX, Retry
from myrq.schema import F_ERRORS, F_RETRY, F_TRIES, format_time, parse_count
from myrq.status import JobStatus

logger = logging.getLogger("myrq.worker")

#: Failed tries whose errors a record keeps (the oldest go first).
KEPT_ERRORS = 20
#: Characters of each kept traceback (the last ones: where it was raised).
KEPT_TRACEBACK = 4000


@dataclass(frozen=True)
class RetryPlan:
    """Run again after ``delay`` seconds; ``fields`` record this try."""

    delay: float
    fields: dict[str, bytes]


def plan_retry(
    record: Mapping[str, bytes], status: JobStatus, error: ErrorInfo
) -> tuple[RetryPlan | None, dict[str, bytes]]:
    """Decide for one failed run: (the retry, or None if the job ends; fields to write either way).

    The fields count the try (``tries``) and keep its error (``errors``), so
    that a job that ends after retries still tells what each try raised.
    """
    if status is JobStatus.STOPPED:
        return None, {}  # someone stopped it: not a failed try of the job's own
    tries = parse_count(record.get(F_TRIES)) + 1
    fields = {F_TRIES: str(tries).encode(), F_ERRORS: _errors(record.get(F_ERRORS), error)}
    if error.final or status not in (JobStatus.FAILED, JobStatus.TIMEOUT):
        return None, fields
    policy = _policy(record.get(F_RETRY))
    if error.retry_in is not None:  # RetryLater: the job asked for it
        limit = policy.max if policy is not None else DEFAULT_RETRY_LATER_MAX
        delay: float | None = error.retry_in if tries <= limit else None
    elif policy is not None and tries <= policy.max and policy.retries(error.types):
        delay = policy.wait(tries)
    else:
        delay = None
    if delay is None:
        return None, fields
    status_now = JobStatus.SCHEDULED if delay > 0 else JobStatus.PENDING
    return RetryPlan(delay, {**fields, "status": status_now.value.encode()}), fields


def _policy(raw: bytes | None) -> Retry | None:
    if raw is None:
        return None
    try:
        return Retry.from_bytes(raw)
    except InvalidJobError as exc:
        logger.warning("a job's retry policy cannot be read, so it is not retried: %s", exc)
        return None


def _errors(raw: bytes | None, error: ErrorInfo) -> bytes:
    try:
        kept = json.loads(raw) if raw else []
        if not isinstance(kept, list):
            kept = []
    except (ValueError, RecursionError):
        kept = []
    kept.append(
        {
            "type": error.type,
            "message": error.message,
            "traceback": error.traceback[-KEPT_TRACEBACK:],
            "at": float(format_time(time.time())),
        }
    )
    return json.dumps(kept[-KEPT_ERRORS:], ensure_ascii=True).encode("ascii")
