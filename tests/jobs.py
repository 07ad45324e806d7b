"""Job functions the tests enqueue (module level, so workers can import them)."""

from __future__ import annotations

import datetime
import multiprocessing
import os
import signal
import sys
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


# -- for the isolation tests: a child killed while reporting, processes left behind ----


def big_result(megabytes: int) -> str:
    return "x" * (megabytes * 1024 * 1024)


def _only_isolated(test_pid: int) -> None:
    # These jobs break the process they run in: never the test's own.
    if os.getpid() == test_pid:
        raise RuntimeError("this job must run in an isolated child")


def big_result_killed_halfway(megabytes: int, test_pid: int) -> str:
    """Returns a large result, but its process is SIGKILLed halfway through writing it.

    Stands in for the OOM killer: ``os.write``, which the child reports with, is
    replaced (in the child only) by one that kills the process once half the
    result has gone out.
    """
    _only_isolated(test_pid)
    size = megabytes * 1024 * 1024
    real_write, written = os.write, 0

    def write(fd: int, data: Any) -> int:
        nonlocal written
        if written >= size // 2:
            os.kill(os.getpid(), signal.SIGKILL)
        n = real_write(fd, data[: size // 2 - written])
        written += n
        return n

    os.write = write  # type: ignore[assignment]
    return "x" * size


def killed_after_reporting(test_pid: int) -> str:
    """Returns, but its process is SIGKILLed instead of exiting once it has reported."""
    _only_isolated(test_pid)
    os._exit = lambda code: os.kill(os.getpid(), signal.SIGKILL)  # type: ignore[assignment]
    return "reported"


def leave_a_process_behind(pid_file: str, how: str, seconds: float, outcome: str) -> str:
    """Starts a process that outlives this job (holding all its fds) and ends at once."""
    if how == "fork":
        helper = os.fork()
        if helper == 0:
            try:
                time.sleep(seconds)
            finally:
                os._exit(0)
    else:
        process = multiprocessing.get_context("fork").Process(target=time.sleep, args=(seconds,))
        process.start()  # and never joined
        assert process.pid is not None
        helper = process.pid
    Path(pid_file).write_text(str(helper))
    if outcome == "raise":
        raise ValueError("left a process behind")
    if outcome == "exit":
        os._exit(3)
    return "returned"


def orphan_sleeper(pid_file: str, seconds: float) -> str:
    """Sleeps with the parent-death signal switched off: it survives its worker's death."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, 0, 0, 0, 0)  # PR_SET_PDEATHSIG, none
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(seconds)
    return "slept"


def fetch(url: str, timeout: float = 10) -> str:
    """Has a parameter named like a job option (``timeout``): ``job_timeout`` is not it."""
    return f"{url} {timeout:g}"


def takes_job_timeout(job_timeout: int) -> int:
    """Has a parameter named like one of enqueue()'s option keywords."""
    return job_timeout
