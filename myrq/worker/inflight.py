"""A concurrent worker's jobs in flight, and the clean-ups around them (see
:mod:`myrq.worker.concurrent`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from dataclasses import dataclass, field

from myrq.backends import Delivery
from myrq.codec import ErrorInfo
from myrq.exceptions import JobStopped, JobTimeout
from myrq.status import JobStatus
from myrq.worker.runner import TIMEOUT_TYPE, Call, Outcome
from myrq.worker.shutdown import ShutdownNow
from myrq.worker.threads import clear_pending

logger = logging.getLogger("myrq.worker")


@dataclass
class Running:
    """A job in flight: its claim, its task or thread, and why it was interrupted."""

    delivery: Delivery
    call: Call
    started: float
    task: asyncio.Task[Outcome | None] | None = None
    thread: int | None = None  # the thread's ident, once it runs
    reason: str | None = None  # "timeout", "stop" or "shutdown" once interrupted
    timer: asyncio.TimerHandle | None = None
    done: bool = False
    #: Held while ``thread`` is read to interrupt it, and while the thread clears it
    #: on its way out: an ident is never used once its thread is gone (idents are reused).
    lock: threading.Lock = field(default_factory=threading.Lock)


def forget_thread(run: Running) -> None:
    """In the job's thread, on its way out: no interrupt is sent after this, and one sent
    just before (still pending) is dropped, so none escapes the thread."""
    for _ in range(3):  # an interrupt may land between two of these bytecodes
        try:
            with run.lock:
                run.thread = None
                clear_pending(threading.get_ident())
            return
        except (JobTimeout, JobStopped, ShutdownNow):
            continue


def cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel tasks still running (abandoned ones that swallow cancellation), waiting 1 s at most.

    ``asyncio.run`` would wait for them as long as they take.
    """
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.wait(pending, timeout=1.0))
    left = [t for t in pending if not t.done()]
    if left:
        logger.warning("%d abandoned job task(s) still ran when the worker stopped", len(left))
        loop.set_exception_handler(lambda _loop, _context: None)  # no "destroyed" noise
        for task in left:  # closed here, not by the garbage collector at some odd moment
            with contextlib.suppress(BaseException):
                task.get_coro().close()
    loop.run_until_complete(loop.shutdown_asyncgens())


def timed_out(call: Call, elapsed: float, exc: BaseException | None) -> Outcome:
    message = f"job exceeded its timeout of {call.timeout:g}s and was stopped"
    error = ErrorInfo(TIMEOUT_TYPE, message, "", types=(TIMEOUT_TYPE, "builtins.BaseException"))
    return Outcome(
        JobStatus.TIMEOUT, error=error, func_name=call.func_name, elapsed=elapsed, exc=exc
    )
