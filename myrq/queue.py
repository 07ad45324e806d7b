"""Queue: the producer side. Encodes calls into jobs and hands them to the broker."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar, overload

from myrq import config
from myrq.backends import Broker
from myrq.backends.values import EnqueueRequest
from myrq.callbacks import Callback
from myrq.codec import encode_meta
from myrq.cron import PeriodicJobs
from myrq.defaults import DEFAULT_FAILURE_TTL, DEFAULT_RESULT_TTL, DEFAULT_TIMEOUT
from myrq.dependency import Dependency
from myrq.eager import Eager
from myrq.enqueuer import Enqueuer
from myrq.exceptions import InvalidJobError, JobExistsError
from myrq.functions import function_name
from myrq.group import Group
from myrq.hooks import Hooks, active, call
from myrq.ids import new_job_id, validate_queue_name
from myrq.job import Job
from myrq.options import (
    ENQUEUE_KEYWORDS,
    NO_OPTIONS,
    JobOptions,
    check_binding,
    check_shadowing,
    option_names,
    split_enqueue_kwargs,
    workflow_fields,
)
from myrq.registries import QueueRegistries
from myrq.registry import registry
from myrq.retry import Retry
from myrq.schema import (
    F_META,
)
from myrq.serializers import Serializer
from myrq.transaction import divert

P = ParamSpec("P")
R = TypeVar("R")


class Queue(QueueRegistries, PeriodicJobs):
    """A named queue of jobs in a broker.

    Args:
        name: the queue's name (letters, digits, ``_ . @ + = -``).
        broker: a Broker, a broker URL, or None for the configured one.
        serializer: a Serializer, a name (``"json"``, ``"pickle"``), or None
            for the configured one.
        default_timeout: how long a job may run (default 180 s); a duration.
        result_ttl: how long to keep a finished job (default 1 hour; -1 forever).
        failure_ttl: how long to keep a failed job (default 7 days; -1 forever).
        default_retry: the retry policy of jobs that set none (a :class:`Retry`
            or a number of retries; default: no retries).
        max_payload_size: largest encoded payload in bytes (default: configured,
            1 MiB; 0: no cap).
        secret_key: signs each record (default: configured, ``MYRQ_SECRET_KEY``;
            ``b""``: do not sign); of several keys, the first signs.
        hooks: :class:`~myrq.Hooks` told of each enqueue (beside those
            installed with :func:`myrq.hooks.install`).
        eager: run each job inside ``enqueue``, as a worker would (True, or an
            :class:`~myrq.eager.Eager` with options; default: configured,
            ``MYRQ_EAGER``). See :mod:`myrq.eager`.
    """

    def __init__(
        self,
        name: str = "default",
        broker: Broker | str | None = None,
        serializer: Serializer | str | None = None,
        *,
        default_timeout: float | str | timedelta = DEFAULT_TIMEOUT,
        result_ttl: float | str | timedelta = DEFAULT_RESULT_TTL,
        failure_ttl: float | str | timedelta = DEFAULT_FAILURE_TTL,
        default_retry: Retry | int | None = None,
        max_payload_size: int | None = None,
        secret_key: str | bytes | Sequence[str | bytes] | None = None,
        hooks: Sequence[Hooks] = (),
        eager: bool | Eager | None = None,
    ) -> None:
        self.name = validate_queue_name(name)
        self.hooks = list(hooks)
        self.eager = Eager.of(eager)
        self.max_payload_size = (
            config.max_payload_size() if max_payload_size is None else max_payload_size
        )
        keys = config.secret_keys() if secret_key is None else config.secret_keys_of(secret_key)
        self._secret_key = keys[0] if keys else None
        self.broker = config.get_broker(broker)
        self.serializer = config.get_serializer(serializer)
        defaults = JobOptions.build(
            timeout=default_timeout, result_ttl=result_ttl, failure_ttl=failure_ttl
        )
        self.default_timeout = defaults.timeout or DEFAULT_TIMEOUT
        self.result_ttl = defaults.result_ttl
        self.failure_ttl = defaults.failure_ttl
        self.default_retry = Retry.of(default_retry)

    def __repr__(self) -> str:
        return f"Queue({self.name!r}, broker={self.broker!r})"

    def __len__(self) -> int:
        return self.count

    @property
    def count(self) -> int:
        """Number of jobs waiting on this queue (not counting scheduled ones)."""
        return self.broker.queue_length(self.name)

    @property
    def job_ids(self) -> list[str]:
        """Ids waiting on this queue, in the order they will run."""
        return self.broker.queued_ids(self.name)

    def scheduled_jobs(self, limit: int = 1000) -> list[tuple[str, datetime]]:
        """Scheduled jobs of this queue (waiting for their time or next try), soonest first."""
        return [
            (job_id, datetime.fromtimestamp(due).astimezone())
            for job_id, due in self.broker.scheduled(self.name, limit)
        ]

    def fetch_job(self, job_id: str) -> Job[Any] | None:
        """The job stored under ``job_id`` (any queue's), or None."""
        fields = self.broker.get(job_id)
        if fields is None:
            return None
        return Job(job_id, fields, broker=self.broker, serializer=self.serializer)

    # -- enqueueing --------------------------------------------------------

    @overload
    def enqueue(
        self, func: Callable[P, Coroutine[Any, Any, R]], *args: P.args, **kwargs: P.kwargs
    ) -> Job[R]: ...
    @overload
    def enqueue(self, func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> Job[R]: ...
    @overload
    def enqueue(self, func: str, *args: Any, **kwargs: Any) -> Job[Any]: ...
    def enqueue(self, func: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> Job[Any]:
        """Enqueue ``func(*args, **kwargs)``; return the stored Job.

        ``func`` is a module-level function or its ``"pkg.module.func"`` name.
        The keywords ``job_timeout``, ``job_id``, ``description``,
        ``result_ttl``, ``failure_ttl``, ``ttl``, ``at_front``, ``retry``,
        ``depends_on``, ``meta`` and the callbacks (RQ's names) are options
        for the job, not arguments of ``func``: typed code gives options with
        :meth:`with_options` instead, and :meth:`enqueue_call` never mixes the
        two. When ``func`` is a function object, arguments it cannot take are
        refused here (and by a type checker).
        """
        options = _split(func, args, kwargs)
        return self.enqueue_call(func, args=args, kwargs=kwargs, **options)

    def with_options(self, **options: Any) -> Enqueuer:
        """This queue with job options (:meth:`enqueue_call`'s names), for typed enqueues.

        ``q.with_options(timeout="5m", retry=3).enqueue(func, *args, **kwargs)``:
        every keyword of that ``enqueue`` goes to ``func``.
        """
        return Enqueuer(self, options)

    def enqueue_in(
        self,
        delay: float | str | timedelta,
        func: Callable[..., Any] | str,
        *args: Any,
        **kwargs: Any,
    ) -> Job[Any]:
        """Like :meth:`enqueue`, but the job waits ``delay`` (a duration) before it runs."""
        options = _split(func, args, kwargs)
        return self.enqueue_call(func, args=args, kwargs=kwargs, delay=delay, **options)

    def enqueue_at(
        self, when: datetime, func: Callable[..., Any] | str, *args: Any, **kwargs: Any
    ) -> Job[Any]:
        """Like :meth:`enqueue`, but the job runs at ``when`` (a timezone-aware datetime)."""
        options = _split(func, args, kwargs)
        return self.enqueue_call(func, args=args, kwargs=kwargs, at=when, **options)

    def enqueue_call(
        self,
        func: Callable[..., Any] | str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | str | timedelta | None = None,
        job_id: str | None = None,
        description: str | None = None,
        result_ttl: float | str | timedelta | None = None,
        failure_ttl: float | str | timedelta | None = None,
        ttl: float | str | timedelta | None = None,
        at_front: bool = False,
        retry: Retry | int | None = None,
        at: datetime | float | None = None,
        delay: float | str | timedelta | None = None,
        depends_on: Dependency | Job[Any] | str | Sequence[Job[Any] | str] | None = None,
        meta: Mapping[str, Any] | None = None,
        on_success: Callback | Callable[..., Any] | str | None = None,
        on_failure: Callback | Callable[..., Any] | str | None = None,
        on_stopped: Callback | Callable[..., Any] | str | None = None,
        concurrency_key: str | None = None,
        concurrency_limit: int | None = None,
    ) -> Job[Any]:
        """Enqueue ``func`` with ``args`` and ``kwargs`` given apart from the options.

        Options (durations are seconds, a ``timedelta`` or ``"90s"``, ``"5m"``...):
        ``timeout`` how long the job may run; ``job_id`` its id (default: a new
        UUID); ``description``; ``result_ttl`` and ``failure_ttl`` how long its
        record is kept once finished or failed (-1 forever, 0 not at all);
        ``ttl`` how long it may wait to start (then it is canceled, not run);
        ``at_front`` to go to the head of the queue; ``retry`` a :class:`Retry`
        (or a number of retries) for when it fails; ``at`` (an aware datetime)
        or ``delay`` to run it later; ``depends_on`` jobs (or ids, or a
        :class:`~myrq.Dependency`) that must finish first; ``meta`` a dict
        stored with the job (``job.meta``); ``on_success``, ``on_failure``,
        ``on_stopped`` callbacks (a function, its name or a
        :class:`~myrq.Callback`) the worker calls after the job;
        ``concurrency_key`` and ``concurrency_limit`` (default 1): at most that
        many jobs of the key run at once, across every worker.

        Everything is checked and encoded before anything is written, so an
        error here leaves the broker untouched.

        Raises:
            InvalidJobError: ``func`` cannot be imported by a worker, or an
                option is invalid (the message names it).
            SerializationError: an argument cannot be encoded.
            JobExistsError: a scheduled, deferred, pending or running job already
                has ``job_id``.
            BrokerFullError: the broker is out of memory; nothing was stored.
            BrokerConnectionError: the broker could not be reached or its reply was
                lost: the job was either not stored or stored whole, never half.
        """
        job = self.prepare(
            func, args, kwargs,
            timeout=timeout, job_id=job_id, description=description, result_ttl=result_ttl,
            failure_ttl=failure_ttl, ttl=ttl, at_front=at_front, retry=retry, at=at, delay=delay,
            depends_on=depends_on, meta=meta, on_success=on_success, on_failure=on_failure,
            on_stopped=on_stopped, concurrency_key=concurrency_key,
            concurrency_limit=concurrency_limit,
        )  # fmt: skip
        hooks = active(self.hooks)
        if hooks:
            self._before_enqueue(hooks, job)
        if divert(self, [job], hooks):  # held until a commit, or run now (eager)
            return job
        req = job.request
        assert req is not None  # prepare() sets it
        if req.depends_on:
            if self.broker.enqueue_many([req]):
                raise JobExistsError(req.job_id)
        else:
            self.broker.enqueue(
                req.queue, req.job_id, req.fields,
                at=req.at, delay=req.delay, front=req.front, ttl=req.ttl,
            )  # fmt: skip
        if hooks:
            call(hooks, "after_enqueue", job)
        return job

    def _before_enqueue(self, hooks: list[Hooks], job: Job[Any]) -> None:
        """Tell ``hooks``; store what they put in ``job.meta``."""
        call(hooks, "before_enqueue", job)
        if job._meta is not None:  # read, perhaps changed: store it as it is now
            job._fields[F_META] = encode_meta(job._meta)  # the request holds these fields

    def prepare(
        self,
        func: Callable[..., Any] | str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Job[Any]:
        """Build and encode a job without storing it (for :meth:`enqueue_many`).

        Takes :meth:`enqueue_call`'s options.
        """
        if isinstance(args, str | bytes) or not isinstance(args, Sequence):
            raise InvalidJobError(f"args must be a list or tuple, not {type(args).__name__}")
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise InvalidJobError(f"kwargs must be a mapping, not {type(kwargs).__name__}")
        name = function_name(func)
        if callable(func) and not isinstance(func, str):
            check_binding(func, args, kwargs or {})
        if options and not option_names().issuperset(options):
            unknown = sorted(set(options) - option_names())
            raise InvalidJobError(
                f"unknown job option {unknown[0]!r}; the options are "
                f"{', '.join(sorted(option_names()))} (enqueue() also takes RQ's names: "
                f"{', '.join(k for k, v in ENQUEUE_KEYWORDS.items() if k != v)})"
            )
        given = (
            {k: v for k, v in options.items() if v is not None and v is not False}
            if options
            else options
        )
        defaults = registry.options(name)
        opts = JobOptions.build(**{**defaults, **given}) if given or defaults else NO_OPTIONS
        job = Job.create(
            name,
            args,
            kwargs or {},
            queue=self.name,
            broker=self.broker,
            serializer=self.serializer,
            job_id=opts.job_id if opts.job_id is not None else new_job_id(opts.concurrency_key),
            timeout=opts.timeout if opts.timeout is not None else self.default_timeout,
            # The built-in defaults are not stored (smaller records); a worker
            # applies its own, which are the same unless configured otherwise.
            result_ttl=_unless_default(opts.result_ttl, self.result_ttl, DEFAULT_RESULT_TTL),
            failure_ttl=_unless_default(opts.failure_ttl, self.failure_ttl, DEFAULT_FAILURE_TTL),
            description=opts.description,
            retry=opts.retry if opts.retry is not None else self.default_retry,
            max_payload_size=self.max_payload_size,
            secret_key=self._secret_key,
            extra=workflow_fields(opts, self.serializer),
        )
        deps = opts.depends_on
        job.request = EnqueueRequest(  # the job's own fields: what a hook changes is sent
            self.name, job.id, job._fields, opts.at, opts.delay, opts.at_front, opts.ttl,
            depends_on=deps.jobs if deps else (),
            allow_failure=bool(deps and deps.allow_failure),
        )  # fmt: skip
        return job

    def enqueue_many(self, jobs: Iterable[Job[Any]]) -> Group:
        """Store jobs made by :meth:`prepare` in as few round trips as the broker allows.

        Each job is stored atomically; the batch as a whole is not. Returns a
        :class:`~myrq.Group` of the jobs: a list that also counts their
        states and waits for them all.

        Raises:
            JobExistsError: some ids were held by live jobs; those were not
                stored, all others were (``exc.job_ids`` lists the refused ones).
        """
        batch = list(jobs)
        hooks = active(self.hooks)
        requests = []
        for job in batch:
            if job.broker is not self.broker or job.origin != self.name or job.request is None:
                raise InvalidJobError(
                    f"job {job.id!r} was prepared for queue {job.origin!r} of {job.broker!r}; "
                    f"prepare it with this queue ({self.name!r})"
                )
        for job in batch:
            if hooks:
                self._before_enqueue(hooks, job)
            assert job.request is not None  # checked above
            requests.append(job.request)
        if divert(self, batch, hooks):  # held until a commit, or run now (eager)
            return Group(batch)
        refused = self.broker.enqueue_many(requests)
        if hooks:
            for job in batch:
                if job.id not in refused:
                    call(hooks, "after_enqueue", job)
        if refused:
            raise JobExistsError(refused)
        return Group(batch)


def _split(func: object, args: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Take the job options out of ``kwargs``; refuse options that shadow ``func``'s parameters."""
    options, written = split_enqueue_kwargs(kwargs)
    if written and callable(func) and not isinstance(func, str):
        function_name(func)  # a lambda or a nested function is refused first, for what it is
        check_shadowing(func, written)
    return options


def _unless_default(
    explicit: float | None, queue_default: float | None, builtin: float
) -> float | None:
    """The TTL to store in a job: the explicit one, else the queue's unless built in."""
    if explicit is not None:
        return explicit
    return None if queue_default is None or queue_default == builtin else queue_default
