"""Typed enqueueing with options: ``q.with_options(timeout="5m", retry=3).enqueue(func, ...)``.

``Queue.enqueue(func, *args, **kwargs)`` is typed with ``ParamSpec``: a type
checker checks the arguments against ``func``'s signature and the returned
``Job[R]`` knows the result's type. RQ's option keywords (``job_timeout=``...)
still work there at run time, but a type checker sees them as arguments of
``func``. Typed code gives options this one way: :meth:`myrq.Queue.with_options`
returns an :class:`Enqueuer` whose every keyword goes to the function.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from myrq.options import JobOptions

if TYPE_CHECKING:
    from myrq.job import Job
    from myrq.queue import Queue

P = ParamSpec("P")
R = TypeVar("R")


class Enqueuer:
    """A queue and job options: see the module docstring."""

    def __init__(self, queue: Queue, options: dict[str, Any]) -> None:
        JobOptions.build(**options)  # checked now, with the option's name
        self.queue = queue
        self.options = options

    def __repr__(self) -> str:
        return f"Enqueuer({self.queue.name!r}, {self.options!r})"

    @overload
    def enqueue(
        self, func: Callable[P, Coroutine[Any, Any, R]], *args: P.args, **kwargs: P.kwargs
    ) -> Job[R]: ...
    @overload
    def enqueue(self, func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> Job[R]: ...
    def enqueue(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Job[Any]:
        """Enqueue ``func(*args, **kwargs)`` with these options (every keyword is ``func``'s)."""
        return self.queue.enqueue_call(func, args=args, kwargs=kwargs, **self.options)

    @overload
    def enqueue_in(
        self,
        delay: float | str | timedelta,
        func: Callable[P, Coroutine[Any, Any, R]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Job[R]: ...
    @overload
    def enqueue_in(
        self,
        delay: float | str | timedelta,
        func: Callable[P, R],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Job[R]: ...
    def enqueue_in(
        self, delay: float | str | timedelta, func: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Job[Any]:
        """Like :meth:`enqueue`, after ``delay``."""
        options = {**self.options, "delay": delay}
        return self.queue.enqueue_call(func, args=args, kwargs=kwargs, **options)

    @overload
    def enqueue_at(
        self,
        when: datetime,
        func: Callable[P, Coroutine[Any, Any, R]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Job[R]: ...
    @overload
    def enqueue_at(
        self, when: datetime, func: Callable[P, R], *args: P.args, **kwargs: P.kwargs
    ) -> Job[R]: ...
    def enqueue_at(
        self, when: datetime, func: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Job[Any]:
        """Like :meth:`enqueue`, at ``when`` (an aware datetime)."""
        options = {**self.options, "at": when}
        return self.queue.enqueue_call(func, args=args, kwargs=kwargs, **options)
