"""Interrupting a thread: myrq.worker.threads."""

from __future__ import annotations

import threading
import time

import pytest

from myrq.exceptions import JobTimeout
from myrq.worker.threads import clear_pending, raise_in_thread, thread_timeout


def test_an_exception_raised_in_a_thread_interrupts_python_code() -> None:
    seen: list[str] = []
    ready = threading.Event()

    def spin() -> None:
        ready.set()
        try:
            while True:
                pass
        except JobTimeout:
            seen.append("interrupted")

    t = threading.Thread(target=spin)
    t.start()
    ready.wait(5)
    assert raise_in_thread(t.ident or 0, JobTimeout)
    t.join(5)
    assert seen == ["interrupted"] and not t.is_alive()
    assert not raise_in_thread(t.ident or 0, JobTimeout)  # gone: nothing to raise in


def test_a_pending_exception_can_be_cleared() -> None:
    outcome: list[str] = []

    def sleeper() -> None:
        try:
            time.sleep(0.3)  # in C: the exception waits until the call returns
            outcome.append("returned")
        except JobTimeout:
            outcome.append("interrupted")

    t = threading.Thread(target=sleeper)
    t.start()
    time.sleep(0.05)
    assert raise_in_thread(t.ident or 0, JobTimeout)
    clear_pending(t.ident or 0)  # dropped before the thread got back to Python code
    t.join(5)
    assert outcome == ["returned"]


def test_thread_timeout_interrupts_a_long_block_and_never_leaks() -> None:
    with pytest.raises(JobTimeout), thread_timeout(0.1, JobTimeout):
        while True:
            pass
    with thread_timeout(5, JobTimeout):
        pass
    time.sleep(0.05)
