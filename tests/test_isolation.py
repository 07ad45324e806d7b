"""Process isolation (a crashing job fails, the worker goes on) and the shutdown grace period."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from myrq import ConfigurationError, JobStatus, Queue, Worker
from myrq.backends import Broker, MemoryBroker, RedisBroker
from myrq.testing.redis_server import RedisServer
from tests import jobs

ROOT = Path(__file__).resolve().parent.parent


def run(broker: Broker, **kw: object) -> Worker:
    w = Worker(["default"], broker=broker, lease_ttl=30, isolate=True, **kw)  # type: ignore[arg-type]
    w.work(burst=True)
    return w


def test_isolated_jobs_run_in_a_child_and_return_results(broker: Broker) -> None:
    q = Queue("default", broker=broker)
    ok = q.enqueue(jobs.pid)
    raised = q.enqueue(jobs.fail, "boom")
    exited = q.enqueue(jobs.exit_job, 4)
    unencodable = q.enqueue(jobs.return_unencodable)
    not_allowed = q.enqueue("os.getpid")
    w = run(broker)
    assert ok.get_status() is JobStatus.FINISHED
    assert isinstance(ok.result, int) and ok.result != os.getpid()
    assert raised.get_status() is JobStatus.FAILED
    assert raised.error is not None and raised.error.type == "ValueError"
    assert raised.error.message == "boom" and "jobs.py" in raised.error.traceback
    assert exited.get_status() is JobStatus.FAILED
    assert exited.error is not None and exited.error.type == "SystemExit"
    assert unencodable.get_status() is JobStatus.FAILED
    assert unencodable.error is not None
    assert unencodable.error.type == "ResultSerializationError"
    assert not_allowed.get_status() is JobStatus.FAILED
    assert not_allowed.error is not None and not_allowed.error.type == "FunctionNotAllowed"
    assert w.stats.finished == 1 and w.stats.failed == 4


def test_a_segfault_or_os_exit_fails_the_job_not_the_worker() -> None:
    broker = MemoryBroker()
    q = Queue("default", broker=broker)
    crash = q.enqueue(jobs.segfault)
    hard = q.enqueue(jobs.hard_exit, 3)
    after = q.enqueue(jobs.add, 1, 2)
    w = run(broker)
    assert crash.get_status() is JobStatus.FAILED
    assert crash.error is not None and crash.error.type == "ChildProcessDied"
    assert "SIGSEGV" in crash.error.message
    assert hard.get_status() is JobStatus.FAILED
    assert hard.error is not None and "exited with code 3" in hard.error.message
    assert after.get_status() is JobStatus.FINISHED and after.result == 3
    assert w.stats.failed == 2


def test_memory_blow_up_fails_the_job_under_a_memory_limit() -> None:
    broker = MemoryBroker()
    q = Queue("default", broker=broker)
    hog = q.enqueue(jobs.hog_memory, 4096)  # 4 GiB against a 1 GiB cap
    small = q.enqueue(jobs.hog_memory, 1)
    run(broker, job_memory_limit=1024**3)
    assert hog.get_status() is JobStatus.FAILED
    assert hog.error is not None and hog.error.type == "MemoryError"
    assert small.get_status() is JobStatus.FINISHED and small.result == 1024 * 1024


def test_the_timeout_kills_an_isolated_job() -> None:
    broker = MemoryBroker()
    q = Queue("default", broker=broker)
    stuck = q.enqueue(jobs.swallow_everything, 30, job_timeout=0.5)
    started = time.monotonic()
    run(broker)
    assert time.monotonic() - started < 10
    assert stuck.get_status() is JobStatus.TIMEOUT
    assert stuck.error is not None and "killed" in stuck.error.message
    assert stuck.error.type == "myrq.exceptions.JobTimeout"  # as when run in process


def test_isolation_can_be_limited_to_some_queues() -> None:
    broker = MemoryBroker()
    inside = Queue("risky", broker=broker).enqueue(jobs.pid)
    outside = Queue("default", broker=broker).enqueue(jobs.pid)
    Worker(["risky", "default"], broker=broker, isolate=["risky"]).work(burst=True)
    assert inside.get_status() is JobStatus.FINISHED and inside.result != os.getpid()
    assert outside.get_status() is JobStatus.FINISHED and outside.result == os.getpid()


# -- shutdown: grace period, second signal, isolated children ---------------------------


@contextmanager
def worker_process(url: str, *extra: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "myrq", "worker", "default", "--broker", url, *extra],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def wait_until_running(job_id: str, broker: RedisBroker, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        fields = broker.get(job_id) or {}
        if fields.get("status") == b"running":
            return
        assert time.monotonic() < deadline, "job never started"
        time.sleep(0.05)


@pytest.fixture
def rbroker(redis_server: RedisServer) -> Iterator[RedisBroker]:
    b = RedisBroker.from_url(redis_server.url)
    b.client.flushall()
    yield b
    b.client.flushall()
    b.close()


@pytest.mark.slow
@pytest.mark.parametrize("isolate", [False, True], ids=["in-process", "isolated"])
def test_grace_period_over_puts_the_job_back_and_exits_zero(
    rbroker: RedisBroker, redis_server: RedisServer, isolate: bool
) -> None:
    job = Queue("default", broker=rbroker).enqueue(jobs.nap, 60, "done")
    extra = ["--grace-period", "1", *(["--isolate"] if isolate else [])]
    with worker_process(redis_server.url, *extra) as proc:
        wait_until_running(job.id, rbroker)
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert proc.wait(timeout=20) == 0
        waited = time.monotonic() - started
        out = proc.stdout.read() if proc.stdout else ""
    assert 0.8 < waited < 15, out
    assert "grace period of 1s is over" in out
    assert job.get_status() is JobStatus.PENDING, out
    assert rbroker.queued_ids("default") == [job.id]
    assert rbroker.leased_ids() == []


@pytest.mark.slow
def test_job_that_ends_within_the_grace_period_finishes(
    rbroker: RedisBroker, redis_server: RedisServer
) -> None:
    job = Queue("default", broker=rbroker).enqueue(jobs.nap, 1, "done")
    with worker_process(redis_server.url, "--grace-period", "20") as proc:
        wait_until_running(job.id, rbroker)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    assert job.get_status() is JobStatus.FINISHED and job.result == "done"


@pytest.mark.slow
def test_second_signal_kills_an_isolated_child_and_requeues(
    rbroker: RedisBroker, redis_server: RedisServer, tmp_path: Path
) -> None:
    pid_file = tmp_path / "child"
    job = Queue("default", broker=rbroker).enqueue(jobs.slow_on_first_attempt, str(pid_file), 60)
    with worker_process(redis_server.url, "--isolate") as proc:
        wait_until_running(job.id, rbroker)
        deadline = time.monotonic() + 10
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        child = int(pid_file.read_text())
        assert child != proc.pid
        proc.send_signal(signal.SIGINT)  # a terminal's Ctrl-C reaches the child too:
        os.kill(child, signal.SIGINT)  # it must ignore it, the parent decides
        time.sleep(0.5)
        assert proc.poll() is None and _alive(child)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    assert not _alive(child)
    assert job.get_status() is JobStatus.PENDING
    assert rbroker.queued_ids("default") == [job.id]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie not yet reaped by anyone counts as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_memory_limit_without_isolation_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="job_memory_limit needs isolation"):
        Worker(["default"], broker="memory://", job_memory_limit=1024**3)


# -- the child's report, processes left behind, orphans ----------------------------------


def test_a_child_killed_while_writing_a_large_result_fails_the_job() -> None:
    broker = MemoryBroker()
    q = Queue("default", broker=broker)
    cut = q.enqueue(jobs.big_result_killed_halfway, 8, os.getpid())
    after = q.enqueue(jobs.killed_after_reporting, os.getpid())
    whole = q.enqueue(jobs.big_result, 8)
    w = run(broker)
    assert cut.get_status() is JobStatus.FAILED, "a truncated result was accepted"
    assert cut.error is not None and cut.error.type == "ChildProcessDied"
    assert cut.error.message == (
        "the job's process was killed by SIGKILL (out of memory?) while it reported its outcome"
    )
    # A complete report counts only from a child that then exited normally.
    assert after.get_status() is JobStatus.FAILED
    assert after.error is not None and after.error.type == "ChildProcessDied"
    assert "SIGKILL" in after.error.message and "after it reported" in after.error.message
    assert whole.get_status() is JobStatus.FINISHED
    assert whole.result == "x" * (8 * 1024 * 1024)
    assert w.stats.finished == 1 and w.stats.failed == 2


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "waitpid-poll"])
@pytest.mark.parametrize("how", ["fork", "multiprocessing"])
def test_a_process_left_behind_does_not_hold_the_job_until_its_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, pidfd: bool
) -> None:
    if not pidfd:
        monkeypatch.delattr(os, "pidfd_open", raising=False)
    broker = MemoryBroker()
    q = Queue("default", broker=broker)
    files = {outcome: tmp_path / outcome for outcome in ("return", "raise", "exit")}
    enqueued = {
        outcome: q.enqueue(jobs.leave_a_process_behind, str(path), how, 60, outcome, job_timeout=30)
        for outcome, path in files.items()
    }
    started = time.monotonic()
    try:
        run(broker)
        elapsed = time.monotonic() - started
    finally:
        for path in files.values():
            if path.exists():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(path.read_text()), signal.SIGKILL)
    assert elapsed < 2, f"three jobs took {elapsed:.1f}s"
    returned, raised, exited = enqueued.values()
    assert returned.get_status() is JobStatus.FINISHED and returned.result == "returned"
    assert raised.get_status() is JobStatus.FAILED
    assert raised.error is not None and raised.error.type == "ValueError"
    assert exited.get_status() is JobStatus.FAILED
    assert exited.error is not None and exited.error.type == "ChildProcessDied"
    assert "exited with code 3 before it returned" in exited.error.message


def _pid_from(path: Path, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, "the job never wrote its pid"
        time.sleep(0.02)
    return int(path.read_text())


def _dies_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.slow
def test_a_worker_killed_with_sigkill_takes_its_isolated_child_along(
    rbroker: RedisBroker, redis_server: RedisServer, tmp_path: Path
) -> None:
    pid_file = tmp_path / "child"
    Queue("default", broker=rbroker).enqueue(jobs.slow_on_first_attempt, str(pid_file), 60)
    with worker_process(redis_server.url, "--isolate", "--burst") as proc:
        child = _pid_from(pid_file)
        try:
            proc.kill()
            proc.wait(timeout=10)
            assert _dies_within(child, 2), "the orphaned child runs on beside the job's rerun"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)


@pytest.mark.slow
def test_an_orphaned_child_dies_shortly_after_its_timeout(
    rbroker: RedisBroker, redis_server: RedisServer, tmp_path: Path
) -> None:
    # The job switches the parent-death signal off (as on a platform without one),
    # so only the child's own limit can stop it once its worker is gone.
    pid_file = tmp_path / "child"
    Queue("default", broker=rbroker).enqueue(jobs.orphan_sleeper, str(pid_file), 60, job_timeout=2)
    with worker_process(redis_server.url, "--isolate", "--burst") as proc:
        child = _pid_from(pid_file)
        started = time.monotonic()
        try:
            proc.kill()
            proc.wait(timeout=10)
            assert _alive(child), "the parent-death signal was not switched off"
            assert _dies_within(child, 2 + 4), "the orphan outlived its timeout"
            assert time.monotonic() - started > 1  # its limit, not its worker's death
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)


@pytest.mark.parametrize("how", ["fork", "multiprocessing"])
def test_processes_an_isolated_job_leaves_behind_die_with_it(tmp_path: Path, how: str) -> None:
    """They share the child's process group, which the worker kills when the job ends."""
    broker = MemoryBroker()
    path = tmp_path / "helper.pid"
    job = Queue("default", broker=broker).enqueue(
        jobs.leave_a_process_behind, str(path), how, 60, "return"
    )
    try:
        run(broker)
        assert job.get_status() is JobStatus.FINISHED
        assert _dies_within(_pid_from(path), 3), "the helper outlived its job"
    finally:
        if path.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(path.read_text()), signal.SIGKILL)
