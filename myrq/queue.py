"""Queue: the producer side. Encodes calls into jobs and hands them to the broker."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from myrq import config
from myrq.backends import Broker
from myrq.backends.base import EnqueueRequest
from myrq.exceptions import InvalidJobError, JobExistsError
from myrq.functions import function_name
from myrq.ids import new_job_id, validate_queue_name
from myrq.job import Job
from myrq.serializers import Serializer

#: Keywords of :meth:`Queue.enqueue` that are options, not the function's arguments,
#: mapped to the :meth:`Queue.enqueue_call` parameter each sets.
RESERVED_KEYWORDS = {
    "job_id": "job_id",
    "job_timeout": "timeout",
    "job_result_ttl": "result_ttl",
    "job_failure_ttl": "failure_ttl",
    "job_description": "description",
}


class Queue:
    """A named queue of jobs in a broker.

    Args:
        name: the queue's name (letters, digits, ``_ . @ + = -``).
        broker: a Broker, a broker URL, or None for the configured one.
        serializer: a Serializer, a name (``"json"``, ``"pickle"``), or None
            for the configured one.
        default_timeout: seconds a job may run (default 180).
        result_ttl: seconds to keep a finished job (default 3600; -1 forever).
        failure_ttl: seconds to keep a failed job (default 7 days; -1 forever).
        max_payload_size: largest encoded payload in bytes (default: configured,
            1 MiB; 0: no cap).
        secret_key: signs each record (default: configured, ``MYRQ_SECRET_KEY``;
            ``b""``: do not sign); of several keys, the first signs.
    """

    def __init__(
        self,
        name: str = "default",
        broker: Broker | str | None = None,
        serializer: Serializer | str | None = None,
        *,
        default_timeout: float = config.DEFAULT_TIMEOUT,
        result_ttl: int = config.DEFAULT_RESULT_TTL,
        failure_ttl: int = config.DEFAULT_FAILURE_TTL,
        max_payload_size: int | None = None,
        secret_key: str | bytes | Sequence[str | bytes] | None = None,
    ) -> None:
        self.name = validate_queue_name(name)
        self.max_payload_size = (
            config.max_payload_size() if max_payload_size is None else max_payload_size
        )
        keys = config.secret_keys() if secret_key is None else config.secret_keys_of(secret_key)
        self._secret_key = keys[0] if keys else None
        self.broker = config.get_broker(broker)
        self.serializer = config.get_serializer(serializer)
        self.default_timeout = default_timeout
        self.result_ttl = result_ttl
        self.failure_ttl = failure_ttl

    def __repr__(self) -> str:
        return f"Queue({self.name!r}, broker={self.broker!r})"

    def __len__(self) -> int:
        return self.count

    @property
    def count(self) -> int:
        """Number of jobs waiting on this queue."""
        return self.broker.queue_length(self.name)

    @property
    def job_ids(self) -> list[str]:
        """Ids waiting on this queue, in the order they will run."""
        return self.broker.queued_ids(self.name)

    # -- enqueueing --------------------------------------------------------

    def enqueue(self, func: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> Job:
        """Enqueue ``func(*args, **kwargs)``; return the stored Job.

        ``func`` is a module-level function or its ``"pkg.module.func"`` name.
        The keywords ``job_id``, ``job_timeout``, ``job_result_ttl``,
        ``job_failure_ttl`` and ``job_description`` are options for the job,
        not arguments of ``func``; use :meth:`enqueue_call` if ``func`` itself
        takes a keyword of that name.
        """
        options = {opt: kwargs.pop(kw) for kw, opt in RESERVED_KEYWORDS.items() if kw in kwargs}
        return self.enqueue_call(func, args=args, kwargs=kwargs, **options)

    def enqueue_call(
        self,
        func: Callable[..., Any] | str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        job_id: str | None = None,
        result_ttl: int | None = None,
        failure_ttl: int | None = None,
        description: str | None = None,
    ) -> Job:
        """Enqueue ``func`` with ``args`` and ``kwargs`` given explicitly; return the Job.

        Everything is checked and encoded before anything is written, so an
        error here leaves the broker untouched.

        Raises:
            InvalidJobError: ``func`` cannot be imported by a worker, or an
                option is invalid.
            SerializationError: an argument cannot be encoded.
            JobExistsError: a pending or running job already has ``job_id``.
            BrokerConnectionError: the broker could not be reached or its reply was
                lost: the job was either not stored or stored whole, never half.
                Check with ``Job.fetch`` (or enqueue with a ``job_id``, which a
                retry cannot duplicate) before trying again.
        """
        job = self.prepare(
            func,
            args,
            kwargs,
            timeout=timeout,
            job_id=job_id,
            result_ttl=result_ttl,
            failure_ttl=failure_ttl,
            description=description,
        )
        self.broker.enqueue(self.name, job.id, job._fields)  # no copy: brokers only read it
        return job

    def prepare(
        self,
        func: Callable[..., Any] | str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        job_id: str | None = None,
        result_ttl: int | None = None,
        failure_ttl: int | None = None,
        description: str | None = None,
    ) -> Job:
        """Build and encode a job without storing it (for :meth:`enqueue_many`)."""
        if isinstance(args, str | bytes) or not isinstance(args, Sequence):
            raise InvalidJobError(f"args must be a list or tuple, not {type(args).__name__}")
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise InvalidJobError(f"kwargs must be a mapping, not {type(kwargs).__name__}")
        return Job.create(
            function_name(func),
            args,
            kwargs or {},
            queue=self.name,
            broker=self.broker,
            serializer=self.serializer,
            job_id=job_id if job_id is not None else new_job_id(),
            timeout=timeout if timeout is not None else self.default_timeout,
            # The built-in defaults are not stored (smaller records); a worker
            # applies its own, which are the same unless configured otherwise.
            result_ttl=_unless_default(result_ttl, self.result_ttl, config.DEFAULT_RESULT_TTL),
            failure_ttl=_unless_default(failure_ttl, self.failure_ttl, config.DEFAULT_FAILURE_TTL),
            description=description,
            max_payload_size=self.max_payload_size,
            secret_key=self._secret_key,
        )

    def enqueue_many(self, jobs: Iterable[Job]) -> list[Job]:
        """Store jobs made by :meth:`prepare` in as few round trips as the broker allows.

        Each job is stored atomically; the batch as a whole is not.

        Raises:
            JobExistsError: some ids were held by live jobs; those were not
                stored, all others were (``exc.job_ids`` lists the refused ones).
        """
        batch = list(jobs)
        for job in batch:
            if job.broker is not self.broker or job.origin != self.name:
                raise InvalidJobError(
                    f"job {job.id!r} was prepared for queue {job.origin!r} of {job.broker!r}; "
                    f"prepare it with this queue ({self.name!r})"
                )
        refused = self.broker.enqueue_many(
            [EnqueueRequest(self.name, job.id, job._fields) for job in batch]
        )
        if refused:
            raise JobExistsError(refused)
        return batch


def _unless_default(explicit: int | None, queue_default: int, builtin: int) -> int | None:
    """The TTL to store in a job: the explicit one, else the queue's unless built in."""
    if explicit is not None:
        return explicit
    return None if queue_default == builtin else queue_default
