"""What runs in each process of a :class:`~myrq.worker.pool.WorkerPool`: one ordinary Worker.

The supervisor forks (:func:`fork_child`), with SIGTERM, SIGINT and SIGCHLD
blocked; the child, in :func:`run_child`:

1. drops what it inherited from the supervisor: its signal handlers, its
   signal wakeup pipe, the status pipes of the other children;
2. leads a process group of its own, so that a terminal's Ctrl-C reaches only
   the supervisor, which passes it on once (not twice: a second signal would
   stop the job at once);
3. arranges to stop when the supervisor dies. On Linux the kernel sends it
   SIGTERM then (``PR_SET_PDEATHSIG``): the same graceful stop as a SIGTERM the
   supervisor passes on, and, if one was passed on already, the second signal
   that stops the job now and puts it back. Elsewhere a thread compares the
   parent pid once a second and sends the same SIGTERM. A supervisor that died
   before this point makes the child exit at once;
4. builds ``Worker(queues, broker=..., name="<pool name>-<slot>.<pid>",
   **options)`` itself, so its broker connection is its own, and runs
   ``work(burst, max_jobs)``. Until the worker has installed its own signal
   handlers, a SIGTERM or SIGINT makes the child exit at once: it holds no job;
5. writes one status byte to its pipe and leaves with ``os._exit``, so that
   none of the supervisor's ``atexit`` handlers or finalizers run here:
   :data:`DONE` (stopped by a signal, or, in burst mode, the queues are empty)
   or :data:`RECYCLE` (it ran ``max_jobs`` jobs and wants a successor). A child
   that ends without writing one (a crash, a signal, ``os._exit`` in a job)
   died, whatever its exit code.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from myrq.worker.worker import Worker

logger = logging.getLogger(__name__)

#: Status bytes a child writes to its pipe just before it exits.
DONE = b"D"
RECYCLE = b"R"
#: Signals blocked around the fork, until the child has its own handlers.
HELD = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGCHLD})
#: Where the kernel cannot signal a child when its parent dies: how often the
#: child compares its parent pid (seconds).
PARENT_CHECK_EVERY = 1.0
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ChildSpec:
    """Everything a child needs to run its worker; copied into it by the fork."""

    slot: int  # 1..N: which of the pool's processes this is
    base_name: str  # the child's worker is named f"{base_name}-{slot}.{pid}"
    queues: tuple[str, ...]
    broker: Any  # as the pool was given it: a URL, a Broker, or None (configured)
    options: dict[str, Any] = field(default_factory=dict)  # the Worker's other options
    burst: bool = False
    max_jobs: int | None = None
    supervisor: int = 0  # the supervisor's pid


def fork_child(spec: ChildSpec, inherited: Sequence[int]) -> tuple[int, int]:
    """Fork a child that runs ``spec``; return its pid and the read end of its status pipe.

    ``inherited``: the supervisor's file descriptors the child must close.
    """
    read_fd, write_fd = os.pipe()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, HELD)
    try:
        with warnings.catch_warnings():
            # Python 3.12+ warns about forking a process that has threads; the
            # supervisor starts none (WorkerPool.run logs it if its caller has some).
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
    except BaseException:
        os.close(read_fd)
        os.close(write_fd)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        raise
    if pid == 0:  # pragma: no cover - runs in the child; its behaviour is tested
        run_child(spec, write_fd, [*inherited, read_fd], mask)
    os.close(write_fd)
    os.set_blocking(read_fd, False)
    with contextlib.suppress(OSError):  # the child does it too; whichever runs first
        os.setpgid(pid, pid)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return pid, read_fd


def run_child(
    spec: ChildSpec, status_fd: int, inherited: Sequence[int], mask: Iterable[int]
) -> NoReturn:
    """The child's whole life, right after the fork; see the module docstring."""
    code = 1  # unless the worker returns
    status = b""
    try:
        _leave_the_supervisor(spec, status_fd, inherited, mask)
        name = f"{spec.base_name}-{spec.slot}.{os.getpid()}"
        worker = Worker(spec.queues, broker=spec.broker, name=name, **spec.options)
        processed = worker.work(burst=spec.burst, max_jobs=spec.max_jobs)
        for sig in (signal.SIGTERM, signal.SIGINT):  # nothing left to stop
            signal.signal(sig, signal.SIG_IGN)
        recycle = spec.max_jobs is not None and processed >= spec.max_jobs
        status, code = (RECYCLE if recycle else DONE), 0
    except BaseException:
        logger.exception("worker process %d of the pool (pid %d) failed", spec.slot, os.getpid())
    finally:
        _exit(status_fd, status, code)


def _leave_the_supervisor(
    spec: ChildSpec, status_fd: int, inherited: Sequence[int], mask: Iterable[int]
) -> None:
    """Steps 1-3 of the module docstring; signals are blocked until the end of it."""
    with contextlib.suppress(ValueError):
        signal.set_wakeup_fd(-1)
    stop_now = functools.partial(_stop_before_start, status_fd)
    signal.signal(signal.SIGTERM, stop_now)
    signal.signal(signal.SIGINT, stop_now)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for fd in inherited:
        with contextlib.suppress(OSError):
            os.close(fd)
    with contextlib.suppress(OSError):  # the supervisor does it too; whichever runs first
        os.setpgid(0, 0)
    set_parent_death_signal = parent_death_signal()
    if set_parent_death_signal is not None:
        set_parent_death_signal()
    else:
        threading.Thread(
            target=watch_parent,
            args=(spec.supervisor, PARENT_CHECK_EVERY, _stop_self),
            name="myrq-pool-parent-watch",
            daemon=True,
        ).start()
    if os.getppid() != spec.supervisor:  # it died before the death signal was armed
        _exit(status_fd, DONE, 0)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _stop_before_start(status_fd: int, signum: int, frame: object) -> None:
    """SIGTERM/SIGINT before the worker handles them: it holds no job, so just leave."""
    _exit(status_fd, DONE, 0)


def _stop_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


def watch_parent(
    parent: int,
    interval: float,
    orphaned: Callable[[], None],
    halt: threading.Event | None = None,
) -> None:
    """Call ``orphaned()`` once the process's parent is no longer ``parent``.

    For platforms without ``PR_SET_PDEATHSIG``: an orphan is re-parented (to
    init or a subreaper), so its parent pid changes when the supervisor dies.
    """
    halt = halt or threading.Event()
    while not halt.wait(interval):
        if os.getppid() != parent:
            orphaned()
            return


@functools.cache
def parent_death_signal() -> Callable[[], object] | None:
    """On Linux, a call that has the kernel send the caller SIGTERM when its parent dies.

    The parent here is the thread that forked: the supervisor's main thread.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes  # noqa: PLC0415 - only where it is used, once

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (ImportError, OSError, AttributeError):  # pragma: no cover - a libc without prctl
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return functools.partial(prctl, _PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _exit(status_fd: int, status: bytes, code: int) -> NoReturn:
    """Tell the supervisor how this child ended, flush the logs, and leave without cleanup."""
    try:
        if status:
            os.write(status_fd, status)
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
    except BaseException:  # noqa: S110 - nothing left to tell anyone
        pass
    finally:
        os._exit(code)


def describe_exit(status: int, report: bytes) -> str:
    """How a child ended, for the log: ``was killed by SIGKILL``, ``exited with code 3``."""
    if status == -1:
        return "ended (its exit status was lost)"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"was killed by {name}"
    code = os.WEXITSTATUS(status)
    if code == 0 and not report:
        return "exited with code 0 before its worker returned (os._exit in a job?)"
    if code == 0:
        return "stopped" if report == DONE else "exited"
    return f"exited with code {code}"
