"""Job functions that meddle with signals (kept apart: helper-run tests edit tests/jobs.py)."""

from __future__ import annotations

import signal


def replace_alarm_handler() -> str:
    """What a library that uses SIGALRM itself may do, and never undo."""
    signal.signal(signal.SIGALRM, lambda signum, frame: None)
    return "replaced"


def reset_sigterm() -> str:
    """What a library may do: put SIGTERM back to its default (die at once)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return "reset"


def sigterm_is_handled() -> bool:
    return signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN, None)
