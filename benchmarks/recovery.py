"""Recovery after a worker's SIGKILL with the default lease, and what the heartbeat costs.

1. recovery: a ``python -m myrq worker`` process (the default ``--lease-ttl``,
   15 s, unless ``--lease-ttl`` is given) runs ``tests.jobs.nap(60)``. It is
   SIGKILLed at a random moment of its heartbeat (uniform over one beat, a
   third of the lease), a second worker is started at once, and the time from
   the kill to the job's record saying ``running`` on the second worker is
   measured. Repeated ``--samples`` times, each on a fresh database.
2. heartbeat cost: ``INFO commandstats`` over ``--seconds`` for (a) one worker
   running a long job (its only traffic is the heartbeat: renew, register,
   reap every third of the lease) and (b) ``--idle`` idle workers (the
   heartbeat without a renewal, plus the idle wait: a claim attempt and a
   ``BLPOP`` of up to 1 s, over and over). Commands run inside the Lua
   scripts are counted by Redis as well as the ``EVALSHA`` that runs them.

The server is a private redis-server on a unix socket
(``myrq.testing.redis_server.RedisServer``; never port 6379). Workers are
separate processes (cwd and ``PYTHONPATH`` at the repository root,
``MYRQ_ALLOW=tests``), each in its own session; every process started is
killed and reaped on the way out.

    .venv/bin/python -m benchmarks.recovery [--samples 3] [--lease-ttl SECONDS] [--seconds 60]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.jobs holds the job function

from myrq import Queue  # noqa: E402
from myrq.backends import RedisBroker  # noqa: E402
from myrq.testing.redis_server import RedisServer  # noqa: E402

QUEUE = "recovery"
#: Commands the measuring client itself sends; left out of the counts.
OURS = {"info", "config", "ping", "client", "hello", "flushall"}


class Workers:
    """``python -m myrq worker`` processes, each in a session of its own; all killed on exit."""

    def __init__(self, url: str, logs: Path, lease_ttl: float | None) -> None:
        self.url = url
        self.logs = logs
        self.lease_ttl = lease_ttl
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "myrq", "worker", QUEUE, "--broker", self.url, "--name", name]
        if self.lease_ttl is not None:
            cmd += ["--lease-ttl", f"{self.lease_ttl:g}"]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "MYRQ_ALLOW": "tests"}
        with (self.logs / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True
            )
        self.procs[name] = proc
        return proc

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # its session: the worker and any child
        proc.wait(timeout=10)

    def kill_all(self) -> None:
        for name in list(self.procs):
            self.kill(name)

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill_all()


def wait_for(pred: Callable[[], object], timeout: float, what: str, step: float = 0.005) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(step)


def running_on(client: redis.Redis, job_id: str, worker: str) -> bool:
    status, name = client.hmget(f"myrq:job:{job_id}", "status", "worker")
    return status == b"running" and name == worker.encode()


def redis_now(client: redis.Redis) -> float:
    seconds, micros = client.time()
    return int(seconds) + int(micros) / 1e6


@contextlib.contextmanager
def server_and_workers(lease_ttl: float | None) -> Iterator[tuple[str, redis.Redis, Workers]]:
    with (
        RedisServer() as server,
        tempfile.TemporaryDirectory(prefix="myrq-recovery-") as tmp,
        Workers(server.url, Path(tmp), lease_ttl) as workers,
    ):
        client = redis.Redis.from_url(server.url)
        try:
            yield server.url, client, workers
        finally:
            client.close()


def recovery(samples: int, lease_ttl: float | None, seed: int) -> None:
    lease = 15.0 if lease_ttl is None else lease_ttl
    beat = lease / 3
    rng = random.Random(seed)
    print(f"1. recovery, lease {lease:g}s ({'default' if lease_ttl is None else 'given'})")
    print(
        f"   {'#':>2} {'killed after':>12} {'lease left':>10} {'2nd up':>7} {'running again':>13}"
    )
    totals: list[float] = []
    with server_and_workers(lease_ttl) as (url, client, workers):
        broker = RedisBroker.from_url(url)
        for i in range(1, samples + 1):
            client.flushall()
            first, second = f"first-{i}", f"second-{i}"
            job = Queue(QUEUE, broker=broker).enqueue_call("tests.jobs.nap", args=(60,))
            workers.start(first)
            wait_for(lambda j=job.id, w=first: running_on(client, j, w), 30, "the job to start")
            phase = rng.uniform(0, beat)  # a random moment of the victim's heartbeat
            time.sleep(phase)
            killed = time.monotonic()
            workers.kill(first)  # SIGKILL, then reaped: no renewal after this
            deadline = client.zscore("myrq:leases", job.id)
            lease_left = (deadline or 0) / 1000 - redis_now(client)
            workers.start(second)
            wait_for(lambda w=second: client.zscore("myrq:workers", w), 30, "worker 2 to start")
            up = time.monotonic() - killed
            wait_for(lambda j=job.id, w=second: running_on(client, j, w), 4 * lease, "the rerun")
            took = time.monotonic() - killed
            totals.append(took)
            workers.kill(second)
            print(f"   {i:>2} {phase:>11.2f}s {lease_left:>9.2f}s {up:>6.2f}s {took:>12.2f}s")
        broker.close()
    print(
        f"   SIGKILL -> running on the second worker: min {min(totals):.2f}s, "
        f"max {max(totals):.2f}s (expected between {2 * beat:g}s and {4 * beat:g}s: the lease "
        f"has {2 * beat:g}-{lease:g}s left, then the next reap comes within {beat:g}s)"
    )


def _counts(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(v["calls"])
        for name, v in stats.items()
        if name.removeprefix("cmdstat_").split("|")[0] not in OURS
    }


def _measure(client: redis.Redis, seconds: float, per: int) -> tuple[float, dict[str, float]]:
    client.config_resetstat()
    time.sleep(seconds)
    counts = _counts(client)
    rates = {name: n / seconds / per for name, n in sorted(counts.items())}
    return sum(rates.values()), rates


def _show(label: str, total: float, rates: dict[str, float]) -> None:
    scripts = rates.get("evalsha", 0.0)
    print(f"   {label}: {total:.2f} commands/s per worker ({scripts:.2f} EVALSHA/s)")
    print("     " + ", ".join(f"{name} {rate:.2f}" for name, rate in rates.items()))


def heartbeat_cost(seconds: float, idle: int, lease_ttl: float | None) -> None:
    print(f"2. Redis commands per second per worker, over {seconds:g}s (INFO commandstats)")
    settle = (15.0 if lease_ttl is None else lease_ttl) / 3 + 1
    with server_and_workers(lease_ttl) as (url, client, workers):
        broker = RedisBroker.from_url(url)
        job = Queue(QUEUE, broker=broker).enqueue_call(
            "tests.jobs.nap", args=(seconds + 60,), timeout=seconds + 120
        )
        workers.start("busy")
        wait_for(lambda: running_on(client, job.id, "busy"), 30, "the long job to start")
        # Past the first beat: every script has been loaded (SCRIPT LOAD after
        # NOSCRIPT) before counting starts.
        time.sleep(settle)
        total, rates = _measure(client, seconds, 1)
        _show("(a) one worker running a long job: the heartbeat alone", total, rates)
        workers.kill_all()
        client.flushall()
        names = [f"idle-{n}" for n in range(idle)]
        for name in names:
            workers.start(name)
        wait_for(lambda: client.zcard("myrq:workers") == idle, 30, "the idle workers")
        time.sleep(settle)
        total, rates = _measure(client, seconds, idle)
        _show(f"(b) {idle} idle workers: heartbeat and idle wait", total, rates)
        broker.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3, help="kills (default 3)")
    parser.add_argument(
        "--lease-ttl", type=float, help="the workers' --lease-ttl (default: theirs, 15 s)"
    )
    parser.add_argument("--seconds", type=float, default=60, help="per cost measurement")
    parser.add_argument("--idle", type=int, default=4, help="idle workers measured together")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-cost", action="store_true", help="only measure recovery")
    args = parser.parse_args()
    version = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[2]
    print(
        f"myrq recovery figures, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, nproc {os.cpu_count()}, "
        f"Python {platform.python_version()}, redis-server {version.removeprefix('v=')}, "
        f"{platform.system()} {platform.release()}"
    )
    recovery(args.samples, args.lease_ttl, args.seed)
    if not args.skip_cost:
        heartbeat_cost(args.seconds, args.idle, args.lease_ttl)


if __name__ == "__main__":
    main()
