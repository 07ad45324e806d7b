"""The job timer and shutdown signals: where they may interrupt a job, and what they leave behind."""

from __future__ import annotations

import signal
import sys
from typing import Any

import pytest

from myrq import JobStatus, JobTimeout, Queue, Worker
from myrq.backends import Broker
from myrq.worker.alarm import JobAlarm
from myrq.worker.guard import JobGuard
from myrq.worker.shutdown import ShutdownNow
from tests import signaljobs


def test_a_job_that_replaces_the_alarm_handler_does_not_switch_off_later_timeouts(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    handler = signal.getsignal(signal.SIGALRM)
    q = Queue("default", broker=broker)
    meddler = q.enqueue(signaljobs.replace_alarm_handler)
    slow = q.enqueue_call("tests.jobs.nap", args=(5,), timeout=0.3)
    Worker(["default"], broker=broker, allow=["tests"]).work(burst=True)
    assert meddler.get_status() is JobStatus.FINISHED
    assert slow.get_status() is JobStatus.TIMEOUT, "the replaced handler swallowed the timeout"
    assert "replaced the SIGALRM handler" in caplog.text
    assert (
        signal.getsignal(signal.SIGALRM) is handler
    )  # the worker's run left things as it found them
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0 or handler is not signal.SIG_DFL


def test_a_job_that_is_a_c_function_still_times_out(broker: Broker) -> None:
    """time.sleep enqueued directly has no Python frame of its own: the timeout must reach it."""
    job = Queue("default", broker=broker).enqueue_call("time.sleep", args=(5,), timeout=0.3)
    Worker(["default"], broker=broker, allow=["time"]).work(burst=True)
    assert job.get_status() is JobStatus.TIMEOUT


def _guard_frame() -> Any:
    return sys._getframe(2)  # the caller's caller: JobGuard.call, when called from resolve


def test_an_interrupt_in_the_jobs_own_code_is_raised_at_once() -> None:
    guard = JobGuard(JobAlarm())

    def job() -> None:
        guard.interrupt(ShutdownNow(), sys._getframe())

    guard.pending, guard.running = None, True
    with pytest.raises(ShutdownNow):
        guard.call(lambda: job, [], {}, None)
    assert not guard.running


def test_an_interrupt_that_lands_after_the_job_returned_is_dropped() -> None:
    """A job that returned counts as returned: the worker records it finished."""
    guard = JobGuard(JobAlarm())
    frames: dict[str, Any] = {}

    def resolve() -> Any:
        frames["guard"] = _guard_frame()
        return lambda: "done"

    guard.pending, guard.running = None, True
    assert guard.call(resolve, [], {}, None) == "done"
    # As if the second SIGTERM, or the alarm, was handled back in the guard's frame:
    guard.interrupt(ShutdownNow(), frames["guard"])
    guard.interrupt(JobTimeout("late"), frames["guard"])  # nothing raised


def test_an_interrupt_that_lands_before_the_job_starts_stops_it_from_starting() -> None:
    guard = JobGuard(JobAlarm())
    ran: list[int] = []

    def resolve() -> Any:
        guard.interrupt(JobTimeout("timed out while importing"), _guard_frame())
        return lambda: ran.append(1)

    guard.pending, guard.running = None, True
    with pytest.raises(JobTimeout):
        guard.call(resolve, [], {}, None)
    assert ran == [] and not guard.running


def test_the_timer_is_disarmed_even_when_the_alarm_lands_in_its_clean_up() -> None:
    alarm = JobAlarm()
    guard = JobGuard(alarm)
    saved = signal.setitimer(signal.ITIMER_REAL, 0)  # pytest-timeout's, if any
    try:
        alarm.install()
        disarm = alarm.disarm

        def disarm_with_a_signal() -> None:
            # The alarm fires in the clean-up (the handler finds the guard's frame):
            guard.interrupt(JobTimeout("late"), sys._getframe(1))
            disarm()

        alarm.disarm = disarm_with_a_signal  # type: ignore[method-assign]
        guard.pending, guard.running = None, True
        assert guard.call(lambda: lambda: 42, [], {}, 10) == 42
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    finally:
        alarm.uninstall()
        if saved[0] > 0:
            signal.setitimer(signal.ITIMER_REAL, *saved)


def test_a_job_that_resets_sigterm_does_not_turn_graceful_shutdown_off(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    q = Queue("default", broker=broker)
    q.enqueue(signaljobs.reset_sigterm)
    after = q.enqueue(signaljobs.sigterm_is_handled)
    handler = signal.getsignal(signal.SIGTERM)
    Worker(["default"], broker=broker, allow=["tests"]).work(burst=True)
    assert after.get_status() is JobStatus.FINISHED and after.result is True
    assert "replaced the SIGTERM handler" in caplog.text
    assert signal.getsignal(signal.SIGTERM) is handler


def test_an_isolated_job_that_returned_counts_as_returned_when_a_shutdown_lands(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The second signal lands just as the parent finds the child done: the result is kept."""
    from myrq.serializers import JSONSerializer
    from myrq.worker import isolation

    real_wait = isolation._Child.wait

    def wait_then_shutdown(self: Any, deadline: float) -> int | None:
        real_wait(self, deadline)  # the child exited with its whole report...
        raise ShutdownNow  # ...and now the signal's handler runs

    monkeypatch.setattr(isolation._Child, "wait", wait_then_shutdown)
    outcome = isolation.run_isolated(lambda: lambda: 42, [], {}, JSONSerializer(), 10)
    assert outcome.result == b"42" and outcome.error is None and not outcome.timed_out
