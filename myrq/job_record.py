"""What a job's record says: its status, result, error, timing and settings, decoded.

:class:`JobRecord` reads the fields of one record as last fetched;
:class:`myrq.Job` adds what talks to the broker (fetching, waiting, control).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from myrq.callbacks import Callback
from myrq.codec import ErrorInfo, decode_meta, decode_payload
from myrq.exceptions import DeserializationError
from myrq.retry import Retry
from myrq.schema import (
    F_ALLOW_FAILURE,
    F_ATTEMPTS,
    F_CALLBACK_ERROR,
    F_CREATED_AT,
    F_DEPENDS_ON,
    F_DESCRIPTION,
    F_ENDED_AT,
    F_ERROR,
    F_ERRORS,
    F_FAILURE_TTL,
    F_LEASE,
    F_META,
    F_ON_FAILURE,
    F_ON_STOPPED,
    F_ON_SUCCESS,
    F_PAYLOAD,
    F_QUEUE,
    F_RESULT,
    F_RESULT_TTL,
    F_RETRY,
    F_STARTED_AT,
    F_STATUS,
    F_TIMEOUT,
    F_TRIES,
    F_WORKER,
    S_FINISHED,
    parse_number,
)
from myrq.serializers import Serializer
from myrq.status import JobStatus


def _when(raw: bytes | None) -> datetime | None:
    value = parse_number(raw)
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, ValueError, OSError):  # out of datetime's range
        return None


class JobRecord:
    """A job's record as last read: see :class:`myrq.Job`."""

    id: str
    serializer: Serializer
    _fields: dict[str, bytes]
    _payload: tuple[str, list[Any], dict[str, Any]] | None
    _meta: dict[str, Any] | None

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

    @property
    def is_stopped(self) -> bool:
        return self.status is JobStatus.STOPPED

    @property
    def is_deferred(self) -> bool:
        return self.status is JobStatus.DEFERRED

    @property
    def meta(self) -> dict[str, Any]:
        """The job's own data: set at enqueue (``meta=``), updated by the job (see
        :meth:`myrq.Job.save_meta`). Changes are kept here until saved. Stored as
        JSON whatever the serializer (it is not signed: never unpickled)."""
        if self._meta is None:
            self._meta = decode_meta(self._fields.get(F_META))
        return self._meta

    @property
    def dependency_ids(self) -> list[str]:
        """Ids of the jobs this one waited (or waits) for."""
        raw = self._fields.get(F_DEPENDS_ON)
        try:
            ids = json.loads(raw) if raw else []
        except (ValueError, RecursionError):
            return []
        return [str(i) for i in ids] if isinstance(ids, list) else []

    @property
    def allow_dependency_failures(self) -> bool:
        """True when it runs even if a job it depends on does not finish."""
        return self._fields.get(F_ALLOW_FAILURE) == b"1"

    @property
    def success_callback(self) -> Callback | None:
        return Callback.from_bytes(self._fields.get(F_ON_SUCCESS))

    @property
    def failure_callback(self) -> Callback | None:
        return Callback.from_bytes(self._fields.get(F_ON_FAILURE))

    @property
    def stopped_callback(self) -> Callback | None:
        return Callback.from_bytes(self._fields.get(F_ON_STOPPED))

    @property
    def callback_error(self) -> ErrorInfo | None:
        """What the job's callback raised, if it did (the job's outcome stands)."""
        raw = self._fields.get(F_CALLBACK_ERROR)
        return None if raw is None else ErrorInfo.from_bytes(raw)
