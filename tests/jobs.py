"""Job functions the tests enqueue (module level, so workers can import them)."""

from __future__ import annotations

import datetime
import os
import time
from pathlib import Path
from typing import Any


def add(a: int, b: int) -> int:
    return a + b


def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs}


def fail(message: str) -> None:
    raise ValueError(message)


def nap(seconds: float, value: Any = None) -> Any:
    time.sleep(seconds)
    return value


def swallow_everything(seconds: float) -> str:
    try:
        time.sleep(seconds)
    except Exception:
        return "swallowed"
    return "slept"


def exit_job(code: int) -> None:
    raise SystemExit(code)


def interrupt_job() -> None:
    raise KeyboardInterrupt


def return_set() -> set[int]:
    return {1, 2}


def next_day(day: datetime.date) -> datetime.date:
    return day + datetime.timedelta(days=1)


def append_token(path: str, token: str) -> str:
    with open(path, "a", encoding="utf-8") as f:
        f.write(token + "\n")
    return token


def slow_on_first_attempt(marker: str, seconds: float) -> str:
    """Sleeps ``seconds`` the first time (so its worker can be killed), returns at once after."""
    p = Path(marker)
    if not p.exists():
        p.write_text(str(os.getpid()))
        time.sleep(seconds)
        return "first"
    return "second"


#: Set by a test to the broker its in-process worker uses.
BROKER: Any = None


def delete_myself(job_id: str) -> str:
    BROKER.delete(job_id)
    return "deleted"


class Maths:
    @staticmethod
    def double(x: int) -> int:
        return 2 * x

    @classmethod
    def triple(cls, x: int) -> int:
        return 3 * x

    def square(self, x: int) -> int:
        return x * x


# -- for the allow-list, isolation and bad-exception tests ----------------------------

# Re-exported on purpose: the allow-list must refuse tests.jobs.system.
from os import system  # noqa: E402, F401


def segfault() -> None:
    import ctypes

    ctypes.string_at(0)


def hard_exit(code: int) -> None:
    os._exit(code)


def hog_memory(megabytes: int) -> int:
    block = bytearray(megabytes * 1024 * 1024)
    return len(block)


def pid() -> int:
    return os.getpid()


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ is broken too")

    def __repr__(self) -> str:
        raise RuntimeError("__repr__ is broken too")


def raise_unprintable() -> None:
    raise UnprintableError


def return_unencodable() -> object:
    return object()


#: Set by a test to the worker its in-process jobs may stop.
WORKER: Any = None


def stop_worker() -> str:
    WORKER.request_stop()
    return "stopping"


def statuses(ids: list[str]) -> list[str]:
    """The stored status of each job, as this job sees it while running."""
    return [(BROKER.get(i) or {}).get("status", b"?").decode() for i in ids]
