"""Job functions that meddle with signals (kept apart: helper-run tests edit tests/jobs.py)."""

from __future__ import annotations

import signal


def replace_alarm_handler() -> str:
    """What a library that uses SIGALRM itself may do, and never undo."""
    signal.signal(signal.SIGALRM, lambda signum, frame: None)
    return "replaced"
