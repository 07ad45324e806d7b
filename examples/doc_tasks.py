"""Job functions that the examples in docs/*.md enqueue.

Job functions must live in an importable module (a worker imports them by
name), so the documentation's examples use these. The examples run their
worker in the same process as the producer, so the counters below, kept in
module-level dicts, see every run. (With worker processes, count in a file or
in your database instead.)
"""

from __future__ import annotations

import time

from myrq import NoRetry, Retry, RetryLater, task

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
