"""Reliability figures for myrq on private redis-servers: what faults cost.

1. chaos: worker processes SIGKILLed about every second while they drain jobs
   that each append a token to a ledger file: jobs lost and run twice;
2. recovery: time from SIGKILLing the worker that runs a job to the job
   starting again on another worker, for a few ``--lease-ttl`` values
   (expected about the lease, plus up to a third of it for the next reap);
3. persistence: redis-server kill -9'd right after a burst of acknowledged
   enqueues, per persistence mode, and failovers to an asynchronous replica:
   how many acknowledged jobs the restarted (or promoted) server still has.

Every server listens on a unix socket in a temporary directory (the replica
case also uses a free TCP port on 127.0.0.1, as replication needs one).
Every process started is killed and reaped on the way out.

    .venv/bin/python benchmarks/reliability.py [--samples 25] [--chaos-jobs 3000]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the job functions live in tests/faultjobs.py

from myrq import JobStatus, Queue  # noqa: E402
from myrq.backends import RedisBroker  # noqa: E402
from myrq.testing.redis_server import RedisServer, free_port  # noqa: E402
from tests.faultjobs import WorkerPool, read_starts, run_chaos, statuses, wait_for  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def chaos(jobs: int, seed: int) -> None:
    with RedisServer() as server, tempfile.TemporaryDirectory(prefix="myrq-chaos-") as tmp:
        report = run_chaos(server.url, Path(tmp), jobs=jobs, lease_ttl=2.0, seed=seed)
    print(f"chaos, --lease-ttl 2, seed {seed}: {report.summary()}")
    if report.error_lines:
        print("  worker errors:", *report.error_lines[:5], sep="\n    ")


def recovery(lease_ttl: float, samples: int, seed: int) -> None:
    """SIGKILL the worker running a job at a random moment; time until it restarts."""
    rng = random.Random(seed)
    delays: list[float] = []
    with RedisServer() as server, tempfile.TemporaryDirectory(prefix="myrq-recovery-") as tmp:
        broker = RedisBroker.from_url(server.url)
        q = Queue("recovery", broker=broker, result_ttl=-1)
        with WorkerPool(server.url, "recovery", Path(tmp), lease_ttl) as pool:
            pool.spawn()
            pool.spawn()
            for i in range(samples):
                starts = Path(tmp) / f"starts-{i}"
                job = q.enqueue_call("tests.faultjobs.record_start", (str(starts), 600.0))
                wait_for(lambda s=starts: read_starts(s), 60, "the job to start")
                # Kill at a random phase of the victim's heartbeat.
                time.sleep(rng.uniform(0, lease_ttl / 3))
                victim = pool.by_pid(read_starts(starts)[0][1])
                killed = time.time()
                pool.kill(victim)
                pool.spawn()
                wait_for(lambda s=starts: len(read_starts(s)) > 1, 60, "the job to restart")
                delays.append(read_starts(starts)[1][0] - killed)
                wait_for(lambda j=job: j.get_status() is JobStatus.FINISHED, 60, "the rerun")
        broker.close()
    print(
        f"  --lease-ttl {lease_ttl:g}: {samples} kills, SIGKILL -> job started on another "
        f"worker: p50 {statistics.median(delays):.2f}s, p99 {percentile(delays, 99):.2f}s, "
        f"min {min(delays):.2f}s, max {max(delays):.2f}s"
    )


def _burst(url: str, n: int) -> tuple[list[str], float]:
    broker = RedisBroker.from_url(url)
    q = Queue("burst", broker=broker)
    acked = []
    started = time.perf_counter()
    for i in range(n):
        job_id = f"b-{i:06d}"
        q.enqueue_call("tests.faultjobs.ledger_write", ("/dev/null", job_id), job_id=job_id)
        acked.append(job_id)
    elapsed = time.perf_counter() - started
    broker.close()
    return acked, n / elapsed


def _surviving(url: str, ids: list[str]) -> tuple[int, int]:
    client = redis.Redis.from_url(url)
    alive = sum(s is not None for s in statuses(client, ids))
    queued = int(client.llen("myrq:queue:burst"))
    client.close()
    return alive, queued


def persistence(n: int) -> None:
    modes: list[tuple[str, dict[str, str | None]]] = [
        ("no persistence (save '', appendonly no)", {"save": ""}),
        ("RDB, Redis's default save rules", {"save": None}),
        ("AOF, appendfsync everysec", {"appendfsync": "everysec"}),
        ("AOF, appendfsync always", {"appendfsync": "always"}),
    ]
    print(f"  {'mode':<44} {'enqueue/s':>9} {'acked':>6} {'kept':>6} {'lost':>6}")
    for label, kwargs in modes:
        server = RedisServer(**kwargs)  # type: ignore[arg-type]
        try:
            server.start()
            acked, rate = _burst(server.url, n)
            server.kill()  # SIGKILL right after the last acknowledged enqueue
            server.restart()
            kept, queued = _surviving(server.url, acked)
        finally:
            server.stop()
        assert queued == kept, (queued, kept)
        print(f"  {label:<44} {rate:>9,.0f} {len(acked):>6} {kept:>6} {len(acked) - kept:>6}")
    failover(n, lagging=False)
    failover(n, lagging=True)


def failover(n: int, lagging: bool) -> None:
    """Primary kill -9'd right after the burst; its asynchronous replica is promoted.

    ``lagging``: the replica is SIGSTOPped during the burst (a slow or cut-off
    replica); it gets what the kernel had buffered for it, no more.
    """
    primary = RedisServer(port=free_port())
    replica = RedisServer(port=free_port())
    try:
        primary.start()
        replica.extra = ["--replicaof", "127.0.0.1", str(primary.port)]
        replica.start()
        assert replica.process is not None
        client = redis.Redis.from_url(replica.url)
        wait_for(lambda: client.info("replication").get("master_link_status") == "up", 20,
                 "the replica to sync")  # fmt: skip
        if lagging:
            replica.process.send_signal(signal.SIGSTOP)
        acked, rate = _burst(primary.url, n)
        primary.kill()
        if lagging:
            replica.process.send_signal(signal.SIGCONT)
        client.replicaof("NO", "ONE")  # what a failover (Sentinel, an operator) does
        kept, _ = _surviving(replica.url, acked)
        client.close()
    finally:
        replica.stop()
        primary.stop()
    label = "failover to a lagging replica" if lagging else "failover to an in-sync replica"
    print(f"  {label:<44} {rate:>9,.0f} {len(acked):>6} {kept:>6} {len(acked) - kept:>6}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chaos-jobs", type=int, default=3000)
    parser.add_argument("--samples", type=int, default=25, help="kills per lease value")
    parser.add_argument("--leases", default="1,3", help="--lease-ttl values, comma-separated")
    parser.add_argument("--burst", type=int, default=5000, help="enqueues before each kill -9")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    redis_version = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[2]
    print(
        f"myrq reliability figures, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"nproc {os.cpu_count()}, Python {platform.python_version()}, redis-server "
        f"{redis_version.removeprefix('v=')}, {platform.system()} {platform.release()}"
    )
    print("1. chaos")
    chaos(args.chaos_jobs, args.seed)
    print("2. recovery after a worker's SIGKILL")
    for lease in (float(x) for x in args.leases.split(",")):
        recovery(lease, args.samples, args.seed)
    print(f"3. redis-server kill -9 right after {args.burst} acknowledged enqueues")
    persistence(args.burst)


if __name__ == "__main__":
    main()
