"""Async job functions for the concurrency tests."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import myrq


async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


async def async_sleep(seconds: float, value: Any = None) -> Any:
    await asyncio.sleep(seconds)
    return value


async def async_fail(message: str) -> None:
    await asyncio.sleep(0)
    raise ValueError(message)


def returns_coroutine() -> Any:
    return async_add(1, 2)


def sync_sleep(seconds: float, value: Any = None) -> Any:
    time.sleep(seconds)
    return value


def busy_loop(seconds: float) -> str:
    """Pure Python for ``seconds`` (an async exception can interrupt it)."""
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        n += 1
    return "done"


def thread_name() -> str:
    return threading.current_thread().name


@myrq.task(queue="tasks", retry=2, timeout="30s")
async def async_task(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a * b


@myrq.task
def plain_task(text: str) -> str:
    return text.upper()


@myrq.task(name="tests.asyncjobs.old_name")
def renamed_task(x: int) -> int:
    return x + 1


async def async_span(path: str, token: str, seconds: float) -> str:
    """Append ``token start end``: when this run began and ended."""
    start = time.time()
    await asyncio.sleep(seconds)
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"{token} {start} {time.time()}\n")
    return token


def thread_span(path: str, token: str, seconds: float) -> str:
    start = time.time()
    time.sleep(seconds)
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"{token} {start} {time.time()}\n")
    return token


async def async_swallow(seconds: float) -> str:
    """Catch its own cancellation: the worker must still record its timeout."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            continue
    return "swallowed"


async def async_pid(path: str, seconds: float) -> str:
    with open(path, "w", encoding="utf-8") as f:
        f.write("started")
    await asyncio.sleep(seconds)
    return "done"


def thread_pid(path: str, seconds: float) -> str:
    with open(path, "w", encoding="utf-8") as f:
        f.write("started")
    busy_loop(seconds)
    return "done"


async def async_current() -> str | None:
    job = myrq.get_current_job()
    return None if job is None else job.id
