"""Calling a job's function: plain functions, and ``async def`` ones on an event loop.

A worker that runs one job at a time runs an ``async def`` job with
:func:`asyncio.run` in its own thread, under the same timeout (the alarm's
exception unwinds the loop, which cancels the job's tasks). A sync function
that returns a coroutine fails its job with a clear error instead of leaving
the coroutine "never awaited".
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from myrq.task import Task


class CoroutineReturned(TypeError):
    """A sync job function returned an awaitable: it must be declared ``async def``."""


#: Results that are never awaitable: checked by type alone, the common case.
_PLAIN = frozenset({type(None), bool, int, float, str, bytes, list, dict, tuple})
#: Whether each function seen is ``async def`` (``inspect.iscoroutinefunction``
#: costs microseconds per job); weak keys, so a function can still go away.
_ASYNC: weakref.WeakKeyDictionary[Callable[..., Any], bool] = weakref.WeakKeyDictionary()


def is_async(func: Callable[..., Any]) -> bool:
    """Whether ``func`` is an ``async def`` function (remembered per function)."""
    try:
        return _ASYNC[func]
    except (KeyError, TypeError):  # TypeError: not weakly referable
        found = inspect.iscoroutinefunction(func)
    with contextlib.suppress(TypeError):
        _ASYNC[func] = found
    return found


def call_job(func: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> Any:
    """``func(*args, **kwargs)``, awaited to completion when ``func`` is ``async def``."""
    if isinstance(func, Task):
        func = func.func
    if is_async(func):
        return _run_coroutine(func(*args, **kwargs))
    result = func(*args, **kwargs)
    if type(result) not in _PLAIN and inspect.isawaitable(result):
        refuse_awaitable(func, result)
    return result


def _run_coroutine(coro: Any) -> Any:
    """Run ``coro`` to completion: here, or in a helper thread when this thread already
    runs an event loop (an eager enqueue from async code)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(1, thread_name_prefix="myrq-async-job") as pool:
        return pool.submit(asyncio.run, coro).result()


def refuse_awaitable(func: Callable[..., Any], result: Any) -> None:
    """Close a coroutine a sync function returned, and say what to do instead."""
    if inspect.iscoroutine(result):
        result.close()  # never awaited, and no warning about it
    name = getattr(func, "__qualname__", repr(func))
    raise CoroutineReturned(
        f"{name}() is not declared async def but returned {type(result).__name__}: the worker "
        "cannot know to await it. Declare the function async def (or return a plain value)"
    )
