"""Job functions that the examples in docs/*.md enqueue.

Job functions must live in an importable module (a worker imports them by
name), so the documentation's examples use these. The examples run their
worker in the same process as the producer, so the counters below, kept in
module-level dicts, see every run. (With worker processes, count in a file or
in your database instead.)
"""

from __future__ import annotations

import asyncio
import threading
import time
from types import TracebackType
from typing import Any

from myrq import Job, NoRetry, Retry, RetryLater, get_current_job, task

#: How many times each ``key`` of :func:`flaky` and :func:`export_ready` has run.
RUNS: dict[str, int] = {}
#: When each ``name`` of :func:`tick` ran (``time.time()``, one entry per run).
TICKS: dict[str, list[float]] = {}


def _run(key: str) -> int:
    RUNS[key] = RUNS.get(key, 0) + 1
    return RUNS[key]


def send_welcome(email: str) -> str:
    """Pretend to send a welcome mail."""
    return f"welcome mail sent to {email}"


def add(a: int, b: int) -> int:
    return a + b


def divide(a: float, b: float) -> float:
    return a / b


def flaky(key: str, fails: int) -> int:
    """Raise ConnectionError the first ``fails`` times it runs for ``key``; then return the run."""
    n = _run(key)
    if n <= fails:
        raise ConnectionError(f"run {n}: the mail server did not answer")
    return n


def charge(order_id: str) -> None:
    """A failure that no retry can mend."""
    raise ValueError(f"order {order_id}: card declined")


def check_address(email: str) -> str:
    """End the job ``failed`` at once, whatever its retry policy, for an address without ``@``."""
    if "@" not in email:
        raise NoRetry(f"{email!r} is not an e-mail address")
    return email


def export_ready(key: str, not_before_run: int) -> int:
    """Ask to be run again in 0.2 s until run ``not_before_run``; then return the run."""
    n = _run(key)
    if n < not_before_run:
        raise RetryLater("200ms", f"export {key} not ready on run {n}")
    return n


def tick(name: str) -> int:
    """Note when it ran; return how many times it ran for ``name``."""
    TICKS.setdefault(name, []).append(time.time())
    return len(TICKS[name])


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def report(day: str, retry: bool = False) -> str:
    """A function with a parameter named like a job option (``retry``)."""
    return f"report for {day}" + (" (second attempt)" if retry else "")


def fetch(url: str, timeout: float = 10) -> str:
    """A function with a parameter named like the option ``timeout``."""
    return f"fetched {url} within {timeout:g}s"


@task(retry=Retry(max=4, interval=[1, 10, 60]), timeout="5m")
def sync_account(account_id: str) -> str:
    """A task whose jobs get a retry policy and a timeout unless the producer gives others."""
    return f"synced {account_id}"


# -- workflows: dependencies, progress, callbacks (docs/dependencies.md and the next pages) ----

#: The order in which :func:`step` ran, one name per run.
STEPS: list[str] = []
#: What the callbacks below were called with, one tuple per call, in order.
CALLBACKS: list[tuple[Any, ...]] = []


def step(name: str) -> str:
    """Note that step ``name`` ran (in :data:`STEPS`); return the name."""
    STEPS.append(name)
    return name


def total_of_dependencies() -> int:
    """Add up the results of the jobs this job depends on (a fan-in)."""
    job = get_current_job()
    assert job is not None  # always set while a job runs
    return sum(parent.result or 0 for parent in job.dependencies())


def resize_images(count: int, pause: float = 0.0) -> int:
    """Resize ``count`` images, saving the progress in the job's meta after each one."""
    job = get_current_job()
    assert job is not None
    for done in range(1, count + 1):
        time.sleep(pause)  # the work of one image
        job.meta["progress"] = {"done": done, "total": count}
        job.save_meta()
    return count


def mail_sent(job: Job[Any], connection: object, result: Any) -> None:
    """``on_success``: called with the job, the worker's broker and the result."""
    CALLBACKS.append(("success", job.id, result))


def mail_failed(
    job: Job[Any],
    connection: object,
    exc_type: type[BaseException],
    exc_value: BaseException,
    traceback: TracebackType | None,
) -> None:
    """``on_failure``: called with the job, the broker and the exception, as RQ calls it."""
    CALLBACKS.append(("failure", job.id, exc_type.__name__, str(exc_value)))


def mail_stopped(job: Job[Any], connection: object) -> None:
    """``on_stopped``: called with the job and the broker."""
    CALLBACKS.append(("stopped", job.id))


def audit(job: Job[Any], connection: object, result: Any) -> None:
    """A callback that fails: its error is recorded on the job, whose outcome stands."""
    raise RuntimeError("the audit log is unavailable")


def slow_audit(job: Job[Any], connection: object, result: Any) -> None:
    """A callback that takes longer than its own timeout."""
    time.sleep(5)


# -- many jobs at once (docs/concurrency.md) ------------------------------------------

#: Each run of :func:`import_catalog`: (product, start, end, jobs on its queue at its start).
IMPORTS: list[tuple[str, float, float, int]] = []


async def fetch_title(url: str) -> str:
    """An I/O-bound job: wait 0.2 s for the network, as an ``async def`` job."""
    await asyncio.sleep(0.2)
    return f"title of {url}"


def thumbnail(path: str) -> str:
    """A sync job that waits 0.2 s (for a disk, a service); returns the thread it ran in."""
    time.sleep(0.2)
    return threading.current_thread().name


def crunch(seconds: float) -> int:
    """Pure-Python work for ``seconds``: an exception raised in its thread stops it at once."""
    deadline = time.monotonic() + seconds
    loops = 0
    while time.monotonic() < deadline:
        loops += 1
    return loops


async def import_catalog(product: str, seconds: float) -> str:
    """Import one product's catalog (wait ``seconds``); note the run in :data:`IMPORTS`."""
    job = get_current_job()
    assert job is not None
    waiting = job.broker.queue_length(job.origin)
    start = time.monotonic()
    await asyncio.sleep(seconds)
    IMPORTS.append((product, start, time.monotonic(), waiting))
    return product


# -- typed enqueue and tasks (docs/tasks-and-typing.md) ---------------------------------


@task
def send_receipt(order_id: int, email: str) -> str:
    """A task with no options: its jobs go to the queue ``default``."""
    return f"receipt for order {order_id} sent to {email}"


@task(queue="reports", timeout="10m", retry=2)
async def monthly_report(month: str, *, pages: int = 1) -> dict[str, int]:
    """An async task with a queue and options of its own."""
    await asyncio.sleep(0)
    return {"month": int(month[-2:]), "pages": pages}


@task(name="billing.tasks.make_invoice")
def make_invoice(order_id: int) -> str:
    """Moved here from ``billing.tasks``: jobs queued under the old name still run it."""
    return f"invoice {order_id}"
