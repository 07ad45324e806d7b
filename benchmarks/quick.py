"""Quick single-process figures for myrq on a private redis-server, with ratios
to a bare redis-py round-trip loop measured in the same run.

This is a smoke measurement, not the side-by-side comparison with other job
queues (that is benchmarks' job in the performance issue). It starts its own
redis-server on a unix socket, needs nothing beyond myrq's dependencies, and
prints medians over interleaved rounds.

    .venv/bin/python benchmarks/quick.py [--jobs N] [--rounds R]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import redis

from myrq import Queue, Worker
from myrq.backends import RedisBroker
from myrq.testing.redis_server import RedisServer


def rate(n: int, step: Callable[[], None]) -> float:
    started = time.perf_counter()
    step()
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n = args.jobs
    results: dict[str, list[float]] = {}
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        broker = RedisBroker(client)
        queue = Queue("bench", broker=broker, result_ttl=0)
        worker = Worker(["bench"], broker=broker, allow=["tests"])

        def ping() -> None:
            for _ in range(n):
                client.ping()

        def enqueue() -> None:
            for i in range(n):
                queue.enqueue("tests.jobs.add", i, i)

        def enqueue_many() -> None:
            queue.enqueue_many([queue.prepare("tests.jobs.add", (i, i)) for i in range(n)])

        def drain() -> None:
            worker.work(burst=True)

        for _ in range(args.rounds):  # interleaved, so drift hits every figure alike
            results.setdefault("redis-py ping loop (round trips/s)", []).append(rate(n, ping))
            results.setdefault("enqueue, one call at a time", []).append(rate(n, enqueue))
            results.setdefault("drain by one worker (burst)", []).append(rate(n, drain))
            results.setdefault("enqueue_many (one batch)", []).append(rate(n, enqueue_many))
            results.setdefault("drain after enqueue_many", []).append(rate(n, drain))
        client.config_resetstat()
        enqueue()
        enq_calls = sum(v["calls"] for v in client.info("commandstats").values())
        client.config_resetstat()
        drain()
        work_calls = sum(v["calls"] for v in client.info("commandstats").values())
    base = statistics.median(next(iter(results.values())))
    print(f"{n} no-op jobs, {args.rounds} rounds, medians (min-max); ratio to the ping loop")
    for label, values in results.items():
        med = statistics.median(values)
        print(f"  {label:<38} {med:>9,.0f}/s  ({min(values):,.0f}-{max(values):,.0f})"
              f"  x{med / base:.2f}")  # fmt: skip
    print(f"  Redis commands per job: enqueue {enq_calls / n:.1f}, run {work_calls / n:.1f}")


if __name__ == "__main__":
    main()
