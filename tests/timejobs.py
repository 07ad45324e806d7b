"""Job functions for the time tests: failing a set number of times, asking for retries."""

from __future__ import annotations

import os
import time
from pathlib import Path

import myrq


def _count(marker: str) -> int:
    """How many times this has run for ``marker`` (a file in a temporary directory)."""
    path = Path(marker)
    n = int(path.read_text() or 0) + 1 if path.exists() else 1
    path.write_text(str(n))
    return n


def flaky(marker: str, fails: int) -> int:
    """Raise ValueError the first ``fails`` times, then return the run number."""
    n = _count(marker)
    if n <= fails:
        raise ValueError(f"run {n} fails")
    return n


def raise_named(marker: str, kind: str) -> None:
    _count(marker)
    raise {"OSError": OSError, "KeyError": KeyError, "ValueError": ValueError}[kind](kind)


def later_then_done(marker: str, delay: float, times: int) -> int:
    n = _count(marker)
    if n <= times:
        raise myrq.RetryLater(delay, f"not ready on run {n}")
    return n


def give_up(marker: str) -> None:
    _count(marker)
    raise myrq.NoRetry("this cannot work")


def stamp(path: str) -> float:
    """Append when it ran (and where) to ``path``; return the time."""
    now = time.time()
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"{now} {os.getpid()}\n")
    return now


@myrq.task(retry=myrq.Retry(max=2))
def task_with_retry(marker: str) -> int:
    return flaky(marker, 2)


def stamp_token(path: str, token: str) -> str:
    """Append ``token`` and the time it ran to ``path`` (one line per run)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"{token} {time.time()}\n")
    return token
