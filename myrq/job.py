"""Job: one function call, stored as a record of byte fields in a broker."""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from myrq import config
from myrq.backends import Broker
from myrq.backends.values import EnqueueRequest
from myrq.codec import encode_meta, encode_payload
from myrq.defaults import DEFAULT_FAILURE_TTL
from myrq.durations import parse_duration, ttl_for_broker
from myrq.exceptions import (
    BrokerFullError,
    InvalidJobError,
    JobFailedError,
    NoSuchJobError,
    PayloadTooLargeError,
    WaitTimeout,
)
from myrq.ids import validate_job_id
from myrq.job_record import JobRecord
from myrq.retry import Retry
from myrq.schema import (
    CANCELED_ERROR,
    F_CREATED_AT,
    F_DESCRIPTION,
    F_FAILURE_TTL,
    F_META,
    F_PAYLOAD,
    F_QUEUE,
    F_RESULT_TTL,
    F_RETRY,
    F_SIGNATURE,
    F_STATUS,
    F_TIMEOUT,
    S_PENDING,
    format_number,
    format_timeout,
)
from myrq.serializers import Serializer
from myrq.signing import sign
from myrq.status import JobStatus

#: Longest job timeout accepted at enqueue time (one year), in seconds.
MAX_TIMEOUT = 366 * 24 * 3600


R = TypeVar("R")


class Job(JobRecord, Generic[R]):
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
        self._meta: dict[str, Any] | None = None
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
        extra: Mapping[str, bytes] | None = None,
    ) -> Job[Any]:
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
        if extra:
            fields.update(extra)
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
    ) -> Job[Any]:
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
        self._meta = None

    def delete(self) -> bool:
        """Delete the record and take the id off its queue. True if it existed."""
        return self.broker.delete(self.id)

    def cancel(self) -> bool:
        """Cancel the job if it has not started (pending, scheduled or deferred); True if it was.

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

    def stop(self) -> bool:
        """Stop the job, whatever it is doing; True unless it had ended already.

        A running job is stopped by its worker within a heartbeat (a third of
        the lease: 5 s by default): interrupted in process, or its process
        killed when isolated; it ends ``stopped`` and its ``on_stopped``
        callback runs. A job that has not started (pending, scheduled,
        deferred) is canceled instead. Raises NoSuchJobError if there is no job.
        """
        status = self.broker.stop(self.id)
        if status is None:
            raise NoSuchJobError(f"no job {self.id!r} to stop (never enqueued, or expired)")
        if status == "running":
            return True
        if status in ("pending", "scheduled", "deferred"):
            # Started meanwhile? Then cancel finds it running: ask its worker again.
            return self.cancel() or self.broker.stop(self.id) == "running"
        return False

    def requeue(self) -> bool:
        """Run an ended job (failed, timed out, stopped, canceled, finished) again.

        It goes to the end of its queue with fresh counts of claims and tries;
        the errors of its earlier runs are kept (``job.errors``). False if the
        job had not ended. Its dependents that were canceled stay canceled.
        """
        done = self.broker.requeue(self.id)
        if done:
            self._fields = self.broker.get(self.id) or self._fields
            self._payload = None
        return done

    def save_meta(self) -> None:
        """Store :attr:`meta` as it is now (from a job: report progress).

        Raises:
            NoSuchJobError: the record is gone; nothing was written.
            SerializationError: the meta cannot be stored as JSON (see encode_meta).
        """
        encoded = encode_meta(self.meta)
        if not self.broker.set_fields(self.id, {F_META: encoded}):
            raise NoSuchJobError(f"job {self.id!r} no longer exists: its meta was not saved")
        self._fields[F_META] = encoded

    def dependencies(self) -> list[Job[Any]]:
        """The jobs this one depends on whose records still exist."""
        found: list[Job[Any]] = []
        for job_id in self.dependency_ids:
            fields = self.broker.get(job_id)
            if fields is not None:
                found.append(Job(job_id, fields, broker=self.broker, serializer=self.serializer))
        return found

    def wait(self, timeout: float | str | timedelta | None = None) -> R:
        """Block until the job ends and return its result.

        Waits without polling (the broker tells waiters when a job ends) for at
        most ``timeout`` (a duration; None: as long as it takes). While the job
        waits for a retry it has not ended. On a full Redis, which refuses the
        waiter's mark, it reads the record every 0.2 s instead.

        Raises:
            JobFailedError: it ended ``failed``, ``timeout``, ``canceled`` or
                ``stopped``; ``exc.job`` and ``exc.error`` tell how.
            WaitTimeout: it did not end in time (a TimeoutError).
            NoSuchJobError: its record is gone (deleted, or not kept: result_ttl=0).
        """
        limit = None if timeout is None else parse_duration(timeout, "timeout")
        deadline = None if limit is None else time.monotonic() + limit
        wait_for_end = self.broker.wait_for_end
        while True:
            remaining = 3600.0 if deadline is None else deadline - time.monotonic()
            try:
                ended = wait_for_end(self.id, max(remaining, 0.0))
            except BrokerFullError:
                wait_for_end = functools.partial(Broker.wait_for_end, self.broker)  # polls
                continue
            if ended:
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(f"job {self.id!r} did not end within {limit:g}s")
        self.refresh()
        if self.status is JobStatus.FINISHED:
            return self.result  # type: ignore[return-value]  # R as enqueued (None: R is None)
        raise JobFailedError(self, self.error)

    # -- state -------------------------------------------------------------

    def get_status(self, refresh: bool = True) -> JobStatus:
        """The job's status, re-read from the broker unless ``refresh=False``."""
        if refresh:
            self.refresh()
        return self.status

    def lease_expires_at(self) -> datetime | None:
        """When the running job's lease runs out (read from the broker now); None if it holds none.

        A worker renews the lease every third of it while the job runs; a lease
        in the past means its worker stopped renewing, and the job will run
        again once a worker reaps it.
        """
        deadline = self.broker.lease_deadline(self.id)
        return None if deadline is None else datetime.fromtimestamp(deadline, UTC)

    if TYPE_CHECKING:

        @property
        def result(self) -> R | None:
            """The function's return value once ``finished``; ``None`` before."""

    def __repr__(self) -> str:
        status = self._fields.get(F_STATUS, b"?").decode("utf-8", "replace")
        return f"<Job {self.id} {status}>"
