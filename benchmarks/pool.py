"""CPU-bound drain: one worker process against ``myrq worker --processes P``.

    .venv/bin/python -m benchmarks.pool [--jobs 1000] [--ms 10] [--processes 2] [--rounds 2]

Each job is a pure-Python loop calibrated, before the first round, to take
``--ms`` milliseconds of CPU in this interpreter (``cpu_job``). Every run
starts from a FLUSHALLed private redis-server (unix socket, no persistence),
enqueues the jobs in one ``enqueue_many``, then times a burst worker from its
start to its exit: ``python -m myrq worker --burst`` (one process), or the
same with ``--processes P``. Rounds alternate which runs first. It prints jobs
per second, the ratio pool / one process of each round and their median, and
the cores the worker processes used (their CPU time over the run's wall time:
below P, something else had the cores), and the load average before and
after. The machine is shared: run it when it is idle, and compare ratios
measured in one run.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # also runnable as `python benchmarks/pool.py`
    sys.path.insert(0, str(ROOT))

from myrq import Queue  # noqa: E402
from myrq.backends import RedisBroker  # noqa: E402
from myrq.testing.redis_server import RedisServer  # noqa: E402

QUEUE = "cpu"


def cpu_job(loops: int) -> int:
    """Pure-Python CPU work: holds the GIL for all of it."""
    total = 0
    for i in range(loops):
        total += i * i % 7
    return total


def calibrate(ms: float) -> int:
    """Loops of :func:`cpu_job` that take ``ms`` milliseconds here (median of 15 runs)."""
    loops = 100_000
    typical = statistics.median(_timed(loops) for _ in range(15))
    return max(1, round(loops * (ms / 1000) / typical))


def _timed(loops: int) -> float:
    started = time.perf_counter()
    cpu_job(loops)
    return time.perf_counter() - started


def drain(
    url: str, client: redis.Redis, jobs: int, loops: int, processes: int | None
) -> tuple[float, float]:
    """Seconds for a burst worker (or pool) to drain ``jobs`` CPU jobs, start to exit,
    and the cores its processes used meanwhile (their CPU time / those seconds)."""
    client.flushall()
    queue = Queue(QUEUE, broker=RedisBroker(client), result_ttl=0)
    queue.enqueue_many([queue.prepare("benchmarks.pool.cpu_job", (loops,)) for _ in range(jobs)])
    argv = [sys.executable, "-m", "myrq", "worker", QUEUE, "--burst", "--broker", url,
            "--allow", "benchmarks.pool", "--log-level", "WARNING"]  # fmt: skip
    if processes is not None:
        argv += ["--processes", str(processes)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MYRQ_BROKER_URL", None)
    before = _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    seconds = time.perf_counter() - started
    cores = (_children_cpu() - before) / seconds
    if done.returncode != 0:
        raise SystemExit(f"worker failed ({done.returncode}):\n{done.stderr[-2000:]}")
    left = client.llen(f"myrq:queue:{QUEUE}")
    if left:
        raise SystemExit(f"{left} jobs left on the queue")
    return seconds, cores


def _children_cpu() -> float:
    """CPU seconds of the processes this one has waited for (and theirs, reaped by them)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--ms", type=float, default=10.0, help="CPU per job (milliseconds)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    loops = calibrate(args.ms)
    print(f"load average before: {os.getloadavg()[0]:.2f} (nproc {os.cpu_count()})")
    print(f"{args.jobs} jobs of {args.ms:g} ms CPU ({loops:,} loops), {args.rounds} rounds")
    one: list[float] = []
    pool: list[float] = []
    cores: dict[int | None, float] = {}
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        for r in range(args.rounds):
            order = [None, args.processes] if r % 2 == 0 else [args.processes, None]
            for processes in order:
                seconds, cores[processes] = drain(server.url, client, args.jobs, loops, processes)
                (one if processes is None else pool).append(seconds)
            print(
                f"  round {r + 1}: one process {args.jobs / one[-1]:,.0f} jobs/s "
                f"({cores[None]:.2f} cores), --processes {args.processes} "
                f"{args.jobs / pool[-1]:,.0f} jobs/s ({cores[args.processes]:.2f} cores), "
                f"ratio {one[-1] / pool[-1]:.2f}x"
            )
        client.close()
    ratios = [a / b for a, b in zip(one, pool, strict=True)]
    print(
        f"median: one process {args.jobs / statistics.median(one):,.0f} jobs/s, "
        f"--processes {args.processes} {args.jobs / statistics.median(pool):,.0f} jobs/s, "
        f"ratio {statistics.median(ratios):.2f}x (rounds {min(ratios):.2f}-{max(ratios):.2f}); "
        f"ideal {1000 / args.ms:,.0f} jobs/s per core"
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
