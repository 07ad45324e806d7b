"""Job functions of tests/test_eager.py and tests/test_transaction.py (run in the test's process)."""

from __future__ import annotations

import threading
import time
from typing import Any

import myrq

#: What the jobs and callbacks saw, in order (eager jobs run in the test's process).
seen: list[Any] = []
_runs: dict[str, int] = {}


def add(a: int, b: int) -> int:
    seen.append(("add", a, b))
    return a + b


def divide(a: float, b: float) -> float:
    return a / b


def flaky(key: str, fails: int) -> int:
    """Raises ConnectionError the first ``fails`` times it runs for ``key``; returns the run."""
    _runs[key] = _runs.get(key, 0) + 1
    if _runs[key] <= fails:
        raise ConnectionError(f"run {_runs[key]} of {key} failed")
    return _runs[key]


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def thread_name(tag: str) -> str:
    seen.append(tag)
    return threading.current_thread().name


def enqueue_child(queue_url: str, value: int) -> str:
    """Enqueues, from inside a job, a job that depends on this one."""
    current = myrq.get_current_job()
    assert current is not None
    queue = myrq.Queue(current.origin, broker=queue_url, eager=myrq.Eager(allow=["tests"]))
    child = queue.enqueue(add, value, 1, depends_on=current)
    seen.append(("child", child.id, child.get_status().value))
    return child.id


def nested(queue_url: str) -> int:
    """Enqueues an eager job from inside a job and returns its result."""
    queue = myrq.Queue("inner", broker=queue_url, eager=myrq.Eager(allow=["tests"]))
    return int(queue.enqueue(add, 20, 22).result)


def enqueue_same_key(queue_url: str) -> str:
    """Enqueues, from inside a job of concurrency key "k", another job of that key."""
    current = myrq.get_current_job()
    assert current is not None
    queue = myrq.Queue(current.origin, broker=queue_url, eager=myrq.Eager(allow=["tests"]))
    inner = queue.with_options(concurrency_key="k").enqueue(add, 2, 3)
    seen.append(("inner", inner.id, inner.get_status().value))
    return inner.id


#: Set by hold() once it runs; hold() returns once ``release`` is set.
started = threading.Event()
release = threading.Event()


def hold() -> str:
    started.set()
    assert release.wait(30)
    return "held"


def on_success(job: Any, connection: object, result: Any) -> None:
    seen.append(("on_success", job.id, result))


def on_failure(job: Any, connection: object, *exc_info: Any) -> None:
    seen.append(("on_failure", job.id, type(exc_info[1]).__name__))
