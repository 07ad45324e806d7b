"""The job running now, for code inside a job: :func:`get_current_job`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from myrq.job import Job


class _Lazy:
    """The current job, built on first use (most jobs never ask for it)."""

    __slots__ = ("_job", "_make")

    def __init__(self, make: Callable[[], Job[Any]]) -> None:
        self._make = make
        self._job: Job[Any] | None = None

    def get(self) -> Job[Any]:
        if self._job is None:
            self._job = self._make()
        return self._job


_current: ContextVar[_Lazy | None] = ContextVar("myrq_current_job", default=None)


def get_current_job() -> Job[Any] | None:
    """The :class:`~myrq.Job` whose function is running in this context, or None.

    Inside a job (in process, or in an isolated job's child) it is that job,
    its record as claimed: update ``job.meta`` and call ``job.save_meta()`` to
    report progress. Outside a job: None.
    """
    lazy = _current.get()
    return None if lazy is None else lazy.get()


def set_current(make: Callable[[], Job[Any]]) -> Token[_Lazy | None]:
    """Make the job ``make()`` builds the current one; undo with :func:`reset_current`."""
    return _current.set(_Lazy(make))


def reset_current(token: Token[_Lazy | None]) -> None:
    # ValueError: an abandoned job's coroutine, closed from elsewhere at exit.
    with contextlib.suppress(ValueError):
        _current.reset(token)


@contextmanager
def current_job(make: Callable[[], Job[Any]]) -> Iterator[None]:
    """Make the job ``make()`` builds (when asked) the current one inside (the worker uses it)."""
    token = _current.set(_Lazy(make))
    try:
        yield
    finally:
        # ValueError: an abandoned job's coroutine, closed from elsewhere at exit.
        with contextlib.suppress(ValueError):
            _current.reset(token)
