"""Job functions and a worker-process harness for the fault tests.

Used by ``tests/test_faults.py`` and ``benchmarks/reliability.py``. The job
functions are at module level so that ``myrq worker`` processes can import
them (``MYRQ_ALLOW=tests`` allows them once the allow-list exists).

The ledger that proves a job ran lives outside the queue: a plain file, one
line per run, appended with a single ``write()`` on an ``O_APPEND`` descriptor.
Such a write is atomic (a concurrent or killed writer never leaves half a
line), it reaches the page cache before the write returns, so a SIGKILL right
after it does not undo it, and it does not depend on the Redis server whose
faults are being tested (a Redis restart cannot lose or fake an entry).
"""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import redis

from myrq import Queue
from myrq.backends import RedisBroker

ROOT = Path(__file__).resolve().parent.parent

# -- job functions -------------------------------------------------------------


def _append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def ledger_write(path: str, token: str, before: float = 0.0, after: float = 0.0) -> str:
    """Sleep ``before``, append ``"<token> <pid>"`` to the ledger, sleep ``after``.

    A kill during ``before`` loses nothing (the rerun writes the token once); a
    kill during ``after`` makes the rerun write it a second time: a duplicate.
    """
    time.sleep(before)
    _append(path, f"{token} {os.getpid()}\n")
    time.sleep(after)
    return token


def record_start(path: str, first_seconds: float, later_seconds: float = 0.0) -> str:
    """Append ``"<wall clock> <pid>"`` to ``path``, then sleep: ``first_seconds``
    if this is the first run (the file was empty), ``later_seconds`` otherwise.
    Returns ``"pid <pid>"``, so a record shows which process wrote it."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        first = os.fstat(fd).st_size == 0
        os.write(fd, f"{time.time():.6f} {os.getpid()}\n".encode())
    finally:
        os.close(fd)
    time.sleep(first_seconds if first else later_seconds)
    return f"pid {os.getpid()}"


def read_starts(path: Path) -> list[tuple[float, int]]:
    """The ``(time, pid)`` lines :func:`record_start` wrote (none if no file)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        when, pid = line.split()
        out.append((float(when), int(pid)))
    return out


def read_ledger(path: Path) -> collections.Counter[str]:
    """How many times each token was written."""
    if not path.exists():
        return collections.Counter()
    return collections.Counter(line.split()[0] for line in path.read_text().splitlines())


# -- worker processes ------------------------------------------------------------


def worker_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MYRQ_ALLOW": "tests"}
    for name in ("MYRQ_BROKER_URL", "MYRQ_SERIALIZER", "MYRQ_KEY_PREFIX"):
        env.pop(name, None)
    return env


@dataclass
class WorkerProc:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")


class WorkerPool:
    """``python -m myrq worker`` processes, each logging to its own file.

    Every process is SIGKILLed (if still running) and reaped in :meth:`close`,
    which ``with`` calls on every path.
    """

    def __init__(self, url: str, queue: str, log_dir: Path, lease_ttl: float, *extra: str) -> None:
        self.url = url
        self.queue = queue
        self.log_dir = log_dir
        self.lease_ttl = lease_ttl
        self.extra = list(extra)
        self.procs: list[WorkerProc] = []  # every process ever started
        self._n = 0

    def spawn(self) -> WorkerProc:
        self._n += 1
        name = f"{self.queue}-w{self._n}"
        log_path = self.log_dir / f"{name}.log"
        log = open(log_path, "wb")  # noqa: SIM115 - closed in close()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "myrq", "worker", self.queue, "--broker", self.url,
                 "--lease-ttl", str(self.lease_ttl), "--name", name, *self.extra],
                cwd=ROOT, env=worker_env(), stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        except BaseException:
            log.close()
            raise
        wp = WorkerProc(name, proc, log_path, log)
        self.procs.append(wp)
        return wp

    def alive(self) -> list[WorkerProc]:
        return [w for w in self.procs if w.proc.poll() is None]

    def by_pid(self, pid: int) -> WorkerProc:
        return next(w for w in self.procs if w.pid == pid)

    @staticmethod
    def kill(wp: WorkerProc) -> None:
        if wp.proc.poll() is None:
            wp.proc.send_signal(signal.SIGKILL)
        wp.proc.wait(timeout=10)

    def close(self) -> None:
        for wp in self.procs:
            if wp.proc.poll() is None:
                # A stopped process dies of SIGKILL too; SIGCONT is not needed.
                wp.proc.kill()
        for wp in self.procs:
            try:
                wp.proc.wait(timeout=10)
            finally:
                wp.log.close()

    def all_output(self) -> str:
        return "".join(w.output() for w in self.procs)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_for(pred: Any, timeout: float, what: str, step: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


def statuses(client: redis.Redis, ids: list[str], prefix: str = "myrq:") -> list[bytes | None]:
    """``status`` of each job id's record, in one pipelined round trip per 1000."""
    out: list[bytes | None] = []
    for start in range(0, len(ids), 1000):
        pipe = client.pipeline(transaction=False)
        for job_id in ids[start : start + 1000]:
            pipe.hget(f"{prefix}job:{job_id}", "status")
        out += pipe.execute()
    return out


# -- the chaos run -------------------------------------------------------------

#: The ``myrq worker`` default (``--max-attempts``), which the chaos workers keep.
MAX_ATTEMPTS = 3


@dataclass
class ChaosReport:
    enqueued: int = 0
    seconds: float = 0.0
    kills: int = 0  # SIGKILLs sent
    kills_holding_a_job: int = 0  # ... to a worker that held a leased job
    spared: int = 0  # victims spared: their job was on its last safe attempt
    lost_lease_warnings: int = 0  # "lost its lease" lines of live workers
    error_lines: list[str] = field(default_factory=list)
    missing_tokens: list[str] = field(default_factory=list)
    not_finished: dict[str, str] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)  # token -> times written
    attempts: collections.Counter[int] = field(default_factory=collections.Counter)

    @property
    def lost(self) -> int:
        return len(set(self.missing_tokens) | set(self.not_finished))

    def summary(self) -> str:
        return (
            f"{self.enqueued} jobs, 3 workers, {self.kills} SIGKILLs "
            f"({self.kills_holding_a_job} holding a job, {self.spared} spared) in "
            f"{self.seconds:.1f}s: lost {self.lost}, duplicated {len(self.duplicates)} "
            f"(extra runs {sum(n - 1 for n in self.duplicates.values())}), live-worker "
            f"lost leases {self.lost_lease_warnings}, attempts {dict(sorted(self.attempts.items()))}"
        )


def _held_jobs(client: redis.Redis, worker: str) -> list[tuple[str, int]]:
    """(id, attempts) of the leased jobs whose record names ``worker``."""
    held = []
    for raw in client.zrange("myrq:leases", 0, -1):
        job_id = raw.decode()
        name, attempts = client.hmget(f"myrq:job:{job_id}", ["worker", "attempts"])
        if name is not None and name.decode() == worker:
            held.append((job_id, int(attempts or 0)))
    return held


def run_chaos(
    url: str,
    work_dir: Path,
    jobs: int = 2500,
    workers: int = 3,
    lease_ttl: float = 2.0,
    kill_every: float = 1.0,
    seed: int = 0,
    timeout: float = 90.0,
    job_sleep: float = 0.008,
) -> ChaosReport:
    """Drain ``jobs`` ledger jobs with ``workers`` processes while SIGKILLing a
    random one about every ``kill_every`` seconds and starting a replacement.

    No job can be abandoned (failed after ``MAX_ATTEMPTS`` claims) because of
    the kills, which the workers' default ``max_attempts`` would otherwise allow: the
    victim is SIGSTOPped first, and if it holds a job already claimed
    ``MAX_ATTEMPTS - 1`` times or more it is resumed and spared. A job is
    therefore killed at most on its first attempt, and being abandoned would
    take two more lease losses of live workers in a row.
    """
    rng = random.Random(seed)
    ledger = work_dir / "ledger.txt"
    client = redis.Redis.from_url(url)
    broker = RedisBroker(client, url=url)
    queue = Queue("chaos", broker=broker, result_ttl=-1)
    ids = [f"chaos-{i:05d}" for i in range(jobs)]
    batch = [
        queue.prepare(
            "tests.faultjobs.ledger_write",
            (str(ledger), job_id, rng.uniform(0, job_sleep), rng.uniform(0, job_sleep)),
            job_id=job_id,
        )
        for job_id in ids
    ]
    for start in range(0, jobs, 500):
        queue.enqueue_many(batch[start : start + 500])
    report = ChaosReport(enqueued=jobs)
    started = time.monotonic()
    with WorkerPool(url, "chaos", work_dir, lease_ttl) as pool:
        for _ in range(workers):
            pool.spawn()
        while statuses(client, ids).count(b"finished") < jobs:
            if time.monotonic() - started > timeout:
                break
            time.sleep(kill_every * rng.uniform(0.5, 1.5))
            victim = rng.choice(pool.alive())
            victim.proc.send_signal(signal.SIGSTOP)
            time.sleep(0.1)  # let Redis run whatever the victim had already sent
            held = _held_jobs(client, victim.name)
            if any(attempts > MAX_ATTEMPTS - 2 for _, attempts in held):
                victim.proc.send_signal(signal.SIGCONT)
                report.spared += 1
                continue
            pool.kill(victim)
            report.kills += 1
            report.kills_holding_a_job += bool(held)
            pool.spawn()
        report.seconds = time.monotonic() - started
        output = pool.all_output()
    report.lost_lease_warnings = output.count("lost its lease")
    report.error_lines = [
        line for line in output.splitlines() if " ERROR " in line or "Traceback" in line
    ]
    written = read_ledger(ledger)
    report.missing_tokens = [t for t in ids if t not in written]
    report.duplicates = {t: n for t, n in sorted(written.items()) if n > 1}
    for job_id, status in zip(ids, statuses(client, ids), strict=True):
        if status != b"finished":
            report.not_finished[job_id] = status.decode() if status else "(no record)"
    pipe = client.pipeline(transaction=False)
    for job_id in ids:
        pipe.hget(f"myrq:job:{job_id}", "attempts")
    report.attempts = collections.Counter(int(a or 0) for a in pipe.execute())
    client.close()
    return report


def wait_until_finished(broker: Any, ids: list[str], timeout: float) -> None:
    """Wait until every job of ``ids`` ends ``finished``, with what is left on failure.

    Call it while the workers still run: a job whose outcome was dropped in a
    fault is run again only once a live worker reaps its expired lease.
    """

    def unfinished() -> dict[str, dict[str, bytes]]:
        records = {i: broker.get(i) or {} for i in ids}
        return {i: r for i, r in records.items() if r.get("status") != b"finished"}

    deadline = time.monotonic() + timeout
    while unfinished() and time.monotonic() < deadline:
        time.sleep(0.2)
    left = unfinished()
    leases = {i: broker.lease_deadline(i) for i in list(left)[:3]}
    assert not left, (
        f"{len(left)} jobs did not end finished: {list(left.items())[:3]}; "
        f"leases {leases}, now {time.time()}, workers {list(broker.workers())}"
    )
