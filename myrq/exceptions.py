"""One exception tree for everything myrq raises.

::

    MyrqError
    ├── ConfigurationError        bad config value: unknown URL scheme, serializer name, ...
    ├── InvalidJobError           a job that cannot be enqueued: lambda, bad id, bad option
    │   └── PayloadTooLargeError  its encoded payload is above max_payload_size
    ├── SerializationError        a value the serializer cannot encode
    │   └── DeserializationError  bytes the serializer cannot decode
    ├── FunctionLookupError       a job's function name cannot be imported
    │   └── FunctionNotAllowed    ... or is outside the worker's allow-list (nothing imported)
    ├── SignatureError            a payload's signature is missing or wrong
    ├── NoSuchJobError            no job with that id
    ├── JobFailedError            Job.wait(): the job ended failed, timed out or canceled
    ├── WaitTimeout               Job.wait(): it did not end in time (also a TimeoutError)
    ├── InvalidArgumentError      a value a broker step cannot take (also a ValueError)
    └── BrokerError               the storage failed or refused
        ├── BrokerConnectionError the storage cannot be reached
        ├── BrokerFullError       the storage is out of memory and refuses new jobs
        └── JobExistsError        a live job with that id already exists

    JobTimeout (BaseException)    raised inside a job that ran past its timeout

Errors from the libraries below (redis-py) are converted at the broker
boundary into these, with the original chained as ``__cause__``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class MyrqError(Exception):
    """Root of every error myrq raises."""


class ConfigurationError(MyrqError):
    """A configuration value is not one myrq accepts."""


class InvalidJobError(MyrqError):
    """A job cannot be enqueued as asked (function, id or option is invalid)."""


class SerializationError(MyrqError):
    """A value cannot be encoded by the configured serializer."""


class DeserializationError(SerializationError):
    """Stored bytes cannot be decoded by the configured serializer."""


class FunctionLookupError(MyrqError):
    """A job's function cannot be resolved from its name."""


class FunctionNotAllowed(FunctionLookupError):
    """A job names a function outside the worker's allow-list; nothing was imported."""


class SignatureError(MyrqError):
    """A job's payload signature is missing or wrong; the payload was not decoded."""


class PayloadTooLargeError(InvalidJobError):
    """A job's encoded payload is larger than the configured maximum."""


class NoSuchJobError(MyrqError):
    """No job is stored under the requested id."""


class JobFailedError(MyrqError):
    """A job waited for ended without a result: ``failed``, ``timeout`` or ``canceled``.

    ``job`` is the job as read when it ended; ``error`` its recorded error (a
    plain description, never the original exception).
    """

    def __init__(self, job: Any, error: Any) -> None:
        self.job = job
        self.error = error
        status = getattr(job, "status", "?")
        super().__init__(f"job {getattr(job, 'id', '?')!r} ended {status}: {error}")


class WaitTimeout(MyrqError, TimeoutError):
    """A job waited for did not end within the timeout (it may still end later)."""


class BrokerError(MyrqError):
    """The broker failed to carry out an operation."""


class BrokerConnectionError(BrokerError):
    """The broker's storage cannot be reached."""


class BrokerFullError(BrokerError):
    """The storage is out of memory (Redis at maxmemory with noeviction): the job was not stored.

    Workers keep draining a full Redis (claims, renewals and outcomes are
    still written), so enqueueing works again once they have made room or
    the operator raised ``maxmemory``. A large ``enqueue_many`` is sent in
    parts: ``stored_ids`` lists the jobs of earlier parts that were stored.
    """

    def __init__(self, message: str, stored_ids: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.stored_ids = list(stored_ids)


class InvalidArgumentError(MyrqError, ValueError):
    """A value that a broker step cannot take (a NaN lease, a negative count...)."""


class JobExistsError(BrokerError):
    """A pending or running job already uses this id; it was not replaced."""

    def __init__(self, job_ids: list[str] | str) -> None:
        ids = [job_ids] if isinstance(job_ids, str) else list(job_ids)
        self.job_ids = ids
        shown = ", ".join(repr(i) for i in ids[:5]) + (" ..." if len(ids) > 5 else "")
        super().__init__(
            f"job id {shown} is already used by a pending or running job; it was not "
            "replaced. Wait for it to finish, delete it, or pick another job_id."
        )


class JobTimeout(BaseException):
    """Raised inside a running job when it exceeds its timeout.

    It derives from ``BaseException`` so that a job's own ``except Exception``
    cannot swallow it.
    """


class JobStopped(BaseException):
    """Raised inside a running job that someone stopped (``job.stop()``, ``myrq stop``).

    A ``BaseException``, like :class:`JobTimeout`, so that a job's own
    ``except Exception`` cannot swallow it. The job ends ``stopped``.
    """
