"""I/O-bound drain: jobs that wait, many at once in one worker process (myrq, arq, SAQ, Dramatiq).

    .venv/bin/pip install -e '.[dev,bench]'
    .venv/bin/python -m benchmarks.io_drain [--jobs 2000] [--sync-jobs 400] [--rounds 3]
    .venv/bin/python -m benchmarks.io_drain --profile [--jobs 2000]

(a) ``--jobs`` jobs that each wait ``--wait`` seconds (50 ms) with
``asyncio.sleep``, drained by one worker process running 100 at once:
``myrq worker --concurrency 100`` (an ``async def`` job), arq
(``max_jobs = 100``; and with ``poll_delay = 0.05``: arq starts at most
max_jobs jobs per poll, then waits poll_delay, 0.5 s by default) and SAQ
(``concurrency = 100``); and, for reference, myrq at ``--concurrency 100``
with a sync job (``time.sleep``, one thread per job). The physical limit is
100 / wait = 2,000 jobs/s.

(b) ``--sync-jobs`` jobs that ``time.sleep(wait)``, on 8 threads:
``myrq worker --concurrency 8`` against Dramatiq, 1 process x 8 threads.
The limit is 8 / wait = 160 jobs/s.

Everything else is ``benchmarks/compare.py``'s, imported from it: its own
redis-server on a unix socket in a temporary directory, a FLUSHALL before each
run, the jobs enqueued before the worker starts (untimed), each worker a
separate process in its own session (SIGTERM then SIGKILL of its group, and
everything killed on every path, Ctrl-C included), completion read from each
library's own keys every 2 ms. Each figure is jobs / (time from spawning the
worker to the last job done), start-up included, and, in a second block, from
the first job seen done to the last. The rounds repeat every run, each round
in a rotated order; medians (min-max), ratio myrq / peer of the medians, and
the median as a share of the limit. The job functions are in
``benchmarks/peer_jobs.py``.

``--profile`` instead drains ``--jobs`` async jobs with one
``myrq worker --concurrency 100`` under pyinstrument and prints its tree.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # also runnable as `python benchmarks/io_drain.py`
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from benchmarks import compare, peer_jobs  # noqa: E402
from benchmarks.compare import (  # noqa: E402
    LOOP,
    PY,
    ArqLib,
    Ctx,
    DramatiqLib,
    Lib,
    MyrqLib,
    SaqLib,
    fmt,
    timed_drain,
)
from myrq.testing.redis_server import RedisServer  # noqa: E402

#: Jobs at once in (a) and threads in (b).
WIDE, THREADS = peer_jobs.IO_CONCURRENCY, 8
PEERS = ["arq", "saq", "dramatiq"]


# -- adapters: compare.py's, enqueueing jobs that wait instead of no-ops ------------


class MyrqWait(MyrqLib):
    """myrq with ``peer_jobs.sleep_async`` or ``sleep_sync``, enqueued in batches."""

    def __init__(self, ctx: Ctx, wait: float, *, sync: bool) -> None:
        super().__init__(ctx)
        self.wait = wait
        self.func = peer_jobs.sleep_sync if sync else peer_jobs.sleep_async

    def enqueue_batch(self, n: int) -> None:
        q, func, args = self.queue, self.func, (self.wait,)
        for start in range(0, n, 1000):
            q.enqueue_many([q.prepare(func, args) for _ in range(min(1000, n - start))])
        self.total += n

    def argv(self, concurrency: int) -> list[str]:
        return [*self._argv(True), "--concurrency", str(concurrency)]


class ArqWait(ArqLib):
    def __init__(self, ctx: Ctx, wait: float) -> None:
        super().__init__(ctx)
        self.wait = wait

    def enqueue_one(self, n: int) -> None:
        async def go() -> None:
            for _ in range(n):
                await self.pool.enqueue_job("arq_sleep", self.wait)

        LOOP.run_until_complete(go())
        self.total += n

    def argv(self, settings: str = "ArqIOSettings") -> list[str]:
        return [PY, "-m", "arq", f"benchmarks.peer_jobs.{settings}", "--burst"]


class SaqWait(SaqLib):
    def __init__(self, ctx: Ctx, wait: float) -> None:
        super().__init__(ctx)
        self.wait = wait

    def enqueue_one(self, n: int) -> None:
        async def go() -> None:
            for _ in range(n):
                await self.queue.enqueue("saq_sleep", seconds=self.wait)

        LOOP.run_until_complete(go())
        self.total += n

    def argv(self) -> list[str]:
        return [PY, "-m", "saq", "benchmarks.peer_jobs.saq_io_settings", "--workers", "1"]


class DramatiqWait(DramatiqLib):
    def __init__(self, ctx: Ctx, wait: float) -> None:
        super().__init__(ctx)
        self.wait = wait
        self.sleep = peer_jobs.dramatiq_sleep

    def enqueue_one(self, n: int) -> None:
        send, wait = self.sleep.send, self.wait
        for _ in range(n):
            send(wait)
        self.total += n

    def argv(self) -> list[str]:
        return self._argv(1, THREADS)


# -- runs and the report ---------------------------------------------------------------


@dataclass
class Run:
    """One row: a library, the worker to start, and what it is compared with."""

    label: str
    lib: Lib
    argv: list[str]
    jobs: int
    limit: float  # jobs/s at best: slots / wait
    total: list[float] = field(default_factory=list)  # spawn -> done, per round
    steady: list[float] = field(default_factory=list)  # first done -> done
    failed: str = ""


def build_runs(ctx: Ctx, args: argparse.Namespace) -> dict[str, list[Run]]:
    names = set(args.only.split(","))
    wait = args.wait
    wide, narrow = WIDE / wait, THREADS / wait
    async_myrq = MyrqWait(ctx, wait, sync=False)
    sync_myrq = MyrqWait(ctx, wait, sync=True)
    io = [Run(f"myrq --concurrency {WIDE}, async def", async_myrq, async_myrq.argv(WIDE),
              args.jobs, wide)]  # fmt: skip
    threads = []
    if "arq" in names:
        arq = ArqWait(ctx, wait)
        io.append(Run(f"arq (max_jobs {WIDE})", arq, arq.argv(), args.jobs, wide))
        poll = f"{peer_jobs.ARQ_FAST_POLL:g}"
        io.append(Run(f"arq (max_jobs {WIDE}, poll_delay {poll})", arq,
                      arq.argv("ArqIOPollSettings"), args.jobs, wide))  # fmt: skip
    if "saq" in names:
        saq = SaqWait(ctx, wait)
        io.append(Run(f"saq (concurrency {WIDE})", saq, saq.argv(), args.jobs, wide))
    io.append(Run(f"myrq --concurrency {WIDE}, sync (threads)", sync_myrq,
                  sync_myrq.argv(WIDE), args.jobs, wide))  # fmt: skip
    if args.sync_jobs:
        threads.append(Run(f"myrq --concurrency {THREADS}, sync", sync_myrq,
                           sync_myrq.argv(THREADS), args.sync_jobs, narrow))  # fmt: skip
        if "dramatiq" in names:
            dq = DramatiqWait(ctx, wait)
            threads.append(Run(f"dramatiq 1 proc x {THREADS} threads", dq, dq.argv(),
                               args.sync_jobs, narrow))  # fmt: skip
    return {"a": io, "b": threads}


def measure(ctx: Ctx, runs: list[Run], rounds: int) -> None:
    for r in range(rounds):
        print(f"round {r + 1}/{rounds} ...", file=sys.stderr, flush=True)
        order = runs[r % len(runs) :] + runs[: r % len(runs)]
        for run in order:
            if run.failed:
                continue
            try:
                total, steady = timed_drain(ctx, run.lib, [run.argv], run.jobs)
            except Exception as exc:  # one peer failing must not stop the others
                run.failed = f"{type(exc).__name__}: {exc}"
                print(f"  ! {run.label}: {exc}", file=sys.stderr)
                continue
            run.total.append(total)
            run.steady.append(steady)


def block(title: str, runs: list[Run], pick: str) -> list[str]:
    out = [f"{title} [jobs/s, higher is better]"]
    base = statistics.median(getattr(runs[0], pick)) if getattr(runs[0], pick) else None
    for run in runs:
        vals: list[float] = getattr(run, pick)
        if not vals:
            out.append(f"  {run.label:<38}{'failed':>8}  {run.failed.splitlines()[0][:60]}")
            continue
        med = statistics.median(vals)
        spread = f"({fmt(min(vals))}-{fmt(max(vals))})"
        peer = not run.label.startswith("myrq")
        ratio = f"myrq/peer {base / med:.2f}" if base and peer else ""
        share = f"{100 * med / run.limit:.0f}% of {fmt(run.limit)}"
        out.append(f"  {run.label:<38}{fmt(med):>8} {spread:<16} {share:<15} {ratio}")
    return out


def report(runs: dict[str, list[Run]], args: argparse.Namespace, header: str) -> str:
    wait_ms = args.wait * 1000
    out = [header]
    a, b = runs["a"], runs["b"]
    out += block(
        f"(a) drain {args.jobs:,} jobs that wait {wait_ms:g} ms, one worker process, "
        f"{WIDE} at once, spawn -> done",
        a,
        "total",
    )
    out += block("    (a) without start-up: first job done -> all done", a, "steady")
    if b:
        out += block(
            f"(b) drain {args.sync_jobs:,} jobs that time.sleep {wait_ms:g} ms, "
            f"{THREADS} threads, spawn -> done",
            b,
            "total",
        )
        out += block("    (b) without start-up: first job done -> all done", b, "steady")
    return "\n".join(line.rstrip() for line in out)


def run_profile(ctx: Ctx, args: argparse.Namespace) -> None:
    """Drain ``--jobs`` async jobs with one myrq worker at concurrency 100 under pyinstrument."""
    lib = MyrqWait(ctx, args.wait, sync=False)
    compare.profile_worker(ctx, lib, args.jobs, ["--concurrency", str(WIDE)], "myrq-io-worker")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000, help="jobs in (a) (default 2000)")
    parser.add_argument("--sync-jobs", type=int, default=400,
                        help="jobs in (b) (default 400; 0 skips it)")  # fmt: skip
    parser.add_argument("--wait", type=float, default=0.05, help="seconds each job waits")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default=",".join(PEERS),
                        help=f"peers: a subset of {','.join(PEERS)}; myrq runs anyway")  # fmt: skip
    parser.add_argument("--profile", action="store_true",
                        help="only profile myrq's drain of (a) (pyinstrument)")  # fmt: skip
    parser.add_argument("--json", metavar="PATH", help="also write every round's values as JSON")
    args = parser.parse_args()
    unknown = set(filter(None, args.only.split(","))) - set(PEERS)
    if unknown:
        parser.error(f"unknown --only names {sorted(unknown)}; choose from {PEERS}")
    if not args.wait > 0:
        parser.error("--wait must be > 0")

    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    logdir = Path(tempfile.mkdtemp(prefix="myrq-io-bench-"))
    server = RedisServer()
    ctx: Ctx | None = None
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    try:
        server.start()
        os.environ["BENCH_REDIS_URL"] = server.url
        ctx = Ctx(server, server.url, redis.Redis.from_url(server.url), logdir)
        if args.profile:
            run_profile(ctx, args)
            return
        runs = build_runs(ctx, args)
        measure(ctx, [*runs["a"], *runs["b"]], args.rounds)
        header = (
            f"{compare.machine(ctx)}\n{compare.versions()}\n"
            f"{args.rounds} interleaved rounds, median (min-max), share of the limit "
            f"(slots / wait), ratio myrq / peer of the medians; "
            f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
        )
        print(report(runs, args, header))
        print(f"(took {time.perf_counter() - started:.0f}s; worker logs in {logdir})")
        if args.json:
            raw: dict[str, Any] = {
                run.label: {"total": run.total, "steady": run.steady, "failed": run.failed}
                for run in [*runs["a"], *runs["b"]]
            }
            Path(args.json).write_text(json.dumps(raw, indent=1))
    finally:
        if ctx is not None:
            ctx.kill_all()
        server.stop()
        LOOP.close()


if __name__ == "__main__":
    main()
