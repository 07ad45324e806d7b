"""Job functions and callbacks for the workflow tests."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import myrq

#: What callbacks and exception handlers saw, in this process (tests reset it).
CALLS: list[tuple[Any, ...]] = []


def add(a: int, b: int) -> int:
    return a + b


def boom(message: str = "boom") -> None:
    raise ValueError(message)


def append_to(path: str, token: str) -> str:
    """Append ``token`` to a file: the order jobs ran in."""
    with open(path, "a") as f:
        f.write(token + "\n")
    return token


def report_progress(steps: int) -> int:
    job = myrq.get_current_job()
    assert job is not None
    for n in range(1, steps + 1):
        job.meta["progress"] = n
        job.save_meta()
    return job.meta["progress"]


def whoami() -> str | None:
    job = myrq.get_current_job()
    return None if job is None else job.id


def sleep_then(path: str, seconds: float) -> str:
    """Write our pid to ``path``, then sleep (to be stopped)."""
    Path(path).write_text(str(os.getpid()))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.01)
    return "slept"


def swallow_everything(path: str, seconds: float) -> str:
    """Catch Exception all the time: a stop must still end it."""
    Path(path).write_text(str(os.getpid()))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(0.01)
        except Exception:
            continue
    return "slept"


# -- callbacks ---------------------------------------------------------------------


def on_success(job: myrq.Job, connection: object, result: Any) -> None:
    CALLS.append(("success", job.id, result, job.status.value))


def on_failure(
    job: myrq.Job, connection: object, exc_type: type, exc: BaseException, tb: Any
) -> None:
    CALLS.append(("failure", job.id, exc_type.__name__, str(exc), tb is not None))


def on_stopped(job: myrq.Job, connection: object) -> None:
    CALLS.append(("stopped", job.id))


def broken_callback(job: myrq.Job, connection: object, result: Any) -> None:
    raise RuntimeError("callback broke")


def slow_callback(job: myrq.Job, connection: object, result: Any) -> None:
    time.sleep(5)


def handler_stop(job: myrq.Job, exc_type: type, exc: BaseException, tb: Any) -> bool:
    CALLS.append(("handler1", job.id, exc_type.__name__))
    return False


def handler_never(job: myrq.Job, exc_type: type, exc: BaseException, tb: Any) -> None:
    CALLS.append(("handler2", job.id))


def takes_meta(meta: dict[str, int]) -> None:
    """A parameter named like a job option."""


def fetch_in_callback(job: myrq.Job, connection: object, result: Any) -> None:
    """A callback that reads the job back: its outcome is recorded already."""
    again = myrq.Job.fetch(job.id, broker=job.broker)
    CALLS.append(("fetched", job.id, again.status.value, again.result))


def handler_no_retry(job: myrq.Job, exc_type: type, exc: BaseException, tb: Any) -> None:
    raise myrq.NoRetry("not worth another try")


def stamp_span(path: str, token: str, seconds: float) -> str:
    """Append ``token start end`` to ``path``: when this run began and ended."""
    start = time.time()
    time.sleep(seconds)
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"{token} {start} {time.time()}\n")
    return token


def progress_callback(job: myrq.Job, connection: object, result: Any) -> None:
    CALLS.append(("progress", job.id, job.meta.get("progress")))
