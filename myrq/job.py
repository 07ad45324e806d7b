"""Job: one function call, stored as a record of byte fields in a broker."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from myrq import config
from myrq.backends import Broker
from myrq.backends.values import EnqueueRequest
from myrq.codec import ErrorInfo, decode_payload, encode_payload
from myrq.defaults import DEFAULT_FAILURE_TTL
from myrq.durations import parse_duration, ttl_for_broker
from myrq.exceptions import (
    DeserializationError,
    InvalidJobError,
    JobFailedError,
    NoSuchJobError,
    PayloadTooLargeError,
    WaitTimeout,
)
from myrq.ids import validate_job_id
from myrq.retry import Retry
from myrq.schema import (
    CANCELED_ERROR,
    F_ATTEMPTS,
    F_CREATED_AT,
    F_DESCRIPTION,
    F_ENDED_AT,
    F_ERROR,
    F_ERRORS,
    F_FAILURE_TTL,
    F_LEASE,
    F_PAYLOAD,
    F_QUEUE,
    F_RESULT,
    F_RESULT_TTL,
    F_RETRY,
    F_SIGNATURE,
    F_STARTED_AT,
    F_STATUS,
    F_TIMEOUT,
    F_TRIES,
    F_WORKER,
    S_FINISHED,
    S_PENDING,
    format_number,
    format_timeout,
    parse_number,
)
from myrq.serializers import Serializer
from myrq.signing import sign
from myrq.status import JobStatus

#: Longest job timeout accepted at enqueue time (one year), in seconds.
MAX_TIMEOUT = 366 * 24 * 3600


def _when(raw: bytes | None) -> datetime | None:
    value = parse_number(raw)
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, ValueError, OSError):  # out of datetime's range
        return None


class Job:
    """A stored function call and its outcome.

    Made by :meth:`Queue.enqueue` or loaded with :meth:`Job.fetch`. Its
    attributes reflect the record as last read; call :meth:`refresh` (or
    ``get_status()``, which refreshes by default) to see a worker's progress.
    """

    def __init__(
        self,
        job_id: str,
        fields: Mapping[str, bytes],
        *,
        broker: Broker,
        serializer: Serializer,
    ) -> None:
        self.id = job_id
        self.broker = broker
        self.serializer = serializer
        self._fields: dict[str, bytes] = dict(fields)
        self._payload: tuple[str, list[Any], dict[str, Any]] | None = None
        #: What :meth:`myrq.Queue.prepare` will hand the broker (None once fetched).
        self.request: EnqueueRequest | None = None

    # -- construction ------------------------------------------------------

    @classmethod
    def create(
        cls,
        func_name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        *,
        queue: str,
        broker: Broker,
        serializer: Serializer,
        job_id: str,
        timeout: float,
        result_ttl: float | None = None,
        failure_ttl: float | None = None,
        description: str | None = None,
        retry: Retry | None = None,
        max_payload_size: int = 0,
        secret_key: bytes | None = None,
    ) -> Job:
        """Build an unsaved job (encoding its payload now, so bad arguments fail here).

        Raises:
            InvalidJobError: a bad option; PayloadTooLargeError (a subclass)
                when the encoded payload exceeds ``max_payload_size`` (0: no cap).
            SerializationError: the arguments cannot be encoded.
        """
        validate_job_id(job_id)
        if (
            not isinstance(timeout, int | float)
            or isinstance(timeout, bool)
            or not 0 < timeout <= MAX_TIMEOUT
        ):
            raise InvalidJobError(
                f"timeout must be a positive number of seconds up to {MAX_TIMEOUT:g} "
                f"(one year), not {timeout!r}"
            )
        if description is not None and not isinstance(description, str):
            raise InvalidJobError(f"description must be a str, not {type(description).__name__}")
        bad_keys = [k for k in kwargs if not isinstance(k, str)]
        if bad_keys:
            raise InvalidJobError(
                f"keyword argument names must be strings, not {bad_keys[0]!r} "
                f"({type(bad_keys[0]).__name__})"
            )
        for label, ttl in (("result_ttl", result_ttl), ("failure_ttl", failure_ttl)):
            if ttl is not None and (
                not isinstance(ttl, int | float)
                or isinstance(ttl, bool)
                or not ttl >= -1
                or (ttl < 0 and ttl != -1)
            ):
                raise InvalidJobError(
                    f"{label} must be seconds >= 0, -1 (keep forever) or 0 (do not keep), "
                    f"not {ttl!r}"
                )
        payload = encode_payload(serializer, func_name, args, kwargs)
        if max_payload_size and len(payload) > max_payload_size:
            raise PayloadTooLargeError(
                f"job {job_id!r} ({func_name}) encodes to {len(payload):,} bytes, above the "
                f"limit of {max_payload_size:,}; pass large data by reference (a path, a URL, "
                "a database key) or raise max_payload_size (MYRQ_MAX_PAYLOAD_SIZE, 0: no cap)"
            )
        fields: dict[str, bytes] = {
            F_PAYLOAD: payload,
            F_STATUS: S_PENDING,
            F_TIMEOUT: format_timeout(timeout),
            F_CREATED_AT: format_number(time.time()),
            F_QUEUE: queue.encode(),
        }
        if result_ttl is not None:
            fields[F_RESULT_TTL] = format_number(result_ttl)
        if failure_ttl is not None:
            fields[F_FAILURE_TTL] = format_number(failure_ttl)
        if retry is not None:
            fields[F_RETRY] = retry.to_bytes()
        if description is not None:
            fields[F_DESCRIPTION] = description.encode("utf-8")
        if secret_key:
            fields[F_SIGNATURE] = sign(secret_key, job_id, fields)
        job = cls(job_id, fields, broker=broker, serializer=serializer)
        job._payload = (func_name, list(args), dict(kwargs))
        return job

    @classmethod
    def fetch(
        cls,
        job_id: str,
        broker: Broker | str | None = None,
        serializer: Serializer | str | None = None,
    ) -> Job:
        """Load the job stored under ``job_id``.

        Raises:
            NoSuchJobError: nothing is stored under that id (never enqueued,
                or its result TTL has passed).
        """
        b = config.get_broker(broker)
        fields = b.get(job_id)
        if fields is None:
            raise NoSuchJobError(
                f"no job {job_id!r} in {b.url or b!r}: it was never enqueued there, or it "
                "finished and its record expired (see result_ttl/failure_ttl)"
            )
        return cls(job_id, fields, broker=b, serializer=config.get_serializer(serializer))

    def refresh(self) -> None:
        """Re-read the record from the broker.

        Raises:
            NoSuchJobError: the record is gone (deleted or expired).
        """
        fields = self.broker.get(self.id)
        if fields is None:
            raise NoSuchJobError(f"job {self.id!r} no longer exists (deleted or expired)")
        self._fields = fields
        self._payload = None

    def delete(self) -> bool:
        """Delete the record and take the id off its queue. True if it existed."""
        return self.broker.delete(self.id)

    def cancel(self) -> bool:
        """Cancel the job if it has not started (pending or scheduled); True if it was.

        It ends ``canceled`` and is kept as failed jobs are (its ``failure_ttl``).
        A running or ended job is left alone (False).
        """
        ttl = ttl_for_broker(
            self.failure_ttl if self.failure_ttl is not None else DEFAULT_FAILURE_TTL
        )
        return self.broker.cancel(self.id, ttl, CANCELED_ERROR) is not None

    def run_now(self) -> bool:
        """Move a scheduled job (a later start, or a retry's wait) onto its queue now."""
        return self.broker.run_now(self.id)

    def wait(self, timeout: float | str | timedelta | None = None, *, refresh: bool = True) -> Any:
        """Block until the job ends and return its result.

        Waits without polling (the broker tells waiters when a job ends) for at
        most ``timeout`` (a duration; None: as long as it takes). While the job
        waits for a retry it has not ended.

        Raises:
            JobFailedError: it ended ``failed``, ``timeout`` or ``canceled``;
                ``exc.job`` and ``exc.error`` tell how.
            WaitTimeout: it did not end in time (a TimeoutError).
            NoSuchJobError: its record is gone (deleted, or not kept: result_ttl=0).
        """
        limit = None if timeout is None else parse_duration(timeout, "timeout")
        deadline = None if limit is None else time.monotonic() + limit
        while True:
            remaining = 3600.0 if deadline is None else deadline - time.monotonic()
            ended = self.broker.wait_for_end(self.id, max(remaining, 0.0))
            if ended:
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(f"job {self.id!r} did not end within {limit:g}s")
        self.refresh()
        if self.status is JobStatus.FINISHED:
            return self.result
        raise JobFailedError(self, self.error)

    # -- state -------------------------------------------------------------

    def get_status(self, refresh: bool = True) -> JobStatus:
        """The job's status, re-read from the broker unless ``refresh=False``."""
        if refresh:
            self.refresh()
        return self.status

    @property
    def status(self) -> JobStatus:
        raw = self._fields.get(F_STATUS, b"pending").decode("utf-8", "replace")
        try:
            return JobStatus(raw)
        except ValueError:
            raise DeserializationError(
                f"job {self.id!r} has status {raw!r}, which this version of myrq does not know"
            ) from None

    @property
    def fields(self) -> dict[str, bytes]:
        """A copy of the raw record as last read."""
        return dict(self._fields)

    @property
    def result(self) -> Any:
        """The function's return value once ``finished``; ``None`` before."""
        raw = self._fields.get(F_RESULT)
        if raw is None or self._fields.get(F_STATUS) != S_FINISHED:
            return None
        return self.serializer.loads(raw)

    @property
    def error(self) -> ErrorInfo | None:
        """Why the job failed or timed out (type, message, traceback); else None."""
        raw = self._fields.get(F_ERROR)
        return None if raw is None else ErrorInfo.from_bytes(raw)

    def _decoded(self) -> tuple[str, list[Any], dict[str, Any]]:
        if self._payload is None:
            self._payload = decode_payload(self.serializer, self._fields.get(F_PAYLOAD, b""))
        return self._payload

    @property
    def func_name(self) -> str:
        return self._decoded()[0]

    @property
    def args(self) -> list[Any]:
        return self._decoded()[1]

    @property
    def kwargs(self) -> dict[str, Any]:
        return self._decoded()[2]

    @property
    def origin(self) -> str:
        """The queue the job was enqueued on."""
        return self._fields.get(F_QUEUE, b"default").decode("utf-8", "replace")

    @property
    def timeout(self) -> float | None:
        return parse_number(self._fields.get(F_TIMEOUT))

    @property
    def result_ttl(self) -> int | None:
        """Seconds its record is kept once finished; None: the worker's default (1 hour)."""
        value = parse_number(self._fields.get(F_RESULT_TTL))
        return None if value is None else int(value)

    @property
    def failure_ttl(self) -> int | None:
        """Seconds its record is kept once failed; None: the worker's default (7 days)."""
        value = parse_number(self._fields.get(F_FAILURE_TTL))
        return None if value is None else int(value)

    @property
    def description(self) -> str | None:
        raw = self._fields.get(F_DESCRIPTION)
        return None if raw is None else raw.decode("utf-8", "replace")

    @property
    def attempts(self) -> int:
        value = parse_number(self._fields.get(F_ATTEMPTS))
        return 0 if value is None else int(value)

    @property
    def worker_name(self) -> str | None:
        raw = self._fields.get(F_WORKER)
        return None if raw is None else raw.decode("utf-8", "replace")

    @property
    def created_at(self) -> datetime | None:
        return _when(self._fields.get(F_CREATED_AT))

    @property
    def started_at(self) -> datetime | None:
        return _when(self._fields.get(F_STARTED_AT))

    @property
    def ended_at(self) -> datetime | None:
        return _when(self._fields.get(F_ENDED_AT))

    def lease_expires_at(self) -> datetime | None:
        """When the running job's lease runs out (read from the broker now); None if it holds none.

        A worker renews the lease every third of it while the job runs; a lease
        in the past means its worker stopped renewing, and the job will run
        again once a worker reaps it.
        """
        deadline = self.broker.lease_deadline(self.id)
        return None if deadline is None else datetime.fromtimestamp(deadline, UTC)

    @property
    def lease_token(self) -> str | None:
        raw = self._fields.get(F_LEASE)
        return None if raw is None else raw.decode("utf-8", "replace")

    @property
    def tries(self) -> int:
        """Failed runs so far (the function raised or timed out); see :class:`myrq.Retry`."""
        value = parse_number(self._fields.get(F_TRIES))
        return 0 if value is None else int(value)

    @property
    def errors(self) -> list[ErrorInfo]:
        """The error of each failed run, oldest first (the last 20 are kept)."""
        raw = self._fields.get(F_ERRORS)
        try:
            items = json.loads(raw) if raw else []
        except (ValueError, RecursionError):
            return []
        return [
            ErrorInfo(str(i.get("type")), str(i.get("message")), str(i.get("traceback", "")))
            for i in items
            if isinstance(i, dict)
        ]

    @property
    def retry(self) -> Retry | None:
        """The job's retry policy, if it has one."""
        raw = self._fields.get(F_RETRY)
        return None if raw is None else Retry.from_bytes(raw)

    @property
    def is_finished(self) -> bool:
        return self.status is JobStatus.FINISHED

    @property
    def is_failed(self) -> bool:
        return self.status in (JobStatus.FAILED, JobStatus.TIMEOUT)

    @property
    def is_canceled(self) -> bool:
        return self.status is JobStatus.CANCELED

    @property
    def is_scheduled(self) -> bool:
        return self.status is JobStatus.SCHEDULED

    def __repr__(self) -> str:
        status = self._fields.get(F_STATUS, b"?").decode("utf-8", "replace")
        return f"<Job {self.id} {status}>"
