"""Run one job in a forked child process, so that a crash fails the job only.

The worker forks; the child resolves the function, runs it, encodes the
result with the worker's serializer and writes one framed message to a pipe
(a header: ``R`` result or ``E`` ``ErrorInfo`` JSON, and the body's length;
then the body), then leaves with ``os._exit``. The parent reads the pipe (so
a large result cannot block the child) until the message is complete and
watches for the child's exit (a pidfd on Linux, else a short ``waitpid``
poll), never for EOF: a process the job left running (a ``multiprocessing``
helper, a pool not closed, a forked grandchild) holds the pipe open; the
parent neither waits for it nor kills it. Once the child has exited, what is
already in the pipe is read without blocking, and:

* a complete message from a child that exited with status 0: its outcome
  (a result, or the function raised, its result could not be encoded, or the
  allow-list refused it);
* anything else (no message, a truncated one, a child killed even after
  writing it: a segfault, ``os._exit``, the OOM killer, which picks children
  holding large results): ``ChildProcessDied`` with the signal or exit code;
* the timeout passed first: the child is SIGKILLed and the job ends ``timeout``.

The child ignores SIGINT/SIGTERM: shutdown is the parent's decision. It leads
a process group of its own, and when the job ends, however it ends (an
outcome, a timeout, a crash, a shutdown that will not wait), the parent kills
that whole group: processes the job started and left behind die with it
instead of running on as orphans beside a rerun (a job that must leave a
process running starts it in a session of its own, ``os.setsid``). When the
parent is told to stop now, the exception unwinds through
:func:`run_isolated`, which kills and reaps the child on the way out. With
``memory_limit``, the child's address space is capped (``RLIMIT_AS``), so a
runaway allocation raises MemoryError in the child instead of swapping the
machine.

A child must not outlive its worker, or a job would run beside its own rerun.
On Linux it gets SIGKILL when the worker dies (``PR_SET_PDEATHSIG``; if the
worker died during the fork, it exits at once). On every platform it also
kills itself a second after its timeout: ``ITIMER_REAL`` is armed, with
SIGALRM at its default action. What a job loses by it: SIGALRM and that timer
belong to the limit. ``signal.alarm``/``setitimer(ITIMER_REAL)`` in a job (or a
library's SIGALRM-based timeout) replaces or cancels it, a SIGALRM handler
turns it off, and a stray SIGALRM kills the job. The parent still SIGKILLs the
child at the timeout, so this matters only once the worker is gone. Neither
reaches processes the job starts itself (fork clears both); the process group
does, whenever the parent is alive to kill it.

Only the worker's main thread may call this: forking copies only the calling
thread, the child touches neither the broker connection nor the heartbeat, and
the parent-death signal follows the thread that forked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import select
import signal
import struct
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

from myrq.codec import ErrorInfo, safe_str
from myrq.exceptions import FunctionLookupError
from myrq.serializers import Serializer
from myrq.worker.calling import call_job
from myrq.worker.shutdown import ShutdownNow

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows, where fork is missing too
    resource = None  # type: ignore[assignment]

_READ_CHUNK = 1 << 16
#: The message's header: its kind (b"R" or b"E") and its body's length.
_HEADER = struct.Struct(">cQ")
#: The child kills itself this long after its timeout if nobody did.
_HARD_LIMIT_GRACE = 1.0
#: Without a pidfd, how often the parent looks for the child's exit (seconds).
_POLL_MIN, _POLL_MAX = 0.001, 0.05
#: Blocked from before the fork until the child has its own handlers (the
#: worker's must never run in it) and the parent can kill the child.
_HELD = {signal.SIGINT, signal.SIGTERM, signal.SIGALRM, signal.SIGHUP, signal.SIGQUIT}
_PR_SET_PDEATHSIG = 1


class ChildOutcome:
    """What a child reported: exactly one of result/error is set, or timed_out."""

    def __init__(
        self,
        result: bytes | None = None,
        error: ErrorInfo | None = None,
        timed_out: bool = False,
    ) -> None:
        self.result = result
        self.error = error
        self.timed_out = timed_out


def run_isolated(  # noqa: PLR0917 - one internal caller
    resolve: Callable[[], Callable[..., Any]],
    args: list[Any],
    kwargs: dict[str, Any],
    serializer: Serializer,
    timeout: float,
    memory_limit: int | None = None,
) -> ChildOutcome:
    """Run ``resolve()(*args, **kwargs)`` in a child process; see the module docstring."""
    setup = _ChildSetup(os.getpid(), _parent_death_signal(), timeout, memory_limit)
    read_fd, write_fd = os.pipe()
    setup.mask = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    try:
        with warnings.catch_warnings():
            # Python 3.12+ warns that forking a threaded process may deadlock the child
            # on a lock another thread held. The child runs only the job and never
            # takes the heartbeat's or the broker's locks.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
    except BaseException:
        os.close(read_fd)
        os.close(write_fd)
        signal.pthread_sigmask(signal.SIG_SETMASK, setup.mask)
        raise
    if pid == 0:  # pragma: no cover - runs in the child; its outcome is tested
        _child(read_fd, write_fd, setup, resolve, args, kwargs, serializer)
    with contextlib.suppress(OSError):  # the child does it too; whichever runs first
        os.setpgid(pid, pid)
    child = _Child(pid, read_fd)
    deadline = time.monotonic() + timeout
    try:
        os.close(write_fd)
        signal.pthread_sigmask(signal.SIG_SETMASK, setup.mask)  # a shutdown may land from here
        status = child.wait(deadline)
        if status is None:
            child.kill()
            return ChildOutcome(timed_out=True)
    except ShutdownNow:
        # A shutdown that will not wait, but the job may have returned already:
        # a child that exited 0 with its whole report has, and counts as returned.
        status = child.returned()
        if status is None:
            child.kill()
            raise
    except BaseException:
        child.kill()
        raise
    finally:
        child.kill_group()
        child.close()
    return child.outcome(status, deadline)


class _Child:
    """A forked child: its message as read so far, and its exit status once reaped."""

    def __init__(self, pid: int, read_fd: int) -> None:
        self.pid = pid
        self.read_fd = read_fd
        self.data = bytearray()
        self.eof = False
        self.status: int | None = None
        self.pidfd: int | None = None
        with contextlib.suppress(AttributeError, OSError):  # not Linux 5.3+: poll instead
            self.pidfd = os.pidfd_open(pid)

    def complete(self) -> bool:
        end = self._end()
        return end is not None and len(self.data) >= end

    def message(self) -> tuple[bytes, bytes] | None:
        """``(kind, body)`` once the message is complete and well formed."""
        end = self._end()
        if end is None or len(self.data) < end:
            return None
        return bytes(self.data[:1]), bytes(memoryview(self.data)[_HEADER.size : end])

    def _end(self) -> int | None:
        if len(self.data) < _HEADER.size:
            return None
        kind, length = _HEADER.unpack_from(self.data)
        return _HEADER.size + int(length) if kind in (b"R", b"E") else None

    def wait(self, deadline: float) -> int | None:
        """Read until the child has exited (its status) or the deadline passed (None)."""
        poll = _POLL_MIN
        while self._reaped() is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            fds = [] if self.eof or self.complete() else [self.read_fd]
            if self.pidfd is not None:
                fds.append(self.pidfd)
            else:
                remaining, poll = min(remaining, poll), min(poll * 2, _POLL_MAX)
            ready, _, _ = select.select(fds, [], [], remaining)
            if self.read_fd in ready:
                self._read()
        # Everything the child wrote is in the pipe now; whatever it left running
        # may hold the pipe open, so read only what is there.
        os.set_blocking(self.read_fd, False)
        with contextlib.suppress(BlockingIOError):
            while not self.eof and not self.complete():
                self._read()
        return self.status

    def _read(self) -> None:
        chunk = os.read(self.read_fd, _READ_CHUNK)
        self.data += chunk
        self.eof = not chunk

    def _reaped(self) -> int | None:
        if self.status is not None:
            return self.status  # reaped already: its pid may be someone else's now
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid:
            self.status = status
        return self.status

    def outcome(self, status: int, deadline: float) -> ChildOutcome:
        message = self.message()
        if message is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            kind, body = message
            if kind == b"R":
                return ChildOutcome(result=body)
            return ChildOutcome(error=ErrorInfo.from_bytes(body))
        hard_limit = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGALRM
        if hard_limit and message is None and time.monotonic() >= deadline:
            return ChildOutcome(timed_out=True)  # the parent was late: the child's own limit
        if message is not None:
            stage = "after it reported its outcome"
        elif self.data:
            stage = "while it reported its outcome"
        else:
            stage = "before it returned"
        return ChildOutcome(error=ErrorInfo("ChildProcessDied", _describe_exit(status, stage), ""))

    def kill(self) -> None:
        if self.status is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)  # not reaped yet: still ours
            with contextlib.suppress(ChildProcessError):
                self.status = os.waitpid(self.pid, 0)[1]

    def returned(self) -> int | None:
        """Without blocking: the exit status if the child exited 0 with its whole report."""
        with contextlib.suppress(OSError):
            os.set_blocking(self.read_fd, False)
            with contextlib.suppress(BlockingIOError):
                while not self.eof and not self.complete():
                    self._read()
        status = self._reaped()
        if status is not None and self.complete() and os.WIFEXITED(status):
            return status if os.WEXITSTATUS(status) == 0 else None
        return None

    def kill_group(self) -> None:
        """Kill what the job left running in its process group (the pgid stays taken
        while any member lives, so this never reaches a stranger)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def close(self) -> None:
        os.close(self.read_fd)
        if self.pidfd is not None:
            os.close(self.pidfd)


@dataclasses.dataclass
class _ChildSetup:
    """What the child does before the job: see the module docstring."""

    parent: int
    die_with_parent: Callable[[], object] | None
    timeout: float
    memory_limit: int | None
    mask: set[int | signal.Signals] = dataclasses.field(default_factory=set)  # to restore

    def apply(self) -> None:  # pragma: no cover - runs in the child
        with contextlib.suppress(OSError):
            os.setpgid(0, 0)  # a group of its own, so the parent can kill what it leaves
        if self.die_with_parent is not None:
            self.die_with_parent()
        if os.getppid() != self.parent:  # the worker died before that took effect
            os._exit(1)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.setitimer(signal.ITIMER_REAL, self.timeout + _HARD_LIMIT_GRACE)
        signal.pthread_sigmask(signal.SIG_SETMASK, self.mask)
        if self.memory_limit and resource is not None:
            resource.setrlimit(resource.RLIMIT_AS, (self.memory_limit, self.memory_limit))


def _child(  # noqa: PLR0917 - one internal caller
    read_fd: int,
    write_fd: int,
    setup: _ChildSetup,
    resolve: Callable[[], Callable[..., Any]],
    args: list[Any],
    kwargs: dict[str, Any],
    serializer: Serializer,
) -> None:  # pragma: no cover - runs in the child
    code = 0
    me = os.getpid()
    try:
        os.close(read_fd)
        setup.apply()
        try:
            result = call_job(resolve(), args, kwargs)
        except FunctionLookupError as exc:  # reported as the worker does in-process
            kind, body = b"E", ErrorInfo(type(exc).__name__, str(exc), "", final=True).to_report()
        except BaseException as exc:  # the job's own SystemExit too: it fails the job
            kind, body = b"E", ErrorInfo.from_exception(exc).to_report()
        else:
            try:
                kind, body = b"R", serializer.dumps(result)
            except Exception as exc:
                message = (
                    f"the job returned a {type(result).__qualname__} that the "
                    f"{serializer.name or type(serializer).__name__} serializer cannot "
                    f"store: {safe_str(exc)}"
                )
                kind = b"E"
                body = ErrorInfo("ResultSerializationError", message, "", final=True).to_report()
        if os.getpid() != me:  # a process the job forked returned from it: not ours to report
            os._exit(0)
        for part in (_HEADER.pack(kind, len(body)), body):  # no copy of a large body
            view = memoryview(part)
            while view:
                view = view[os.write(write_fd, view) :]
    except BaseException:
        code = 70  # could not report: the parent sees "exited with code 70"
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):  # nothing left to tell anyone
                stream.flush()
        os._exit(code)


@functools.cache
def _parent_death_signal() -> Callable[[], object] | None:
    """On Linux, a call that has the kernel SIGKILL the caller when its parent dies."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes  # noqa: PLC0415 - only where it is used, once

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (ImportError, OSError, AttributeError):  # pragma: no cover - a libc without prctl
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return functools.partial(prctl, _PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _describe_exit(status: int, stage: str) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        hint = " (out of memory?)" if sig == signal.SIGKILL else ""
        return f"the job's process was killed by {name}{hint} {stage}"
    return (
        f"the job's process exited with code {os.WEXITSTATUS(status)} {stage} "
        "(os._exit, or a crash in native code)"
    )
