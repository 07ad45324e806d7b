"""Interrupting a job that runs in a thread of its own.

A thread cannot be killed. CPython can raise an exception in another thread
(``PyThreadState_SetAsyncExc``): it is raised at the thread's next Python
bytecode, so a job running Python code (a loop, a parser, a library written
in Python) is interrupted at once, while a job blocked in one long C call
(``time.sleep(600)``, a socket read without a timeout, a C extension) is
interrupted only when that call returns. Dramatiq enforces its time limits
the same way. A worker that must stop such a job at its timeout whatever it
does runs it isolated, in a child process it can kill (one job at a time).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


@functools.cache
def _async_exc(clear: bool) -> Callable[[int, Any], int]:
    """``PyThreadState_SetAsyncExc`` through ctypes, imported on first use (workers that
    run no job in a thread of its own skip ctypes). ``clear``: the same function with a
    NULL exception, which clears a pending one (None would be raised)."""
    import ctypes  # noqa: PLC0415 - lazy, see above

    argument = ctypes.c_void_p if clear else ctypes.py_object
    func: Callable[[int, Any], int] = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, argument)(
        ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
    )
    return func


def raise_in_thread(ident: int, exc_type: type[BaseException]) -> bool:
    """Raise ``exc_type`` in the thread ``ident`` at its next bytecode; False if it is gone."""
    found = _async_exc(False)(ident, exc_type)
    if found > 1:  # cannot happen with a valid ident; undo, as the C API asks
        clear_pending(ident)
        return False
    return bool(found == 1)


@contextmanager
def thread_timeout(seconds: float, exc_type: type[BaseException]) -> Iterator[None]:
    """Raise ``exc_type`` in this thread if the block runs longer than ``seconds``.

    The timer is cancelled on exit; an exception it raised just as the block
    ended is cleared, so it never escapes into the caller's next statement.
    """
    ident = threading.get_ident()
    done = threading.Event()
    fired = threading.Event()
    lock = threading.Lock()

    def fire() -> None:
        with lock:
            if not done.is_set():
                fired.set()
                raise_in_thread(ident, exc_type)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            done.set()
            if fired.is_set():  # raised already, or still pending: never past this block
                clear_pending(ident)
        timer.cancel()


def clear_pending(ident: int) -> None:
    """Drop an exception raised in thread ``ident`` that it has not reached yet."""
    _async_exc(True)(ident, None)
