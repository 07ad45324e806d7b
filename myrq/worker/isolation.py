"""Run one job in a forked child process, so that a crash fails the job only.

The worker forks; the child resolves the function, runs it, encodes the
result with the worker's serializer and writes one message to a pipe, then
leaves with ``os._exit``. The parent reads the pipe (so a large result cannot
block the child) until EOF or the job's timeout, then reaps the child:

* a message ``R<result bytes>``: finished;
* a message ``E<ErrorInfo JSON>``: the function raised (or its result could
  not be encoded, or the allow-list refused it);
* no message: the child died (a segfault, ``os._exit``, the kernel's OOM
  killer): the job fails with the signal or exit code;
* the timeout passed: the child is SIGKILLed and the job ends ``timeout``.

The child ignores SIGINT/SIGTERM: shutdown is the parent's decision (a
terminal's Ctrl-C reaches the whole process group). When the parent is told
to stop now, the exception unwinds through :func:`run_isolated`, which kills
and reaps the child on the way out. With ``memory_limit``, the child's address
space is capped (``RLIMIT_AS``), so a runaway allocation raises MemoryError
in the child instead of swapping the machine.

Only the worker's main thread may call this: forking copies only the calling
thread, and the child touches neither the broker connection nor the heartbeat.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

from myrq.codec import ErrorInfo, safe_str
from myrq.exceptions import FunctionLookupError
from myrq.serializers import Serializer

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows, where fork is missing too
    resource = None  # type: ignore[assignment]

_READ_CHUNK = 1 << 16


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
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a threaded process may deadlock the child
        # on a lock another thread held. The child runs only the job and never
        # takes the heartbeat's or the broker's locks.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child; its outcome is tested
        os.close(read_fd)
        _child(write_fd, resolve, args, kwargs, serializer, memory_limit)
    os.close(write_fd)
    try:
        data, timed_out = _read_all(read_fd, time.monotonic() + timeout)
    except BaseException:
        _kill(pid)
        raise
    finally:
        os.close(read_fd)
    if timed_out:
        _kill(pid)
        return ChildOutcome(timed_out=True)
    _, status = os.waitpid(pid, 0)
    if data[:1] == b"R":
        return ChildOutcome(result=data[1:])
    if data[:1] == b"E":
        return ChildOutcome(error=ErrorInfo.from_bytes(data[1:]))
    return ChildOutcome(error=ErrorInfo("ChildProcessDied", _describe_exit(status), ""))


def _child(  # noqa: PLR0917 - one internal caller
    write_fd: int,
    resolve: Callable[[], Callable[..., Any]],
    args: list[Any],
    kwargs: dict[str, Any],
    serializer: Serializer,
    memory_limit: int | None,
) -> None:  # pragma: no cover - runs in the child
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if memory_limit and resource is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
        try:
            result = resolve()(*args, **kwargs)
        except FunctionLookupError as exc:  # reported as the worker does in-process
            message = b"E" + ErrorInfo(type(exc).__name__, str(exc), "").to_bytes()
        except BaseException as exc:  # the job's own SystemExit too: it fails the job
            message = b"E" + ErrorInfo.from_exception(exc).to_bytes()
        else:
            try:
                message = b"R" + serializer.dumps(result)
            except Exception as exc:
                message = (
                    b"E"
                    + ErrorInfo(
                        "ResultSerializationError",
                        f"the job returned a {type(result).__qualname__} that the "
                        f"{serializer.name or type(serializer).__name__} serializer cannot "
                        f"store: {safe_str(exc)}",
                        "",
                    ).to_bytes()
                )
        view = memoryview(message)
        while view:
            view = view[os.write(write_fd, view) :]
    except BaseException:
        code = 70  # could not report: the parent sees "exited with code 70"
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):  # nothing left to tell anyone
                stream.flush()
        os._exit(code)


def _read_all(fd: int, deadline: float) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return b"", True
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, _READ_CHUNK)
        if not chunk:
            return b"".join(chunks), False
        chunks.append(chunk)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        hint = " (out of memory?)" if sig == signal.SIGKILL else ""
        return f"the job's process was killed by {name}{hint} before it returned"
    return (
        f"the job's process exited with code {os.WEXITSTATUS(status)} before it returned "
        "(os._exit, or a crash in native code)"
    )
