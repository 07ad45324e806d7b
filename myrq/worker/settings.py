"""A worker's settings, checked once when the worker is made."""

from __future__ import annotations

import math
import os
import random
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from myrq import config
from myrq.durations import MAX_SECONDS, Duration, check_seconds, parse_duration
from myrq.exceptions import ConfigurationError, InvalidJobError
from myrq.ids import validate_queue_name


@dataclass(frozen=True)
class WorkerSettings:
    """Everything a worker was told, validated (see :class:`~myrq.worker.Worker`)."""

    queue_names: tuple[str, ...]
    name: str
    lease_ttl: float
    max_attempts: int
    idle_wait: float
    default_timeout: float
    result_ttl: float
    failure_ttl: float
    secret_keys: tuple[bytes, ...]
    max_payload_size: int
    grace_period: float | None
    isolate_all: bool
    isolated_queues: frozenset[str]
    job_memory_limit: int | None
    prefetch: int
    #: Jobs run at once (1: one at a time in the main thread; more: see
    #: :mod:`myrq.worker.concurrent`).
    concurrency: int = 1

    @classmethod
    def build(  # noqa: PLR0917 - mirrors Worker's keyword arguments
        cls,
        queue_names: Sequence[str],
        name: str | None,
        lease_ttl: Duration,
        max_attempts: int,
        idle_wait: Duration,
        default_timeout: Duration,
        result_ttl: Duration,
        failure_ttl: Duration,
        secret_key: str | bytes | Sequence[str | bytes] | None,
        max_payload_size: int | None,
        grace_period: Duration | None,
        isolate: bool | Sequence[str],
        job_memory_limit: int | None,
        prefetch: int,
        concurrency: int = 1,
    ) -> WorkerSettings:
        """Check every value; fill in the configured secret key and payload cap.

        Raises:
            InvalidJobError: no queue, or a bad queue name.
            ConfigurationError: any other value out of range, with its name.
        """
        if not queue_names:
            raise InvalidJobError("a Worker needs at least one queue name")
        names = tuple(validate_queue_name(n) for n in queue_names)
        lease_ttl, idle_wait, default_timeout = (
            _duration("lease_ttl", lease_ttl),
            _duration("idle_wait", idle_wait),
            _duration("default_timeout", default_timeout),
        )
        result_ttl = _duration("result_ttl", result_ttl, forever=True)
        failure_ttl = _duration("failure_ttl", failure_ttl, forever=True)
        if grace_period is not None:
            grace_period = _duration("grace_period", grace_period)
        check_seconds("lease_ttl", lease_ttl, minimum=1.0, maximum=MAX_SECONDS)
        check_seconds("idle_wait", idle_wait, minimum=0.01)
        check_seconds("default_timeout", default_timeout, minimum=0.001, maximum=MAX_SECONDS)
        for label, ttl in (("result_ttl", result_ttl), ("failure_ttl", failure_ttl)):
            if (
                not isinstance(ttl, int | float)
                or isinstance(ttl, bool)
                or not math.isfinite(ttl)
                or (ttl < 0 and ttl != -1)
            ):
                raise ConfigurationError(
                    f"{label} must be seconds >= 0, or -1 to keep records forever, not {ttl!r}"
                )
        if max_payload_size is not None and (
            not isinstance(max_payload_size, int)
            or isinstance(max_payload_size, bool)
            or max_payload_size < 0
        ):
            raise ConfigurationError(
                f"max_payload_size must be a whole number of bytes >= 0 (0: no cap), "
                f"not {max_payload_size!r}"
            )
        if not isinstance(max_attempts, int) or isinstance(max_attempts, bool) or max_attempts < 0:
            raise ConfigurationError(
                f"max_attempts must be a whole number >= 0 (0: no limit), not {max_attempts!r}"
            )
        if grace_period is not None:
            check_seconds("grace_period", grace_period, minimum=0.0)
        isolate_all, isolated_queues = _isolation(isolate, job_memory_limit)
        if not isinstance(prefetch, int) or isinstance(prefetch, bool) or not 1 <= prefetch <= 1000:
            raise ConfigurationError(
                f"prefetch must be a whole number from 1 to 1000, not {prefetch!r}"
            )
        if (
            not isinstance(concurrency, int)
            or isinstance(concurrency, bool)
            or not 1 <= concurrency <= 10_000
        ):
            raise ConfigurationError(
                f"concurrency must be a whole number from 1 to 10000, not {concurrency!r}"
            )
        if concurrency > 1 and (isolate_all or isolated_queues):
            raise ConfigurationError(
                "isolate runs one job at a time in a forked child, which cannot be combined with "
                "concurrency > 1 (forking a threaded process is unsafe): run isolated queues in "
                "a worker of their own, or several worker processes (--processes)"
            )
        return cls(
            queue_names=names,
            name=name or f"{socket.gethostname()}.{os.getpid()}.{random.getrandbits(32):08x}",
            lease_ttl=lease_ttl,
            max_attempts=max_attempts,
            idle_wait=idle_wait,
            default_timeout=default_timeout,
            result_ttl=result_ttl,
            failure_ttl=failure_ttl,
            secret_keys=(
                config.secret_keys() if secret_key is None else config.secret_keys_of(secret_key)
            ),
            max_payload_size=(
                config.max_payload_size() if max_payload_size is None else max_payload_size
            ),
            grace_period=grace_period,
            isolate_all=isolate_all,
            isolated_queues=isolated_queues,
            job_memory_limit=job_memory_limit,
            prefetch=prefetch,
            concurrency=concurrency,
        )

    def isolates(self, queue: str) -> bool:
        """True if jobs taken from ``queue`` run in a child process."""
        return self.isolate_all or queue in self.isolated_queues


def _duration(name: str, value: Any, *, forever: bool = False) -> float:
    """A duration written as text (``"5m"``) or a ``timedelta`` as seconds; numbers as they are."""
    if isinstance(value, str | timedelta):
        try:
            return parse_duration(value, name, forever=forever)
        except InvalidJobError as exc:
            raise ConfigurationError(str(exc)) from None
    return value  # type: ignore[no-any-return]  # checked by the caller, with its name


def _isolation(
    isolate: bool | Sequence[str], job_memory_limit: int | None
) -> tuple[bool, frozenset[str]]:
    """Check the isolation options: (every job isolated, isolated queues)."""
    if isinstance(isolate, str):
        isolate = [isolate]
    isolate_all = isolate is True
    isolated_queues: frozenset[str] = (
        frozenset()
        if isinstance(isolate, bool)
        else frozenset(validate_queue_name(q) for q in isolate)
    )
    if (isolate_all or isolated_queues) and not hasattr(os, "fork"):
        raise ConfigurationError("isolate needs os.fork, which this platform lacks")
    if job_memory_limit is not None and (
        not isinstance(job_memory_limit, int) or job_memory_limit <= 0
    ):
        raise ConfigurationError(
            f"job_memory_limit must be a positive number of bytes, not {job_memory_limit!r}"
        )
    if job_memory_limit is not None and not (isolate_all or isolated_queues):
        raise ConfigurationError(
            "job_memory_limit needs isolation (isolate=True or a list of queues): "
            "only a job's own child process can be capped"
        )
    return isolate_all, isolated_queues
