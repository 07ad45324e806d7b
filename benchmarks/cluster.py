"""Redis Cluster and the sharded layout: drain rates on 1, 2 and 3 masters against one
plain server, Redis commands per job, memory per job, and what failovers lose.

Everything runs on this machine, servers and workers alike, so the processes share
its cores: the figures are ratios measured in one run, not absolute capacities.

    .venv/bin/python -m benchmarks.cluster [drain|memory|failover|all]
        [--jobs N] [--rounds R] [--workers 1,3]

drain: for each target (a plain redis-server with the classic ``redis://`` layout;
the sharded layout on that one server, ``redis+sharded://``; clusters of 1, 2 and
3 masters, ``redis+cluster://``), ``--jobs`` no-op jobs are stored with
``enqueue_many``, then 1 and 3 ``myrq worker --burst`` processes drain them. The
rate is jobs / (time from the first claim, seen by polling the queue's length,
to the last outcome, seen in the finished registry), so the workers' start-up is
not counted. Commands per job come from ``INFO commandstats`` of every master,
reset just before the drain. Median of ``--rounds``.

memory: ``used_memory`` of one server before and after storing 50,000 queued jobs,
classic and sharded layouts, then after they finished (records kept for
``result_ttl``).

failover: a producer enqueues 300 jobs/s (resending until acknowledged) while two
workers run them; then a 4 s master stall under Sentinel (SIGSTOP), a killed
cluster master (SIGKILL; restarted once its replica took over, to rejoin as a
replica), a 4 s cluster master stall; each with ``wait_replicas`` 0 and 1.
Lost: acknowledged enqueues whose record is gone afterwards.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from myrq import Queue
from myrq.backends import Broker
from myrq.config import get_broker
from myrq.testing.redis_cluster import LocalCluster, LocalSentinel, SteadyProducer, free_ports
from myrq.testing.redis_server import RedisServer
from tests.faultjobs import WorkerPool, read_ledger, wait_for, worker_env

ROOT = Path(__file__).resolve().parent.parent
QUEUE = "bench"
QUIET: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}


# -- targets ------------------------------------------------------------------------------


@contextmanager
def target(name: str) -> Iterator[tuple[str, list[redis.Redis]]]:
    """A fresh target: its broker URL and a client of each master."""
    if name in ("plain", "sharded"):
        with RedisServer(port=free_ports(1)[0]) as server:
            scheme = "redis" if name == "plain" else "redis+sharded"
            yield f"{scheme}://127.0.0.1:{server.port}/0", [redis.Redis(port=server.port)]
        return
    masters = int(name.split("-")[1])
    with LocalCluster(masters) as cluster:
        yield cluster.url, [redis.Redis(port=n.port) for n in cluster.nodes]


TARGETS = {
    "plain": "one server, classic layout (redis://)",
    "sharded": "one server, sharded layout (redis+sharded://)",
    "cluster-1": "cluster, 1 master",
    "cluster-2": "cluster, 2 masters",
    "cluster-3": "cluster, 3 masters",
}


def _cpu(masters: list[redis.Redis]) -> list[float]:
    """Per master: CPU seconds used so far (user + system)."""
    return [
        float(m.info("cpu")["used_cpu_user"]) + float(m.info("cpu")["used_cpu_sys"])
        for m in masters
    ]


def _calls(masters: list[redis.Redis]) -> tuple[list[int], list[int]]:
    """Per master: all command calls, and EVALSHA calls."""
    total, scripts = [], []
    for m in masters:
        stats = m.info("commandstats")
        ours = {k: v for k, v in stats.items() if k.split("|")[0] not in _NOT_OURS}
        total.append(sum(int(v["calls"]) for v in ours.values()))
        scripts.append(int(stats.get("cmdstat_evalsha", {}).get("calls", 0)))
    return total, scripts


_NOT_OURS = {"cmdstat_info", "cmdstat_config", "cmdstat_cluster", "cmdstat_command"}


def drain_once(url: str, masters: list[redis.Redis], jobs: int, workers: int) -> Round:
    """Store ``jobs`` then drain them with ``workers`` burst processes."""
    for m in masters:
        m.flushall()
    broker: Broker = get_broker(url)
    queue = Queue(QUEUE, broker=broker)
    made = [queue.prepare("tests.jobs.add", (n, n)) for n in range(jobs)]
    cpu = _cpu(masters)
    started = time.perf_counter()
    for start in range(0, jobs, 5000):
        queue.enqueue_many(made[start : start + 5000])
    enqueue_rate = jobs / (time.perf_counter() - started)
    enqueue_cpu = [b - a for a, b in zip(cpu, _cpu(masters), strict=True)]
    for m in masters:
        m.config_resetstat()
    cpu = _cpu(masters)
    command = [sys.executable, "-m", "myrq", "worker", QUEUE, "--burst", "--broker", url]
    procs = [subprocess.Popen(command, cwd=ROOT, env=worker_env(), **QUIET) for _ in range(workers)]
    try:
        while broker.queue_length(QUEUE) >= jobs:
            time.sleep(0.005)
        first = time.perf_counter()
        while broker.registry_count(QUEUE, "finished") < jobs:
            time.sleep(0.02)
        drain_rate = jobs / (time.perf_counter() - first)
    finally:
        for p in procs:
            p.wait(timeout=120)
    drain_cpu = [b - a for a, b in zip(cpu, _cpu(masters), strict=True)]
    total, scripts = _calls(masters)
    broker.close()
    per = 1e6 / jobs
    return Round(
        enqueue_rate, drain_rate, [t / jobs for t in total], [s / jobs for s in scripts],
        [c * per for c in enqueue_cpu], [c * per for c in drain_cpu],
    )  # fmt: skip


@dataclass
class Round:
    enqueue_rate: float
    drain_rate: float
    commands: list[float]  # per job, per master, while draining
    scripts: list[float]  # EVALSHA per job, per master, while draining
    enqueue_cpu_us: list[float]  # Redis CPU per job, per master
    drain_cpu_us: list[float]


def drain(jobs: int, rounds: int, worker_counts: list[int]) -> None:
    print(f"\n== drain: {jobs} no-op jobs, median of {rounds} round(s) ==")
    results: dict[tuple[str, int], list[Round]] = {}
    for name in TARGETS:
        with target(name) as (url, masters):
            for _ in range(rounds):
                for w in worker_counts:
                    results.setdefault((name, w), []).append(drain_once(url, masters, jobs, w))
    for w in worker_counts:
        plain = sorted(results[("plain", w)], key=lambda r: r.drain_rate)
        base = plain[len(plain) // 2].drain_rate  # the same round the rows show
        print(
            f"\n{w} worker process(es): rates (median), Redis commands and CPU per job per master"
        )
        head = f"  {'target':<46} {'enqueue/s':>10} {'drain/s':>9} {'ratio':>6}"
        print(f"{head}  commands (scripts)  CPU us enqueue + drain")
        for name, label in TARGETS.items():
            runs = sorted(results[(name, w)], key=lambda r: r.drain_rate)
            mid = runs[len(runs) // 2]
            enq = statistics.median(r.enqueue_rate for r in runs)
            commands = "/".join(f"{c:.1f}" for c in mid.commands)
            cpu = "/".join(
                f"{e:.0f}+{d:.0f}"
                for e, d in zip(mid.enqueue_cpu_us, mid.drain_cpu_us, strict=True)
            )
            ratio = mid.drain_rate / base
            print(f"  {label:<46} {enq:>10,.0f} {mid.drain_rate:>9,.0f} {ratio:>6.2f}  "
                  f"{commands} ({sum(mid.scripts):.2f})  {cpu}")  # fmt: skip


# -- memory -------------------------------------------------------------------------------


def memory(jobs: int = 50_000) -> None:
    print(f"\n== memory: {jobs} jobs on one server ==")
    for name in ("plain", "sharded"):
        with target(name) as (url, [server]):
            broker = get_broker(url)
            queue = Queue(QUEUE, broker=broker)
            base = int(server.info("memory")["used_memory"])
            for start in range(0, jobs, 5000):
                queue.enqueue_many(
                    [queue.prepare("tests.jobs.add", (n, n)) for n in range(start, start + 5000)]
                )
            queued = int(server.info("memory")["used_memory"])
            subprocess.run(
                [sys.executable, "-m", "myrq", "worker", QUEUE, "--burst", "--broker", url],
                cwd=ROOT, env=worker_env(), check=True, timeout=600, **QUIET,
            )  # fmt: skip
            done = int(server.info("memory")["used_memory"])
            print(f"  {TARGETS[name]:<46} queued {(queued - base) / jobs:6.0f} B/job, "
                  f"finished (kept for result_ttl) {(done - base) / jobs:6.0f} B/job")  # fmt: skip
            broker.close()


# -- failover -----------------------------------------------------------------------------


def _stall(pid: int, seconds: float) -> None:
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)


def _run_fault(
    url: str, fault: Callable[[], None], settle: Callable[[], None], logs: Path
) -> dict[str, Any]:
    queue = Queue("ha", broker=url)
    ledger = logs / "ledger"
    producer = SteadyProducer(queue, "tests.faultjobs.ledger_write", ledger, 300)
    with WorkerPool(url, "ha", logs, 5.0) as pool:
        pool.spawn()
        pool.spawn()
        producer.start()
        time.sleep(1.5)
        before = len(producer.acked)
        started = time.monotonic()
        fault()
        settle()
        recovered = time.monotonic() - started
        after = len(producer.acked)
        wait_for(lambda: len(producer.acked) > after + 100, 60, "enqueues after the fault", 0.05)
        producer.halt.set()
        producer.join(timeout=30)
        acked = list(producer.acked)
        broker = queue.broker
        stored = [i for i in acked if broker.get(i) is not None]  # the others are lost
        wait_for(lambda: set(read_ledger(ledger)) >= set(stored), 60, "the jobs", 0.1)
    runs = read_ledger(ledger)
    return {
        "acked": len(acked),
        "acked in the 1.5 s before": before,
        "lost": len(acked) - len(stored),
        "lost, never ran": sum(1 for i in acked if i not in runs),
        "retried sends": producer.retries,
        "ran twice": sum(1 for n in runs.values() if n > 1),
        "fault to recovered (s)": round(recovered, 1),
        "longest pause between acks (s)": round(producer.longest_pause(), 1),
    }


def failover() -> None:
    print("\n== failover under load (300 jobs/s, two workers) ==")
    for wait in (0, 1):
        query = f"?wait_replicas={wait}&wait_timeout=1" if wait else ""
        with tempfile.TemporaryDirectory() as d, LocalSentinel(1) as s:
            old = s.master
            assert old.pid is not None

            def sentinel_settled(s: LocalSentinel = s, port: int = old.port) -> None:
                wait_for(lambda: s.master_port() != port, 30, "the failover", 0.2)
                node = redis.Redis(unix_socket_path=str(s.node_of_port(port).socket))
                wait_for(lambda: node.info("replication")["role"] == "slave", 30, "demote", 0.2)

            out = _run_fault(
                s.url + query, lambda p=old.pid: _stall(p, 4.0), sentinel_settled, Path(d)
            )
            print(f"  Sentinel, 4 s master stall, wait_replicas={wait}: {out}")
        for kind in ("kill", "stall"):
            with tempfile.TemporaryDirectory() as d, LocalCluster(3, replicas=1) as c:
                master = c.masters_now()[0]
                replica = c.replica_of(master)
                assert master.pid is not None
                fault = master.kill if kind == "kill" else (lambda p=master.pid: _stall(p, 4.0))

                def cluster_settled(
                    c: LocalCluster = c, r: RedisServer = replica, m: RedisServer = master
                ) -> None:
                    wait_for(lambda: c.role(r) == "master", 30, "the failover", 0.2)
                    if m.process is not None and m.process.poll() is not None:
                        m.start()  # a killed master is restarted: it rejoins as a replica
                    c.wait_ok(60)

                out = _run_fault(c.url + query, fault, cluster_settled, Path(d))
                what = "killed master" if kind == "kill" else "4 s master stall"
                print(f"  Cluster 3+3, {what}, wait_replicas={wait}: {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "what", nargs="?", default="all", choices=["drain", "memory", "failover", "all"]
    )
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", default="1,3")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; redis-server {redis.Redis.__module__ and _server_version()}")
    if args.what in ("drain", "all"):
        drain(args.jobs, args.rounds, [int(w) for w in args.workers.split(",")])
    if args.what in ("memory", "all"):
        memory()
    if args.what in ("failover", "all"):
        failover()


def _server_version() -> str:
    out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, check=False)
    return out.stdout.split()[2] if out.stdout else "?"


if __name__ == "__main__":
    main()
