"""Job options: one set of names, RQ's where RQ has one, checked once.

Every way to enqueue ends here: ``Queue.enqueue_call(func, args, kwargs,
timeout=..., retry=...)`` names each option; ``Queue.enqueue(func, *args,
**kwargs)`` takes the same options under RQ's keyword names (``job_timeout``,
``job_id``, ``result_ttl``, ...) and passes everything else to the function.
Durations may be seconds, a ``timedelta`` or a string (``"90s"``, ``"5m"``).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from myrq.callbacks import Callback
from myrq.codec import encode_meta
from myrq.dependency import Dependency
from myrq.durations import MAX_SECONDS, parse_duration
from myrq.exceptions import InvalidJobError
from myrq.ids import validate_job_id
from myrq.retry import Retry
from myrq.schema import (
    F_ALLOW_FAILURE,
    F_CKEY,
    F_CLIMIT,
    F_DEPENDS_ON,
    F_META,
    F_ON_FAILURE,
    F_ON_STOPPED,
    F_ON_SUCCESS,
)
from myrq.serializers import Serializer

#: Keywords of ``Queue.enqueue`` that are job options, and the option each sets.
#: RQ's names, plus myrq's earlier ``job_*`` spellings.
ENQUEUE_KEYWORDS = {
    "job_timeout": "timeout",
    "job_id": "job_id",
    "description": "description",
    "result_ttl": "result_ttl",
    "failure_ttl": "failure_ttl",
    "ttl": "ttl",
    "at_front": "at_front",
    "retry": "retry",
    "depends_on": "depends_on",
    "meta": "meta",
    "on_success": "on_success",
    "on_failure": "on_failure",
    "on_stopped": "on_stopped",
    "concurrency_key": "concurrency_key",
    "concurrency_limit": "concurrency_limit",
    "job_result_ttl": "result_ttl",
    "job_failure_ttl": "failure_ttl",
    "job_description": "description",
}
#: RQ keywords myrq does not take, and what to use instead.
UNSUPPORTED = {
    "pipeline": "myrq does not enqueue through a redis-py pipeline: use Queue.enqueue_many "
    "(one round trip) or defer_until_commit",
    "repeat": "myrq repeats jobs with periodic schedules: Queue.cron(...)",
}


@dataclass(frozen=True)
class JobOptions:
    """The options of one job, checked: see :meth:`myrq.Queue.enqueue_call`."""

    timeout: float | None = None
    job_id: str | None = None
    description: str | None = None
    result_ttl: float | None = None
    failure_ttl: float | None = None
    ttl: float | None = None
    at_front: bool = False
    retry: Retry | None = None
    at: float | None = None  # seconds since the epoch
    delay: float | None = None
    depends_on: Dependency | None = None
    meta: Mapping[str, Any] | None = None
    on_success: Callback | None = None
    on_failure: Callback | None = None
    on_stopped: Callback | None = None
    concurrency_key: str | None = None
    concurrency_limit: int | None = None

    @classmethod
    def build(
        cls,
        *,
        timeout: object = None,
        job_id: object = None,
        description: object = None,
        result_ttl: object = None,
        failure_ttl: object = None,
        ttl: object = None,
        at_front: object = False,
        retry: object = None,
        at: object = None,
        delay: object = None,
        depends_on: object = None,
        meta: object = None,
        on_success: object = None,
        on_failure: object = None,
        on_stopped: object = None,
        concurrency_key: object = None,
        concurrency_limit: object = None,
    ) -> JobOptions:
        """Check and convert what a user wrote.

        Raises:
            InvalidJobError: a value that is not one the option takes, named.
        """
        if description is not None and not isinstance(description, str):
            raise InvalidJobError(f"description must be a str, not {type(description).__name__}")
        if not isinstance(at_front, bool):
            raise InvalidJobError(f"at_front must be True or False, not {at_front!r}")
        if at is not None and delay is not None:
            raise InvalidJobError("give a job either a time (at) or a delay, not both")
        if depends_on is not None and (at is not None or delay is not None):
            raise InvalidJobError(
                "a job with depends_on runs when its dependencies finish, so it cannot also "
                "have a time (at) or a delay: enqueue it later from the last dependency, "
                "or drop one of the two"
            )
        _check_concurrency(concurrency_key, concurrency_limit)
        if meta is not None and not (
            isinstance(meta, Mapping) and all(isinstance(k, str) for k in meta)
        ):
            raise InvalidJobError(f"meta must be a dict with str keys, not {meta!r}")
        return cls(
            timeout=None if timeout is None else _positive(timeout, "timeout"),
            job_id=None if job_id is None else validate_job_id(job_id),
            description=description,
            result_ttl=None if result_ttl is None else _ttl(result_ttl, "result_ttl"),
            failure_ttl=None if failure_ttl is None else _ttl(failure_ttl, "failure_ttl"),
            ttl=None if ttl is None else _positive(ttl, "ttl"),
            at_front=at_front,
            retry=Retry.of(retry),
            at=None if at is None else _reachable(when(at)),
            delay=None if delay is None else _within_reach(parse_duration(delay, "delay"), "delay"),
            depends_on=Dependency.of(depends_on),
            meta=meta,
            on_success=Callback.of(on_success, "on_success"),
            on_failure=Callback.of(on_failure, "on_failure"),
            on_stopped=Callback.of(on_stopped, "on_stopped"),
            concurrency_key=concurrency_key,  # type: ignore[arg-type]  # checked above
            concurrency_limit=concurrency_limit,  # type: ignore[arg-type]
        )


def split_enqueue_kwargs(kwargs: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Take the job options out of ``Queue.enqueue``'s keywords (the rest go to the function).

    Returns the options by option name, and the keywords as written.
    """
    for name, hint in UNSUPPORTED.items():
        if name in kwargs:
            raise InvalidJobError(f"enqueue(..., {name}=...): {hint}")
    written = [k for k in kwargs if k in ENQUEUE_KEYWORDS]
    return {ENQUEUE_KEYWORDS[k]: kwargs.pop(k) for k in written}, written


def check_shadowing(func: Callable[..., Any], written: Collection[str]) -> None:
    """Refuse job options whose keyword is also a parameter of ``func``.

    ``written`` are the keywords ``Queue.enqueue`` read as job options, as the
    user wrote them (``job_timeout``, ``meta``...): if ``func`` has a parameter
    of that very name, which one was meant is unclear.

    Raises:
        InvalidJobError: naming the keyword, and how to pass it to the function.
    """
    signature = _signature(func)
    if signature is None:
        return
    shadowed = [k for k in written if k in signature.parameters]
    if shadowed:
        name = getattr(func, "__qualname__", repr(func))
        raise InvalidJobError(
            f"{name}() has a parameter {shadowed[0]!r}, which enqueue() reads as a job option; "
            f"use enqueue_call({name}, args=..., kwargs={{{shadowed[0]!r}: ...}}) to pass it to "
            "the function"
        )


def check_binding(func: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    """Refuse a call that ``func``'s signature cannot take, now rather than in the worker.

    Raises:
        InvalidJobError: the arguments do not bind.
    """
    bad_keys = [k for k in kwargs if not isinstance(k, str)]
    if bad_keys:
        raise InvalidJobError(
            f"keyword argument names must be strings, not {bad_keys[0]!r} "
            f"({type(bad_keys[0]).__name__})"
        )
    # Whether a call binds depends only on its shape (how many positional
    # arguments, which keyword names), not on the values: a shape that bound
    # once is not checked again.
    shape: tuple[Any, ...] | None = (func, len(args), *kwargs)
    try:
        if shape in _bound:
            return
    except TypeError:  # an unhashable callable: checked every time
        shape = None
    signature = _signature(func)
    if signature is None:
        return
    try:
        signature.bind(*args, **kwargs)
        if shape is not None and len(_bound) < 10_000:
            _bound.add(shape)
    except TypeError as exc:
        name = getattr(func, "__qualname__", repr(func))
        raise InvalidJobError(
            f"{name}() cannot take these arguments: {exc}. If a keyword is meant as a job "
            f"option ({', '.join(sorted(ENQUEUE_KEYWORDS))}), pass it to q.enqueue() or "
            f"q.enqueue_call(); with q.with_options(...).enqueue() and task.delay(), every "
            "keyword goes to the function, and options go in with_options(...)"
        ) from None


@functools.cache
def option_names() -> frozenset[str]:
    """The options :meth:`JobOptions.build` takes (``Queue.enqueue_call``'s keywords)."""
    return frozenset(f.name for f in fields(JobOptions))


#: The options of a job that sets none (most enqueues): built once.
NO_OPTIONS = JobOptions()


_signatures: dict[Any, inspect.Signature | None] = {}
#: Call shapes ``(func, number of positional args, keyword names...)`` that bound.
_bound: set[tuple[Any, ...]] = set()


def _signature(func: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return _signatures[func]
    except (KeyError, TypeError):
        pass
    try:
        found: inspect.Signature | None = inspect.signature(func)
    except (TypeError, ValueError):  # some builtins have none
        found = None
    if len(_signatures) < 10_000:
        with contextlib.suppress(TypeError):  # unhashable: looked up again next time
            _signatures[func] = found
    return found


def _within_reach(seconds: float, name: str) -> float:
    """A wait before a job runs, refused past ten years (what a broker keeps at most)."""
    if seconds > MAX_SECONDS:
        raise InvalidJobError(
            f"{name} is {seconds / 86400 / 365.25:,.0f} years away; a job can wait ten years "
            "at most (brokers keep nothing longer)"
        )
    return seconds


def _reachable(moment: float) -> float:
    """A time to run a job at, refused past ten years from now."""
    _within_reach(moment - time.time(), "at")
    return moment


def when(value: object) -> float:
    """A point in time as seconds since the epoch: an aware ``datetime``, or a number.

    Raises:
        InvalidJobError: a naive ``datetime`` (say which zone: ``datetime.now(UTC)``,
            or ``tzinfo=ZoneInfo(...)``), or anything else.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            raise InvalidJobError(
                f"a naive datetime ({value.isoformat()}) has no time zone, so when it is "
                "depends on the machine: give tzinfo (datetime.now(UTC), ZoneInfo('Europe/Paris'))"
            )
        return value.astimezone(UTC).timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    raise InvalidJobError(
        f"a time must be an aware datetime or seconds since the epoch, not {value!r}"
    )


def _positive(value: object, name: str) -> float:
    seconds = parse_duration(value, name)
    if seconds <= 0:
        raise InvalidJobError(f"{name} must be longer than 0 seconds, not {value!r}")
    return seconds


def _ttl(value: object, name: str) -> float:
    return parse_duration(value, name, forever=True)


def workflow_fields(opts: JobOptions, serializer: Serializer) -> dict[str, bytes]:
    """The record's fields for the workflow options (signed with the rest)."""
    extra: dict[str, bytes] = {}
    if opts.meta:
        extra[F_META] = encode_meta(opts.meta)
    if opts.depends_on is not None:
        extra[F_DEPENDS_ON] = json.dumps(list(opts.depends_on.jobs)).encode()
        if opts.depends_on.allow_failure:
            extra[F_ALLOW_FAILURE] = b"1"
    for name, callback in (
        (F_ON_SUCCESS, opts.on_success),
        (F_ON_FAILURE, opts.on_failure),
        (F_ON_STOPPED, opts.on_stopped),
    ):
        if callback is not None:
            extra[name] = callback.to_bytes()
    if opts.concurrency_key is not None:
        extra[F_CKEY] = opts.concurrency_key.encode("utf-8", "surrogatepass")
        if opts.concurrency_limit is not None:
            extra[F_CLIMIT] = str(opts.concurrency_limit).encode()
    return extra


def _check_concurrency(key: object, limit: object) -> None:
    if key is not None and not (isinstance(key, str) and 0 < len(key) <= 200):
        raise InvalidJobError(f"concurrency_key must be a str of 1-200 characters, not {key!r}")
    if limit is not None and (
        not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 10_000
    ):
        raise InvalidJobError(
            f"concurrency_limit must be a whole number from 1 to 10000, not {limit!r}"
        )
    if limit is not None and key is None:
        raise InvalidJobError("concurrency_limit needs a concurrency_key: the key it limits")
