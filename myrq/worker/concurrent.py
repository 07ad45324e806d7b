"""Many jobs at once in one worker process: ``Worker(concurrency=N)``.

The worker's main thread runs an event loop. ``async def`` jobs run on it as
tasks; sync jobs run each in a thread of their own. At most N jobs run at
once. Broker calls run in one helper thread, one at a time, so the loop never
blocks on the network: each call writes every outcome that is ready and
claims as many jobs as there are free slots, in one round trip
(``finish_many_and_dequeue``); while jobs end faster than a round trip,
their outcomes are written together. A worker with nothing running blocks in
the broker (as a one-at-a-time worker does); one with free slots but an
empty queue looks again every :data:`POLL` seconds, or as soon as a job ends.

Leases, fencing, retries, hooks, callbacks and outcomes are the one-at-a-time
worker's (the same :class:`~myrq.worker.outbox.Outbox` and
:class:`~myrq.worker.runner.Runner`). What differs:

- timeouts: an async job is cancelled (``asyncio`` cancellation, raising
  ``CancelledError`` in it); a thread gets :class:`~myrq.exceptions.JobTimeout`
  raised in it (see :mod:`myrq.worker.threads` for what that cannot reach).
  A thread that does not end within :data:`ABANDON_AFTER` seconds more is
  abandoned: the job is recorded ``timeout`` and the thread's own outcome,
  whenever it comes, is dropped;
- ``job.stop()`` cancels the task or raises :class:`~myrq.exceptions.JobStopped`
  in the thread;
- a shutdown that will not wait cancels every job (threads as above) and gives
  it back to its queue;
- an async job that blocks the loop (CPU work, ``time.sleep``) holds up every
  other job of the worker, as in any asyncio program; the heartbeat, a thread
  of its own, keeps the leases meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import TYPE_CHECKING, Any

from myrq.backends import Delivery
from myrq.codec import ErrorInfo
from myrq.context import current_job
from myrq.exceptions import FunctionLookupError, JobStopped, JobTimeout
from myrq.schema import F_CRON
from myrq.status import JobStatus
from myrq.task import Task
from myrq.worker.calling import refuse_awaitable
from myrq.worker.inflight import Running, cancel_leftovers, forget_thread, timed_out
from myrq.worker.outbox import Outbox
from myrq.worker.runner import Call, Outcome, failure, stopped
from myrq.worker.shutdown import ShutdownNow
from myrq.worker.stats import log_skip
from myrq.worker.threads import raise_in_thread

if TYPE_CHECKING:
    from myrq.worker.worker import Worker

logger = logging.getLogger("myrq.worker")

#: How often a worker with free slots and nothing new looks for jobs (seconds).
POLL = 0.05
#: Seconds a thread may run past its timeout before it is abandoned.
ABANDON_AFTER = 5.0


class ConcurrentLoop:
    """Runs one :meth:`Worker.work` with up to ``concurrency`` jobs at once."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.limit = worker.settings.concurrency
        self.running: dict[str, Running] = {}
        self.ready: list[tuple[Delivery, Outcome | None]] = []  # None: give it back
        self.loop: asyncio.AbstractEventLoop | None = None
        self.wake: asyncio.Event | None = None
        self._broker_thread = ThreadPoolExecutor(1, thread_name_prefix="myrq-broker")

    # -- the loop ------------------------------------------------------------------

    def run(self, outbox: Outbox, burst: bool, stop_at: int | None) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._main(outbox, burst, stop_at))
        finally:
            try:
                cancel_leftovers(loop)
            finally:
                loop.close()
                self.loop = None
                self._broker_thread.shutdown(wait=True)

    async def _main(self, outbox: Outbox, burst: bool, stop_at: int | None) -> None:
        self.loop = asyncio.get_running_loop()
        self.wake = asyncio.Event()
        w = self.worker
        shutdown = w._shutdown
        shutdown.busy = lambda: bool(self.running)
        shutdown.interrupt_now = self._interrupt_now_from_signal
        more = True  # the queues may hold jobs
        try:
            while True:
                stopping = w._stop.is_set()
                self._hand_over(outbox)
                if stopping and not self.running:
                    return
                free = 0 if stopping else self.limit - len(self.running)
                if stop_at is not None:
                    left = stop_at - w.stats.processed - len(outbox.unwritten) - len(self.running)
                    if left <= 0 and not self.running and not outbox.unwritten:
                        return
                    free = max(0, min(free, left))
                if outbox.unwritten or (free and more):
                    got = await self._broker(outbox.refill, free, block=False)
                    started = self._start_claimed(outbox)
                    more = bool(got) and started >= free
                    continue
                if free and not self.running:
                    if burst:
                        return  # nothing running, nothing queued
                    got = await self._broker(outbox.refill, free, block=True)
                    self._start_claimed(outbox)
                    more = bool(got)
                    continue
                await self._sleep(POLL if free else None)
                more = True
        finally:
            shutdown.busy = lambda: shutdown.guard.running
            shutdown.interrupt_now = None

    async def _broker(self, step: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        assert self.loop is not None
        return await self.loop.run_in_executor(
            self._broker_thread, functools.partial(step, *args, **kwargs)
        )

    async def _sleep(self, timeout: float | None) -> None:
        """Until a job ends (or ``timeout``); a first SIGTERM is seen within POLL too."""
        assert self.wake is not None
        self.wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), POLL if timeout is None else timeout)

    def _hand_over(self, outbox: Outbox) -> None:
        """Outcomes of ended jobs go to the outbox (only here, never during a broker call)."""
        ready, self.ready = self.ready, []
        after = self.worker._after
        for delivery, outcome in ready:
            outbox.in_flight.pop(delivery.job_id, None)
            if outcome is None:  # interrupted by a shutdown that would not wait
                outbox.give_back(delivery)
                continue
            self.worker._remember(outcome.func_name, outcome.elapsed)
            done = outbox.add(delivery, after.failed(delivery, outcome))
            after.ran(delivery, outcome, done)

    # -- starting jobs -----------------------------------------------------------

    def _start_claimed(self, outbox: Outbox) -> int:
        started = 0
        while outbox.claimed:
            delivery = outbox.claimed.popleft()
            if not delivery.claimed:
                self.worker.stats.skipped += 1
                log_skip(delivery)
                continue
            outbox.in_flight[delivery.job_id] = delivery
            self._start(delivery)
            started += 1
        return started

    def _start(self, delivery: Delivery) -> None:
        w = self.worker
        if F_CRON in (delivery.fields or {}):
            w._schedule_next(delivery)
        prepared = w._runner.prepare(delivery)
        if isinstance(prepared, Call) and w._stops.take(delivery.job_id):
            prepared = stopped(prepared.func_name, 0.0)
        if not isinstance(prepared, Call):
            self._ended(delivery, prepared)
            return
        try:
            func = w.allow.resolve(prepared.func_name)
        except FunctionLookupError as exc:
            self._ended(delivery, failure(type(exc).__name__, str(exc), prepared.func_name))
            return
        if isinstance(func, Task):
            func = func.func
        w._after.before(delivery)
        run = Running(delivery, prepared, time.monotonic())
        self.running[delivery.job_id] = run
        assert self.loop is not None
        if inspect.iscoroutinefunction(func):
            run.task = self.loop.create_task(self._run_async(run, func))
        else:
            # The thread runs in a copy of this context: what hooks made current in
            # before_job (a tracing span) is current in the job too.
            context = contextvars.copy_context()
            thread = threading.Thread(
                target=context.run,
                args=(self._run_thread, run, func),
                name=f"myrq-job-{delivery.job_id}",
            )
            thread.daemon = True
            thread.start()
        run.timer = self.loop.call_later(prepared.timeout, self._time_out, run)

    # -- running them ----------------------------------------------------------------

    async def _run_async(self, run: Running, func: Callable[..., Any]) -> Outcome | None:
        call = run.call
        make = functools.partial(self.worker._after.job_of, run.delivery)
        with current_job(make):
            try:
                result = await func(*call.args, **call.kwargs)
            except asyncio.CancelledError as exc:
                outcome = self._interrupted(run, exc)
            except BaseException as exc:  # a job's SystemExit fails the job only
                outcome = self._failed(run, exc)
            else:
                outcome = self.worker._runner._finished(call, result, self._elapsed(run))
        self._ended(run.delivery, outcome, run)
        return outcome

    def _run_thread(self, run: Running, func: Callable[..., Any]) -> None:
        run.thread = threading.get_ident()
        call = run.call
        make = functools.partial(self.worker._after.job_of, run.delivery)
        outcome: Outcome | None = None
        try:
            try:
                with current_job(make):
                    result = func(*call.args, **call.kwargs)
                    if inspect.isawaitable(result):
                        refuse_awaitable(func, result)
            except (JobTimeout, JobStopped, ShutdownNow) as exc:
                outcome = self._interrupted(run, exc)
            except BaseException as exc:
                outcome = self._failed(run, exc)
            else:
                outcome = self.worker._runner._finished(call, result, self._elapsed(run))
        except (JobTimeout, JobStopped, ShutdownNow):
            pass  # came as the job ended: what it did stands (None if before any outcome)
        forget_thread(run)
        loop = self.loop
        if loop is None:
            return  # the worker stopped meanwhile: this abandoned job's outcome is dropped
        if outcome is None and run.reason != "shutdown":
            outcome = timed_out(call, self._elapsed(run), None)  # interrupted while reporting
        with contextlib.suppress(RuntimeError):  # the loop closed: the worker has stopped
            loop.call_soon_threadsafe(self._ended, run.delivery, outcome, run)

    def _ended(
        self, delivery: Delivery, outcome: Outcome | None, run: Running | None = None
    ) -> None:
        """In the loop: a job ended (or was refused before it ran)."""
        if run is not None:
            if run.done:
                return  # abandoned at its timeout: that outcome stands
            run.done = True
            if run.timer is not None:
                run.timer.cancel()
            self.running.pop(delivery.job_id, None)
        self.ready.append((delivery, outcome))
        if self.wake is not None:
            self.wake.set()

    def _elapsed(self, run: Running) -> float:
        return time.monotonic() - run.started

    def _failed(self, run: Running, exc: BaseException) -> Outcome:
        return Outcome(
            JobStatus.FAILED,
            error=ErrorInfo.from_exception(exc),
            func_name=run.call.func_name,
            elapsed=self._elapsed(run),
            exc=exc,
        )

    def _interrupted(self, run: Running, exc: BaseException) -> Outcome | None:
        """The outcome of a job we interrupted (None: give it back), by why we did."""
        elapsed = self._elapsed(run)
        if run.reason == "timeout" or isinstance(exc, JobTimeout):
            return timed_out(run.call, elapsed, exc)
        if run.reason == "stop" or isinstance(exc, JobStopped):
            return stopped(run.call.func_name, elapsed, exc)
        if run.reason == "shutdown" or isinstance(exc, ShutdownNow):
            return None
        return self._failed(run, exc)  # cancelled by the job's own code

    # -- interrupting them -----------------------------------------------------------

    def _interrupt(self, run: Running, reason: str, exc_type: type[BaseException]) -> None:
        if run.done:
            return
        run.reason = reason
        if run.task is not None:
            run.task.cancel()
            return
        with run.lock:
            if run.thread is not None:
                raise_in_thread(run.thread, exc_type)

    def _time_out(self, run: Running) -> None:
        """In the loop, at a job's timeout."""
        self._interrupt(run, "timeout", JobTimeout)
        if self.loop is not None:  # a thread may not notice, a task may swallow it
            self.loop.call_later(ABANDON_AFTER, self._abandon, run)

    def _abandon(self, run: Running) -> None:
        if run.done:
            return
        logger.error(
            "job %s ran %gs past its timeout and does not stop (a thread blocked in a C call, "
            "or a task that swallows its cancellation): recorded timed out; it is left to "
            "finish and its result dropped",
            run.delivery.job_id,
            ABANDON_AFTER,
        )
        self._ended(run.delivery, timed_out(run.call, self._elapsed(run), None), run)

    def stop_job(self, job_id: str) -> None:
        """From the heartbeat thread: stop ``job_id`` if it runs here now."""
        if self.loop is not None:
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self._stop_in_loop, job_id)

    def _stop_in_loop(self, job_id: str) -> None:
        run = self.running.get(job_id)
        if run is not None:
            self._interrupt(run, "stop", JobStopped)

    def _interrupt_now_from_signal(self, frame: FrameType | None) -> None:
        """From the signal handler (main thread): a shutdown that will not wait."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._interrupt_all)

    def _interrupt_all(self) -> None:
        logger.warning(
            "worker %s: stopping %d running job(s) now and putting them back on their queues",
            self.worker.name,
            len(self.running),
        )
        for run in list(self.running.values()):
            self._interrupt(run, "shutdown", ShutdownNow)
