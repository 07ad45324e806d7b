"""The process pool (``myrq worker --processes N``, ``WorkerPool``) on a real redis-server.

The slow tests start a real supervisor process in a session of its own, with
its children (``--lease-ttl 1``, so a dead child's job runs again within about
1.3 s), and kill every process of that session at the end, whatever happened.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from myrq import ConfigurationError, Job, JobStatus, Queue
from myrq.backends import MemoryBroker, RedisBroker
from myrq.cli import main
from myrq.exceptions import BrokerConnectionError
from myrq.testing.redis_server import RedisServer, free_port
from myrq.worker.pool import RestartPolicy, WorkerPool
from myrq.worker.pool_child import watch_parent
from tests.faultjobs import ROOT, read_starts, wait_for, worker_env

# -- a job for these tests -------------------------------------------------------


def exit_on_first_attempt(marker: str, code: int) -> str:
    """Kill the worker process with ``os._exit(code)`` the first time, return after."""
    path = Path(marker)
    if not path.exists():
        path.write_text(str(os.getpid()))
        os._exit(code)
    return "second"


# -- a supervisor process and what it started ------------------------------------------


def _stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name, or None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text.rpartition(")")[2].split()


def alive(pid: int) -> bool:
    """Running, or stopped: not gone and not a zombie waiting for its parent."""
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def in_session(sid: int) -> list[int]:
    """Live processes of session ``sid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and fields[3] == str(sid) and fields[0] not in ("Z", "X"):
                found.append(int(entry.name))
    return found


class Supervisor:
    """A ``python -m myrq worker --processes ...`` (or a script) in a session of its own."""

    def __init__(self, argv: list[str], log_path: Path) -> None:
        self.log_path = log_path
        self.log = open(log_path, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=worker_env(), stdout=self.log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def children(self) -> list[int]:
        return [p for p in in_session(self.pid) if p != self.pid]

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the supervisor did not exit within {timeout}s:\n{self.output()}"
            ) from None

    def close(self) -> None:
        """SIGKILL every process of the session (children lead groups of their own)."""
        for _ in range(3):
            for pid in in_session(self.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if self.proc.poll() is None:
                self.proc.wait(timeout=10)
            if not in_session(self.pid):
                break
            time.sleep(0.1)
        self.log.close()


@pytest.fixture
def url(redis_server: RedisServer, redis_client: Any) -> str:
    return redis_server.url


@pytest.fixture
def broker(url: str) -> Iterator[RedisBroker]:
    b = RedisBroker.from_url(url)
    yield b
    b.close()


@pytest.fixture
def start(tmp_path: Path, url: str) -> Iterator[Any]:
    """``start("--processes", "2", ...)`` runs ``myrq worker q --broker URL --lease-ttl 1 ...``."""
    started: list[Supervisor] = []

    def starter(*args: str, script: str | None = None) -> Supervisor:
        n = len(started) + 1
        if script is not None:
            path = tmp_path / f"pool{n}.py"
            path.write_text(script)
            argv = [sys.executable, str(path), url, str(tmp_path)]
        else:
            argv = [sys.executable, "-m", "myrq", "worker", "q", "--broker", url,
                    "--lease-ttl", "1", *args]  # fmt: skip
        sup = Supervisor(argv, tmp_path / f"supervisor{n}.log")
        started.append(sup)
        return sup

    yield starter
    for sup in started:
        sup.close()
    for sup in started:
        assert not in_session(sup.pid), f"processes left behind: {in_session(sup.pid)}"


def registered(broker: RedisBroker, prefix: str = "") -> dict[str, int]:
    """Live workers whose name starts with ``prefix``: name -> pid."""
    return {
        name: int(rec["pid"]) for name, rec in broker.workers().items() if name.startswith(prefix)
    }


def wait_running(jobs: list[Job], timeout: float = 15) -> None:
    wait_for(lambda: all(j.get_status() is JobStatus.RUNNING for j in jobs), timeout, "jobs to run")


# -- without processes -------------------------------------------------------------------


def test_restart_delays_double_from_the_first_up_to_the_cap() -> None:
    policy = RestartPolicy(first_delay=1, max_delay=10, healthy_after=30)
    streak, delays = 0, []
    for _ in range(7):
        delay, streak = policy.next(streak, lived=0.5)
        delays.append(delay)
    assert delays == [0, 1, 2, 4, 8, 10, 10]


def test_a_child_that_lived_a_while_is_replaced_at_once_and_its_streak_forgotten() -> None:
    policy = RestartPolicy(first_delay=1, max_delay=10, healthy_after=30)
    assert policy.next(5, lived=30.0) == (0.0, 1)
    assert policy.next(1, lived=29.9) == (1.0, 2)


@pytest.mark.parametrize(
    "kwargs", [{"first_delay": 0}, {"first_delay": 5, "max_delay": 1}, {"healthy_after": -1}]
)
def test_a_restart_policy_out_of_range_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError, match="RestartPolicy"):
        RestartPolicy(**kwargs)


@pytest.mark.parametrize("processes", [0, -1, 1025, True, 2.0, "2"])
def test_a_number_of_processes_out_of_range_is_refused(processes: Any) -> None:
    with pytest.raises(ConfigurationError, match="processes must be a whole number"):
        WorkerPool(["q"], processes)


@pytest.mark.parametrize(
    "broker",
    [
        "memory://",
        "fakeredis://",
        MemoryBroker(),
        RedisBroker(fakeredis.FakeRedis()),
    ],
    ids=["memory-url", "fakeredis-url", "memory-instance", "fakeredis-instance"],
)
def test_a_broker_that_lives_in_one_process_is_refused(broker: Any) -> None:
    pool = WorkerPool(["q"], 2, broker=broker)
    with pytest.raises(ConfigurationError, match="needs a broker that every worker process"):
        pool.run()
    assert pool.pids == []


def test_the_command_line_refuses_processes_with_the_memory_broker(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["worker", "q", "--processes", "2", "--broker", "memory://"]) == 1
    err = capsys.readouterr().err
    assert "needs a broker that every worker process reaches, such as Redis" in err
    assert "memory://" in err


@pytest.mark.parametrize("max_jobs", [0, -1, True])
def test_max_jobs_below_one_is_refused(max_jobs: Any) -> None:
    """0 would make every child exit at once, to be replaced at once: a fork storm."""
    with pytest.raises(ConfigurationError, match="max_jobs must be a whole number >= 1"):
        WorkerPool(["q"], 1, broker=f"redis://127.0.0.1:{free_port()}/0").run(max_jobs=max_jobs)


def test_a_bad_worker_option_fails_the_pool_before_it_forks() -> None:
    pool = WorkerPool(["q"], 2, broker=f"redis://127.0.0.1:{free_port()}/0", lease_ttl=0.1)
    with pytest.raises(ConfigurationError, match="lease_ttl"):
        pool.run()
    assert pool.pids == []


def test_an_unreachable_broker_fails_the_pool_before_it_forks() -> None:
    pool = WorkerPool(["q"], 2, broker=f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(BrokerConnectionError):
        pool.run()
    assert pool.pids == []


def test_the_pool_runs_only_in_the_main_thread() -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            WorkerPool(["q"], 1, broker="memory://").run()
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    t.join(10)
    assert len(errors) == 1 and "main thread" in str(errors[0])


def test_the_parent_watch_reports_an_orphan_and_only_an_orphan() -> None:
    calls: list[str] = []
    # A process whose parent is not the one it was started by is an orphan.
    watch_parent(os.getppid() + 100_000, 0.01, lambda: calls.append("orphaned"))
    assert calls == ["orphaned"]
    halt = threading.Event()
    t = threading.Thread(
        target=watch_parent, args=(os.getppid(), 0.01, lambda: calls.append("wrong"), halt)
    )
    t.start()
    time.sleep(0.1)
    halt.set()
    t.join(5)
    assert calls == ["orphaned"]


def test_a_forked_child_does_not_share_the_parents_redis_connection(broker: RedisBroker) -> None:
    """What the pool relies on for a Broker it is given: redis-py reconnects after a fork."""
    parent_id = broker.client.client_id()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.write(write_fd, str(broker.client.client_id()).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    try:
        child_id = int(os.read(read_fd, 64))
    finally:
        os.close(read_fd)
        os.waitpid(pid, 0)
    assert child_id != parent_id
    assert broker.client.client_id() == parent_id  # the parent's connection still works


def test_a_broken_import_fails_the_pool_at_start(tmp_path: Path) -> None:
    """The supervisor imports --import modules before it forks: no child dies of it, in a loop."""
    done = subprocess.run(
        [sys.executable, "-m", "myrq", "worker", "q", "--processes", "2",
         "--broker", f"redis://127.0.0.1:{free_port()}/0", "--import", "no_such_module_xyz"],
        cwd=ROOT, env=worker_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert "--import no_such_module_xyz" in done.stderr
    assert "starting 2 worker processes" not in done.stderr


# -- with processes ----------------------------------------------------------------------


@pytest.mark.slow
def test_a_pool_shows_as_n_workers_and_stops_on_sigterm(
    start: Any, broker: RedisBroker, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    sup = start("--processes", "3", "--name", "pool")
    wait_for(lambda: len(registered(broker, "pool-")) == 3, 15, "three registered workers")
    workers = registered(broker, "pool-")
    assert sorted(re.sub(r"\.\d+$", "", n) for n in workers) == ["pool-1", "pool-2", "pool-3"]
    assert all(name == f"{name.rpartition('.')[0]}.{pid}" for name, pid in workers.items())
    assert sorted(workers.values()) == sorted(sup.children())
    assert all(_stat(pid)[1] == str(sup.pid) for pid in workers.values())  # type: ignore[index]
    assert main(["workers", "--broker", url]) == 0
    assert "workers: 3 alive" in capsys.readouterr().out
    sup.proc.send_signal(signal.SIGTERM)
    assert sup.wait(15) == 0
    assert registered(broker) == {}
    assert sup.output().count(" stopped after ") == 3


@pytest.mark.slow
def test_a_child_killed_with_sigkill_is_replaced_and_its_job_runs_once_more_after_its_lease(
    start: Any, broker: RedisBroker, tmp_path: Path
) -> None:
    starts = tmp_path / "starts"
    sup = start("--processes", "2", "--name", "k9")
    wait_for(lambda: len(registered(broker, "k9-")) == 2, 15, "two registered workers")
    job = Queue("q", broker=broker).enqueue("tests.faultjobs.record_start", str(starts), 60, 0.1)
    wait_for(lambda: len(read_starts(starts)) == 1, 15, "the job to start")
    [(_, victim)] = read_starts(starts)
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    wait_for(lambda: job.get_status() is JobStatus.FINISHED, 15, "the job to run again")
    rerun_after = time.monotonic() - killed_at
    first, second = read_starts(starts)
    assert first[1] == victim and second[1] != victim and len(read_starts(starts)) == 2
    assert job.result == f"pid {second[1]}" and job.attempts == 2
    assert 0.5 < rerun_after < 10  # after the 1 s lease, not at once
    wait_for(
        lambda: len(registered(broker, "k9-")) == 2 and victim not in registered(broker).values(),
        15,
        "a replacement to register and the dead child's registration to expire",
    )
    assert re.search(rf"worker process \d \(k9-\d\.{victim}\) was killed by SIGKILL", sup.output())
    assert victim not in sup.children() and len(sup.children()) == 2
    sup.proc.send_signal(signal.SIGTERM)
    assert sup.wait(15) == 0


@pytest.mark.slow
def test_sigterm_lets_running_jobs_finish_and_leaves_queued_jobs_queued(
    start: Any, broker: RedisBroker, tmp_path: Path
) -> None:
    q = Queue("q", broker=broker)
    sup = start("--processes", "2", "--name", "gr")
    wait_for(lambda: len(registered(broker, "gr-")) == 2, 15, "two registered workers")
    logs = [tmp_path / f"starts{i}" for i in range(2)]
    running = [q.enqueue("tests.faultjobs.record_start", str(p), 2.0) for p in logs]
    wait_running(running)
    queued = [q.enqueue("tests.jobs.add", i, i) for i in range(3)]
    sup.proc.send_signal(signal.SIGTERM)
    stopped_at = time.monotonic()
    assert sup.wait(20) == 0
    assert time.monotonic() - stopped_at > 1.0  # it waited for the jobs
    for job, log in zip(running, logs, strict=True):
        assert job.get_status() is JobStatus.FINISHED and len(read_starts(log)) == 1
    assert [j.get_status() for j in queued] == [JobStatus.PENDING] * 3
    assert broker.queue_length("q") == 3 and broker.leased_ids() == []
    assert registered(broker) == {}
    assert "got SIGTERM: passing it on to 2 worker processes" in sup.output()


@pytest.mark.slow
def test_ctrl_c_in_a_terminal_reaches_the_children_once_so_their_jobs_finish(
    start: Any, broker: RedisBroker, tmp_path: Path
) -> None:
    """A terminal sends SIGINT to its foreground process group: the supervisor's, not the
    children's (each leads its own), so they get it once, passed on, and stop gracefully."""
    starts = tmp_path / "starts"
    sup = start("--processes", "2", "--name", "cc")
    wait_for(lambda: len(registered(broker, "cc-")) == 2, 15, "two registered workers")
    assert all(os.getpgid(p) == p for p in sup.children())
    job = Queue("q", broker=broker).enqueue("tests.faultjobs.record_start", str(starts), 1.5)
    wait_running([job])
    os.killpg(sup.pid, signal.SIGINT)
    assert sup.wait(20) == 0
    assert job.get_status() is JobStatus.FINISHED and len(read_starts(starts)) == 1
    assert "got SIGINT: passing it on to 2 worker processes" in sup.output()
    assert "got SIGINT again" not in sup.output()


@pytest.mark.slow
def test_a_second_sigterm_puts_the_running_jobs_back_at_once(
    start: Any, broker: RedisBroker, tmp_path: Path
) -> None:
    q = Queue("q", broker=broker)
    sup = start("--processes", "2", "--name", "st")
    wait_for(lambda: len(registered(broker, "st-")) == 2, 15, "two registered workers")
    running = [
        q.enqueue("tests.faultjobs.record_start", str(tmp_path / f"s{i}"), 60) for i in (1, 2)
    ]
    wait_running(running)
    sup.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    sup.proc.send_signal(signal.SIGTERM)
    assert sup.wait(15) == 0
    assert [j.get_status() for j in running] == [JobStatus.PENDING] * 2
    assert broker.queue_length("q") == 2 and broker.leased_ids() == []
    assert "again: passing it on to 2 worker processes" in sup.output()


@pytest.mark.slow
def test_children_that_keep_dying_are_restarted_with_growing_delays(
    start: Any, broker: RedisBroker, tmp_path: Path
) -> None:
    """Children that die at start (here a hook kills them) never make a restart storm."""
    script = """
import logging, os, sys, time
from myrq import Hooks
from myrq.worker.pool import RestartPolicy, WorkerPool

class Die(Hooks):
    def worker_started(self, worker):
        with open(os.path.join(sys.argv[2], "started"), "a") as f:
            f.write(f"{time.monotonic()} {worker.name}\\n")
        os._exit(3)

logging.basicConfig(level=logging.INFO)
policy = RestartPolicy(first_delay=0.2, max_delay=0.8, healthy_after=60)
sys.exit(WorkerPool(["q"], 2, broker=sys.argv[1], name="die", hooks=[Die()],
                    restart=policy).run())
"""
    sup = start(script=script)
    started = tmp_path / "started"
    time.sleep(4.0)
    sup.proc.send_signal(signal.SIGTERM)
    assert sup.wait(15) == 1  # its children never ran cleanly
    by_slot: dict[str, list[float]] = {}
    for line in started.read_text().splitlines():
        when, name = line.split()
        by_slot.setdefault(name.rpartition(".")[0], []).append(float(when))
    assert sorted(by_slot) == ["die-1", "die-2"]
    for times in by_slot.values():
        gaps = [b - a for a, b in itertools.pairwise(times)]
        # 0 (at once), then 0.2, 0.4, 0.8, 0.8, ... plus a child's start-up each time.
        expected = [0.0, 0.2, 0.4, 0.8, 0.8, 0.8][: len(gaps)]
        assert 5 <= len(times) <= 9, times
        for gap, least in zip(gaps, expected, strict=False):
            assert least * 0.9 <= gap < least + 1.0, (gaps, expected)
    out = sup.output()
    assert "exited with code 3" in out
    assert "starting another in 0.4s (3 deaths in a row)" in out
    assert "starting another in 0.8s (5 deaths in a row)" in out


@pytest.mark.slow
def test_children_stop_gracefully_when_the_supervisor_is_killed(
    start: Any, broker: RedisBroker, tmp_path: Path
) -> None:
    starts = tmp_path / "starts"
    sup = start("--processes", "2", "--name", "orph")
    wait_for(lambda: len(registered(broker, "orph-")) == 2, 15, "two registered workers")
    children = sup.children()
    job = Queue("q", broker=broker).enqueue("tests.faultjobs.record_start", str(starts), 2.0)
    wait_running([job])
    sup.proc.send_signal(signal.SIGKILL)
    sup.proc.wait(10)
    wait_for(lambda: not any(alive(p) for p in children), 20, "the children to exit")
    assert job.get_status() is JobStatus.FINISHED and len(read_starts(starts)) == 1
    assert registered(broker) == {} and broker.leased_ids() == []
    assert sup.output().count("got SIGTERM: finishing the current job") == 2


@pytest.mark.slow
def test_a_burst_pool_exits_once_every_child_found_the_queues_empty(
    start: Any, broker: RedisBroker
) -> None:
    q = Queue("q", broker=broker)
    jobs = [q.enqueue("tests.jobs.nap", 0.05, i) for i in range(40)]
    sup = start("--processes", "2", "--burst", "--name", "b")
    assert sup.wait(30) == 0
    assert all(j.get_status() is JobStatus.FINISHED for j in jobs)
    assert {(j.worker_name or "").rpartition(".")[0] for j in jobs} == {"b-1", "b-2"}
    assert registered(broker) == {}


@pytest.mark.slow
def test_max_jobs_replaces_each_child_after_that_many_jobs(start: Any, broker: RedisBroker) -> None:
    q = Queue("q", broker=broker)
    jobs = [q.enqueue("tests.jobs.add", i, i) for i in range(5)]
    sup = start("--processes", "1", "--burst", "--max-jobs", "2", "--name", "mj")
    assert sup.wait(30) == 0
    assert all(j.get_status() is JobStatus.FINISHED for j in jobs)
    names = [j.worker_name for j in jobs]
    assert len(set(names)) == 3 and all((n or "").startswith("mj-1.") for n in names)
    assert sup.output().count("ran its max_jobs; starting another") == 2


@pytest.mark.slow
def test_a_child_that_exits_0_in_a_job_counts_as_dead_and_is_replaced(
    start: Any, broker: RedisBroker, tmp_path: Path
) -> None:
    """Only the child's status byte says it is done, not its exit code."""
    q = Queue("q", broker=broker)
    job = q.enqueue("tests.test_pool.exit_on_first_attempt", str(tmp_path / "marker"), 0)
    sup = start("--processes", "1", "--name", "ex")
    wait_for(lambda: job.get_status() is JobStatus.FINISHED, 20, "the job to run again")
    assert job.result == "second" and job.attempts == 2
    assert "exited with code 0 before its worker returned" in sup.output()
    sup.proc.send_signal(signal.SIGTERM)
    assert sup.wait(15) == 0


@pytest.mark.slow
def test_processes_times_concurrency_runs_that_many_jobs_at_once(
    start: Any, broker: RedisBroker, tmp_path: Path
) -> None:
    q = Queue("q", broker=broker)
    ledger = tmp_path / "ledger"
    jobs = [q.enqueue("tests.asyncjobs.async_span", str(ledger), f"j{i}", 0.5) for i in range(8)]
    sup = start("--processes", "2", "--concurrency", "4", "--burst", "--name", "pc")
    assert sup.wait(30) == 0
    assert all(j.get_status() is JobStatus.FINISHED for j in jobs)
    spans = [
        (float(a), float(b))
        for _, a, b in (line.split() for line in ledger.read_text().splitlines())
    ]
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    now = peak = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    assert 5 <= peak <= 8, peak  # more than one process's 4: both ran their 4 at once
    assert {(j.worker_name or "").rpartition(".")[0] for j in jobs} == {"pc-1", "pc-2"}
