"""A process pool: one supervisor keeps N ordinary worker processes running.

``myrq worker --processes N``, or ``WorkerPool(queues, processes=N, **options).run()``.
The supervisor runs no job. It:

* forks N children, each an ordinary :class:`~myrq.worker.Worker` built with
  the pool's options and named ``<pool name>-<slot>.<pid>``, so ``myrq
  workers`` lists N workers (:mod:`~myrq.worker.pool_child` is the child's side);
* replaces a child that dies (a signal, an exit without its "done" status),
  logging why: at once if it had lived ``RestartPolicy.healthy_after`` seconds,
  else after a wait that doubles with each death in a row, up to a cap (and at
  once after ``max_jobs`` jobs);
* passes SIGTERM/SIGINT on to every child (the first: finish the job within
  the grace period; a second: stop it now and put it back), then waits for
  them all and replaces none. In burst mode each child exits when the queues
  are empty, and the pool when all have (exit 0 if all exited cleanly, else 1).

Why fork without exec: the children get the options as they are (hooks,
registries, serializer instances: nothing is pickled), share the modules the
supervisor imported (``--import``), and a restart costs a fork, not an
interpreter start (``multiprocessing``'s spawn re-imports everything and needs
every option to pickle). Fork copies threads (only the forking one survives,
with any lock another held stuck) and open connections, so the supervisor
forks from its main thread, starts no thread, and shares no connection: it
pings the broker with an instance it builds and closes, and each child builds
its own (a Broker instance passed in is inherited; redis-py's pools see the
new pid and reconnect). A broker that lives in one process (``memory://``,
``fakeredis://``, SQLite ``:memory:``) is refused.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from types import FrameType
from typing import Any

from myrq import config
from myrq.backends import Broker, broker_from_url
from myrq.exceptions import ConfigurationError
from myrq.worker.pool_child import DONE, RECYCLE, ChildSpec, describe_exit, fork_child
from myrq.worker.worker import Worker

logger = logging.getLogger(__name__)

#: Most processes one pool may run (a typo must not fork ten thousand).
MAX_PROCESSES = 1024
#: Longest the supervisor sleeps without a signal (a safety net for lost wake-ups).
_TICK = 1.0
_FORWARDED = (signal.SIGTERM, signal.SIGINT)


@dataclass(frozen=True)
class RestartPolicy:
    """When a dead child is replaced (seconds).

    A child that lived at least ``healthy_after`` is replaced at once. Each
    death that follows sooner doubles the wait, from ``first_delay`` up to
    ``max_delay``: with the defaults 0 (the first), 1, 2, 4, ... 60, 60.
    """

    first_delay: float = 1.0
    max_delay: float = 60.0
    healthy_after: float = 30.0

    def __post_init__(self) -> None:
        if not 0 < self.first_delay <= self.max_delay or self.healthy_after < 0:
            raise ConfigurationError(
                f"RestartPolicy needs 0 < first_delay <= max_delay and healthy_after >= 0, "
                f"not {self!r}"
            )

    def next(self, streak: int, lived: float) -> tuple[float, int]:
        """``(delay, new streak)`` after a death, given the deaths in a row so far."""
        if lived >= self.healthy_after:
            streak = 0
        delay = 0.0 if streak == 0 else min(self.max_delay, self.first_delay * 2 ** (streak - 1))
        return delay, streak + 1


@dataclass
class _Slot:
    """One of the pool's N places, and the child process filling it."""

    index: int
    pid: int | None = None
    status_fd: int = -1
    started: float = 0.0
    streak: int = 0  # deaths in a row, each sooner than healthy_after
    restart_at: float | None = None  # monotonic time of the next start, when waiting
    finished: bool = False  # no more children here
    clean: bool = True  # the last child ended with its status


class WorkerPool:
    """Runs ``processes`` worker processes on ``queues`` and keeps them running.

    Args:
        queues: queue names, highest priority first, as for :class:`~myrq.worker.Worker`.
        processes: how many worker processes (1 to 1024).
        broker: a URL, a Broker, or None for the configured one. Each child
            builds its own from a URL; a Broker instance is inherited through
            the fork and must reconnect in the child (redis-py does).
        name: the pool's name; children are named ``<name>-<slot>.<pid>``
            (default ``<host>.<supervisor pid>``).
        restart: when dead children are replaced (:class:`RestartPolicy`).
        worker_options: every other :class:`~myrq.worker.Worker` option, passed
            to each child's worker unchanged.

    Raises:
        ConfigurationError: a bad ``processes``, or no ``os.fork``.
    """

    def __init__(
        self,
        queues: Sequence[str] | str = ("default",),
        processes: int = 2,
        *,
        broker: Broker | str | None = None,
        name: str | None = None,
        restart: RestartPolicy | None = None,
        **worker_options: Any,
    ) -> None:
        if not hasattr(os, "fork"):
            raise ConfigurationError("a worker pool needs os.fork, which this platform lacks")
        if (
            not isinstance(processes, int)
            or isinstance(processes, bool)
            or not 1 <= processes <= MAX_PROCESSES
        ):
            raise ConfigurationError(
                f"processes must be a whole number from 1 to {MAX_PROCESSES}, not {processes!r}"
            )
        self.queues = (queues,) if isinstance(queues, str) else tuple(queues)
        self.processes = processes
        self.broker = broker
        self.name = name or f"{socket.gethostname()}.{os.getpid()}"
        self.restart = restart or RestartPolicy()
        self.worker_options = worker_options
        self._slots = [_Slot(i) for i in range(1, processes + 1)]
        self._signals: list[int] = []  # received, not yet handled
        self._stopping = False
        self._burst = False  # a burst child that says it is done found the queues empty
        self._wakeup = (-1, -1)

    @property
    def pids(self) -> list[int]:
        """The children running now."""
        return [pid for _, pid in self._live()]

    def _live(self) -> list[tuple[_Slot, int]]:
        return [(s, s.pid) for s in self._slots if s.pid is not None]

    def run(self, burst: bool = False, max_jobs: int | None = None) -> int:
        """Start the children and supervise them until they have all stopped.

        Returns when a SIGTERM/SIGINT has stopped them (or, with ``burst``,
        when each has found the queues empty): 0 if every child's last exit
        was clean, else 1. ``max_jobs``: each child exits after that many jobs
        and is replaced. Call it from the main thread.

        Raises:
            ConfigurationError: a broker that lives in one process, a bad
                worker option or ``max_jobs``, or not the main thread.
            BrokerConnectionError: the broker cannot be reached.
        """
        if threading.current_thread() is not threading.main_thread():
            raise ConfigurationError(
                "WorkerPool.run() must be called from the main thread: it handles "
                "SIGTERM, SIGINT and SIGCHLD"
            )
        if max_jobs is not None and (
            not isinstance(max_jobs, int) or isinstance(max_jobs, bool) or max_jobs < 1
        ):  # 0 would replace children as fast as the machine forks
            raise ConfigurationError(f"max_jobs must be a whole number >= 1, not {max_jobs!r}")
        self._check()
        if threading.active_count() > 1:
            logger.warning(
                "pool %s forks from a process with %d threads: a lock another thread holds "
                "at a fork stays locked in that child",
                self.name,
                threading.active_count(),
            )
        spec = ChildSpec(
            0, self.name, self.queues, self.broker, self.worker_options, burst, max_jobs,
            os.getpid(),
        )  # fmt: skip
        self._slots = [_Slot(i) for i in range(1, self.processes + 1)]
        self._signals, self._stopping, self._burst = [], False, burst
        restore = self._install()
        try:
            logger.info(
                "pool %s starting %d worker processes on queues %s",
                self.name, self.processes, list(self.queues),
            )  # fmt: skip
            for slot in self._slots:
                self._start(slot, spec)
            self._supervise(spec)
        finally:
            self._stop_children()
            restore()
        code = 0 if all(s.clean for s in self._slots) else 1
        logger.info("pool %s stopped (exit code %d)", self.name, code)
        return code

    # -- before the first fork ------------------------------------------------

    def _check(self) -> None:
        """Refuse a broker the children cannot share, and bad worker options; ping."""
        built = isinstance(self.broker, str)
        if isinstance(self.broker, str):
            settings = config.settings()
            broker = broker_from_url(self.broker, key_prefix=settings.key_prefix)
        else:
            broker = config.get_broker(self.broker)
        try:
            problem = _one_process_only(broker)
            if problem:
                raise ConfigurationError(
                    f"a worker pool (--processes) needs a broker that every worker process "
                    f"reaches, such as Redis: {broker.url or broker!r} {problem}, so each "
                    "process would see its own empty queues. Use a redis:// URL, or one "
                    "worker without --processes"
                )
            # Every option checked once, here, rather than in N children that die of it.
            Worker(self.queues, broker=broker, name=self.name, **self.worker_options)
            broker.ping()
        finally:
            if built:
                broker.close()

    def _install(self) -> Any:
        """Signal handlers and a wakeup pipe for the supervisor; return their undo."""
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        self._wakeup = (r, w)
        old_fd = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        old = {sig: signal.signal(sig, self._on_signal) for sig in _FORWARDED}
        old[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, _on_child)

        def restore() -> None:
            for sig, handler in old.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(old_fd)
            for fd in (r, w):
                os.close(fd)

        return restore

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signum)  # handled in the loop, never here

    # -- the loop ---------------------------------------------------------------

    def _supervise(self, spec: ChildSpec) -> None:
        while True:
            self._handle_signals()
            self._reap()
            now = time.monotonic()
            for slot in self._slots:
                if slot.restart_at is not None and slot.restart_at <= now:
                    self._start(slot, spec)
            if all(s.finished for s in self._slots):
                return
            waits = [s.restart_at - now for s in self._slots if s.restart_at is not None]
            with contextlib.suppress(InterruptedError):
                select.select([self._wakeup[0]], [], [], min([_TICK, *waits]))
            with contextlib.suppress(BlockingIOError):
                while os.read(self._wakeup[0], 512):
                    pass

    def _handle_signals(self) -> None:
        while self._signals:
            signum = self._signals.pop(0)
            live = self._live()
            name = signal.Signals(signum).name
            if not self._stopping:
                self._stopping = True
                logger.info(
                    "pool %s got %s: passing it on to %d worker processes (each finishes "
                    "its job within its grace period; send it again to stop the jobs now)",
                    self.name, name, len(live),
                )  # fmt: skip
                for slot in self._slots:
                    slot.restart_at = None
                    slot.finished = slot.finished or slot.pid is None
            else:
                logger.warning(
                    "pool %s got %s again: passing it on to %d worker processes (their jobs "
                    "stop now and go back to their queues)",
                    self.name, name, len(live),
                )  # fmt: skip
            for _, pid in live:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signum)

    def _reap(self) -> None:
        for slot in self._slots:
            if slot.pid is None:
                continue
            try:
                pid, status = os.waitpid(slot.pid, os.WNOHANG)
            except ChildProcessError:  # reaped by someone else: its status is lost
                pid, status = slot.pid, -1
            if pid:
                self._ended(slot, status)

    def _ended(self, slot: _Slot, status: int) -> None:
        """A child exited: decide whether and when its slot gets another."""
        report = b""
        with contextlib.suppress(OSError):
            report = os.read(slot.status_fd, 16)[-1:]
        os.close(slot.status_fd)
        pid, lived = slot.pid, time.monotonic() - slot.started
        slot.pid, slot.status_fd = None, -1
        clean = bool(report) and status == 0
        slot.clean = clean
        what = f"worker process {slot.index} ({self.name}-{slot.index}.{pid})"
        if self._stopping or (clean and report == DONE and self._burst):
            slot.finished = True
            how = describe_exit(status, report)
            if clean and not self._stopping:
                how = "found the queues empty and exited"
            log = logger.info if clean else logger.warning
            log("pool %s: %s %s after %.1fs", self.name, what, how, lived)
            return
        if report == RECYCLE and clean:
            delay, slot.streak = 0.0, 0
            logger.info("pool %s: %s ran its max_jobs; starting another", self.name, what)
        else:
            delay, slot.streak = self.restart.next(slot.streak, lived)
            logger.warning(
                "pool %s: %s %s after %.1fs; starting another %s",
                self.name, what, describe_exit(status, report), lived,
                "now" if delay == 0 else f"in {delay:g}s ({slot.streak} deaths in a row)",
            )  # fmt: skip
        slot.restart_at = time.monotonic() + delay

    # -- children --------------------------------------------------------------

    def _start(self, slot: _Slot, spec: ChildSpec) -> None:
        slot.restart_at = None
        try:
            inherited = [*self._wakeup, *(s.status_fd for s in self._slots if s.status_fd >= 0)]
            pid, slot.status_fd = fork_child(replace(spec, slot=slot.index), inherited)
        except OSError as exc:  # EAGAIN, ENOMEM, EMFILE: the machine is short; try later
            delay, slot.streak = self.restart.next(slot.streak, 0.0)
            delay = max(delay, self.restart.first_delay)
            logger.error(
                "pool %s: could not start worker process %d: %s; trying again in %gs",
                self.name, slot.index, exc, delay,
            )  # fmt: skip
            slot.restart_at = time.monotonic() + delay
            return
        slot.pid, slot.started = pid, time.monotonic()
        logger.debug("pool %s: worker process %d started (pid %d)", self.name, slot.index, pid)

    def _stop_children(self) -> None:
        """On the way out: pass SIGTERM to children still running, and wait for them.

        Only reached with live children if the loop itself failed.
        """
        live = self._live()
        if live:
            logger.error("pool %s: stopping %d worker processes", self.name, len(live))
        for _, pid in live:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for slot, pid in live:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            slot.pid, slot.clean = None, False
            os.close(slot.status_fd)


def _on_child(signum: int, frame: FrameType | None) -> None:
    """SIGCHLD: nothing to do here; the wakeup pipe has already woken the loop."""


def _one_process_only(broker: Broker) -> str | None:
    """Why ``broker`` cannot be shared by processes, or None if it can."""
    from myrq.backends.memory import MemoryBroker  # noqa: PLC0415 - lazy: rarely needed

    if isinstance(broker, MemoryBroker):
        return "keeps its jobs in this process's memory"
    client = getattr(broker, "client", None)
    if client is not None and type(client).__module__.partition(".")[0] == "fakeredis":
        return "is a fake Redis server inside this process"
    if ":memory:" in (broker.url or ""):
        return "is a database in this process's memory"
    return None
