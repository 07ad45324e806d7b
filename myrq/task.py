"""``@myrq.task``: register a job function, give it defaults, and ``.delay()`` it, typed.

>>> import myrq
>>> @myrq.task
... def send_welcome(user_id: int) -> str: ...
>>> @myrq.task(queue="sync", retry=myrq.Retry(max=3, interval=10), timeout="5m")
... def sync_account(account_id: int) -> None: ...

The decorated function becomes a :class:`Task`: calling it calls the function,
as before; ``send_welcome.delay(7)`` enqueues it on its queue (``queue=``,
default ``"default"``, on the configured broker) and returns a ``Job[str]``;
type checkers check ``delay``'s arguments against the function's signature.
The options (those of :meth:`myrq.Queue.enqueue_call`) are the defaults of
the function's jobs wherever it is enqueued; an option given at enqueue wins.

Registering also allows workers of this process to run the function without
its module being allowed (the worker must import the module: ``myrq worker
--import app.tasks``). ``name=`` registers it under another name (for a
function moved to another module: the name its queued jobs carry).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from myrq.exceptions import InvalidJobError
from myrq.ids import validate_queue_name
from myrq.registry import registry

if TYPE_CHECKING:
    from myrq.job import Job
    from myrq.queue import Queue

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class Task(Generic[P, R]):
    """A registered job function: call it as the function, or :meth:`delay` it."""

    def __init__(
        self, func: Callable[P, R], *, queue: str | None = None, name: str | None = None
    ) -> None:
        self.func = func
        self.queue_name = validate_queue_name(queue) if queue is not None else "default"
        self.name = name
        functools.update_wrapper(self, func)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        name = getattr(self.func, "__qualname__", "?")
        return f"<Task {self.__module__}.{name} queue={self.queue_name!r}>"

    @property
    def queue(self) -> Queue:
        """The task's queue on the configured broker (made on each access: cheap)."""
        from myrq.queue import Queue  # noqa: PLC0415 - the queue imports tasks' registry

        return Queue(self.queue_name)

    @overload
    def delay(
        self: Task[P, Coroutine[Any, Any, T]], *args: P.args, **kwargs: P.kwargs
    ) -> Job[T]: ...
    @overload
    def delay(self, *args: P.args, **kwargs: P.kwargs) -> Job[R]: ...
    def delay(self, *args: Any, **kwargs: Any) -> Job[Any]:
        """Enqueue ``func(*args, **kwargs)`` on the task's queue with its options.

        Every keyword goes to the function: for job options, use
        ``task.queue.options(...).enqueue(task, ...)`` or ``enqueue_call``.
        """
        target = self.name or self
        return self.queue.enqueue_call(target, args=args, kwargs=kwargs)


@overload
def task(func: Callable[P, R]) -> Task[P, R]: ...
@overload
def task(
    func: None = None, *, queue: str | None = None, name: str | None = None, **options: Any
) -> Callable[[Callable[P, R]], Task[P, R]]: ...
def task(
    func: Callable[P, R] | None = None,
    *,
    queue: str | None = None,
    name: str | None = None,
    **options: Any,
) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
    """Decorator: see the module docstring.

    (Not ``@myrq.job``: ``myrq.job`` is the module that defines :class:`~myrq.Job`.)
    """

    def wrap(f: Callable[P, R]) -> Task[P, R]:
        if isinstance(f, Task):
            raise InvalidJobError(f"{f!r} is a task already: decorate the function once")
        registry.register(f, name=name, **options)
        return Task(f, queue=queue, name=name)

    return wrap(func) if func is not None else wrap
