"""Side-by-side benchmark of myrq against RQ, Dramatiq, huey, SAQ, arq and a bare loop.

    .venv/bin/pip install -e '.[dev,bench]'
    .venv/bin/python -m benchmarks.compare [--jobs N] [--rounds R] [--only myrq,rq,...]
    .venv/bin/python -m benchmarks.compare --rss [--rss-jobs 100000] [--only ...]
    .venv/bin/python -m benchmarks.compare --profile [--profile-jobs 20000]

It starts its own redis-server on a unix socket in a temporary directory (never
a TCP port), runs every library's worker as a separate process (cwd and
PYTHONPATH at the repository root, MYRQ_ALLOW=benchmarks), FLUSHALLs between
runs, interleaves the libraries over several rounds and prints medians with
min-max and the ratio myrq / peer. Nothing is installed at run time: the peers
come from the ``bench`` extra. docs/performance.md explains every figure.

Every worker process and the redis-server are killed on every path (normal
end, an error, Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # also runnable as `python benchmarks/compare.py`
    sys.path.insert(0, str(ROOT))
os.environ["MYRQ_ALLOW"] = "benchmarks"  # the planned function allow-list (prefixes)

import psutil  # noqa: E402
import redis  # noqa: E402

from benchmarks import bare_loop, peer_jobs  # noqa: E402
from myrq.testing.redis_server import RedisServer  # noqa: E402

PY = sys.executable
LIBS = ["myrq", "rq", "dramatiq", "huey", "saq", "arq", "bare"]
LOOP = asyncio.new_event_loop()  # one loop for the async producers (SAQ, arq)


class BenchError(RuntimeError):
    """A run failed; the message says why (the worker log's tail is included)."""


# -- processes and Redis -----------------------------------------------------


@dataclass
class Ctx:
    server: RedisServer
    url: str
    client: redis.Redis
    logdir: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    own: int = 0  # commands this process sent while a command count was running
    seq: int = 0

    def flush(self) -> None:
        self.client.flushall()

    def info(self, section: str, key: str) -> int:
        self.own += 1
        return int(self.client.info(section)[key])

    def spawn(self, argv: list[str], tag: str) -> subprocess.Popen[bytes]:
        self.seq += 1
        log = self.logdir / f"{self.seq:03d}-{tag}.log"
        env = dict(os.environ)
        env["BENCH_REDIS_URL"] = self.url
        env["MYRQ_ALLOW"] = "benchmarks"
        env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        env.pop("MYRQ_BROKER_URL", None)
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        proc.log = log  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def stop(self, procs: list[subprocess.Popen[bytes]], grace: float = 10.0) -> None:
        """SIGTERM each process group, then SIGKILL what is left after ``grace``."""
        for p in procs:
            _signal_group(p, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            _signal_group(p, signal.SIGKILL)
            p.wait()
            if p in self.procs:
                self.procs.remove(p)

    def kill_all(self) -> None:
        for p in list(self.procs):
            _signal_group(p, signal.SIGKILL)
            p.wait()
        self.procs.clear()


def _signal_group(p: subprocess.Popen[bytes], sig: int) -> None:
    # Each worker was started in its own session, so its group id is its pid;
    # this reaches the children that dramatiq, huey and saq fork, and nothing else.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(p.pid, sig)


def _log_tail(p: subprocess.Popen[bytes], n: int = 1500) -> str:
    log: Path = p.log  # type: ignore[attr-defined]
    try:
        return log.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def tree_rss(pid: int) -> int:
    """RSS of the largest process in ``pid``'s tree (the one running jobs)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    best = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            best = max(best, p.memory_info().rss)
    return best


# -- one adapter per library -------------------------------------------------


class Lib:
    """How to enqueue to, run and observe one library.

    ``done()`` counts completed jobs from the library's own state in Redis,
    with one pipeline of one or two commands.
    """

    name = ""
    batch_api = False

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.total = 0  # jobs enqueued since the last reset()

    def reset(self) -> None:
        self.total = 0

    def _count(self, *cmds: tuple[str, str]) -> list[int]:
        pipe = self.ctx.client.pipeline(transaction=False)
        for cmd, key in cmds:
            getattr(pipe, cmd)(key)
        self.ctx.own += len(cmds)
        return [int(x) for x in pipe.execute()]

    # producers
    def enqueue_one(self, n: int) -> None:
        raise NotImplementedError

    def enqueue_batch(self, n: int) -> None:
        raise NotImplementedError

    def preload(self, n: int) -> None:
        """Enqueue ``n`` no-op jobs as fast as the library allows (not timed)."""
        if self.batch_api:
            self.enqueue_batch(n)
        else:
            self.enqueue_one(n)

    def enqueue_stamp(self, sample: int) -> None:
        raise NotImplementedError

    # observers and workers
    def done(self) -> int:
        raise NotImplementedError

    def drain_variants(self) -> dict[str, list[list[str]]]:
        """Item 3 configurations: label -> argv of each process to start."""
        raise NotImplementedError

    def multi_variants(self, procs: int) -> dict[str, list[list[str]]]:
        """Item 4 configurations (one worker process per core)."""
        raise NotImplementedError

    def latency_worker(self) -> list[str] | None:
        raise NotImplementedError

    def default_variant(self) -> str:
        return next(iter(self.drain_variants()))


class MyrqLib(Lib):
    name = "myrq"
    batch_api = True

    def __init__(self, ctx: Ctx) -> None:
        super().__init__(ctx)
        from myrq import Queue  # noqa: PLC0415
        from myrq.backends import RedisBroker  # noqa: PLC0415

        self.broker = RedisBroker.from_url(ctx.url)
        self.queue = Queue(peer_jobs.QUEUE, broker=self.broker)

    def enqueue_one(self, n: int) -> None:
        enqueue, noop = self.queue.enqueue, peer_jobs.noop
        for _ in range(n):
            enqueue(noop)
        self.total += n

    def enqueue_batch(self, n: int) -> None:
        q, noop = self.queue, peer_jobs.noop
        for start in range(0, n, 1000):
            q.enqueue_many([q.prepare(noop, ()) for _ in range(min(1000, n - start))])
        self.total += n

    def enqueue_stamp(self, sample: int) -> None:
        self.queue.enqueue(peer_jobs.stamp, sample)

    def done(self) -> int:
        queued, leased = self._count(
            ("llen", self.broker.queue_key(peer_jobs.QUEUE)), ("zcard", "myrq:leases")
        )
        return self.total - queued - leased

    def _argv(self, burst: bool) -> list[str]:
        argv = [PY, "-m", "myrq", "worker", peer_jobs.QUEUE, "--broker", self.ctx.url]
        return [*argv, "--burst"] if burst else argv

    def drain_variants(self) -> dict[str, list[list[str]]]:
        return {"myrq": [self._argv(True)]}

    def multi_variants(self, procs: int) -> dict[str, list[list[str]]]:
        return {f"myrq x{procs} procs": [self._argv(True)] * procs}

    def latency_worker(self) -> list[str]:
        return self._argv(False)


class RQLib(Lib):
    name = "rq"
    batch_api = True

    def __init__(self, ctx: Ctx) -> None:
        super().__init__(ctx)
        import rq  # noqa: PLC0415

        self.queue = rq.Queue(peer_jobs.QUEUE, connection=redis.Redis.from_url(ctx.url))
        self.finished_key = self.queue.finished_job_registry.key

    def enqueue_one(self, n: int) -> None:
        enqueue, noop = self.queue.enqueue, peer_jobs.noop
        for _ in range(n):
            enqueue(noop)
        self.total += n

    def enqueue_batch(self, n: int) -> None:
        q, noop = self.queue, peer_jobs.noop
        for start in range(0, n, 1000):
            q.enqueue_many([q.prepare_data(noop) for _ in range(min(1000, n - start))])
        self.total += n

    def enqueue_stamp(self, sample: int) -> None:
        self.queue.enqueue(peer_jobs.stamp, sample)

    def done(self) -> int:
        return self._count(("zcard", self.finished_key))[0]

    def _argv(self, burst: bool) -> list[str]:
        argv = [PY, "-m", "rq.cli", "worker", "-w", "rq.worker.SimpleWorker",
                "--url", self.ctx.url, peer_jobs.QUEUE]  # fmt: skip
        return [*argv, "--burst"] if burst else argv

    def drain_variants(self) -> dict[str, list[list[str]]]:
        return {"rq SimpleWorker": [self._argv(True)]}

    def multi_variants(self, procs: int) -> dict[str, list[list[str]]]:
        return {f"rq SimpleWorker x{procs} procs": [self._argv(True)] * procs}

    def latency_worker(self) -> list[str]:
        return self._argv(False)


class DramatiqLib(Lib):
    name = "dramatiq"

    def __init__(self, ctx: Ctx) -> None:
        super().__init__(ctx)
        self.noop = peer_jobs.dramatiq_noop
        self.stamp = peer_jobs.dramatiq_stamp
        self.msgs_key = "dramatiq:default.msgs"

    def enqueue_one(self, n: int) -> None:
        send = self.noop.send
        for _ in range(n):
            send()
        self.total += n

    def enqueue_stamp(self, sample: int) -> None:
        self.stamp.send(sample)

    def done(self) -> int:
        return self.total - self._count(("hlen", self.msgs_key))[0]

    def _argv(self, procs: int, threads: int | None) -> list[str]:
        argv = [PY, "-m", "dramatiq", "benchmarks.peer_jobs:dramatiq_broker",
                "--processes", str(procs)]  # fmt: skip
        return [*argv, "--threads", str(threads)] if threads else argv

    def drain_variants(self) -> dict[str, list[list[str]]]:
        return {
            "dramatiq 1 proc x 1 thread": [self._argv(1, 1)],
            "dramatiq 1 proc x 8 threads": [self._argv(1, 8)],
        }

    def multi_variants(self, procs: int) -> dict[str, list[list[str]]]:
        return {f"dramatiq {procs} procs x 8 threads": [self._argv(procs, None)]}

    def latency_worker(self) -> list[str]:
        return self._argv(1, None)


class HueyLib(Lib):
    name = "huey"

    def __init__(self, ctx: Ctx) -> None:
        super().__init__(ctx)
        self.app = peer_jobs.huey_app
        self.noop = peer_jobs.huey_noop
        self.stamp = peer_jobs.huey_stamp
        self.results_key = self.app.storage.result_key

    def enqueue_one(self, n: int) -> None:
        noop = self.noop
        for _ in range(n):
            noop()
        self.total += n

    def enqueue_stamp(self, sample: int) -> None:
        self.stamp(sample)

    def done(self) -> int:
        return self._count(("hlen", self.results_key))[0]

    def _argv(self, workers: int, kind: str) -> list[str]:
        return [PY, "-m", "huey.bin.huey_consumer", "benchmarks.peer_jobs.huey_app",
                "-w", str(workers), "-k", kind]  # fmt: skip

    def drain_variants(self) -> dict[str, list[list[str]]]:
        return {"huey 1 thread": [self._argv(1, "thread")]}

    def multi_variants(self, procs: int) -> dict[str, list[list[str]]]:
        return {f"huey {procs} processes": [self._argv(procs, "process")]}

    def latency_worker(self) -> list[str]:
        return self._argv(1, "thread")


class SaqLib(Lib):
    name = "saq"

    def __init__(self, ctx: Ctx) -> None:
        super().__init__(ctx)
        self.queue = peer_jobs.saq_queue
        LOOP.run_until_complete(self.queue.connect())
        self.incomplete_key = "saq:bench:incomplete"

    def enqueue_one(self, n: int) -> None:
        async def go() -> None:
            enqueue = self.queue.enqueue
            for _ in range(n):
                await enqueue("saq_noop")

        LOOP.run_until_complete(go())
        self.total += n

    def enqueue_stamp(self, sample: int) -> None:
        LOOP.run_until_complete(self.queue.enqueue("saq_stamp", sample=sample))

    def done(self) -> int:
        return self.total - self._count(("zcard", self.incomplete_key))[0]

    def _argv(self, workers: int) -> list[str]:
        return [PY, "-m", "saq", "benchmarks.peer_jobs.saq_settings", "--workers", str(workers)]

    def drain_variants(self) -> dict[str, list[list[str]]]:
        return {"saq (concurrency 10)": [self._argv(1)]}

    def multi_variants(self, procs: int) -> dict[str, list[list[str]]]:
        return {f"saq --workers {procs}": [self._argv(procs)]}

    def latency_worker(self) -> list[str]:
        return self._argv(1)


class ArqLib(Lib):
    name = "arq"

    def __init__(self, ctx: Ctx) -> None:
        super().__init__(ctx)
        from arq import create_pool  # noqa: PLC0415

        self.pool = LOOP.run_until_complete(create_pool(peer_jobs.arq_redis_settings))

    def enqueue_one(self, n: int) -> None:
        async def go() -> None:
            enqueue = self.pool.enqueue_job
            for _ in range(n):
                await enqueue("arq_noop")

        LOOP.run_until_complete(go())
        self.total += n

    def enqueue_stamp(self, sample: int) -> None:
        LOOP.run_until_complete(self.pool.enqueue_job("arq_stamp", sample))

    def done(self) -> int:
        return self.total - self._count(("zcard", "arq:queue"))[0]

    def _argv(self, burst: bool) -> list[str]:
        argv = [PY, "-m", "arq", "benchmarks.peer_jobs.ArqSettings"]
        return [*argv, "--burst"] if burst else argv

    def drain_variants(self) -> dict[str, list[list[str]]]:
        return {"arq (max_jobs 10)": [self._argv(True)]}

    def multi_variants(self, procs: int) -> dict[str, list[list[str]]]:
        return {f"arq x{procs} procs": [self._argv(True)] * procs}

    def latency_worker(self) -> list[str]:
        return self._argv(False)


class BareLib(Lib):
    name = "bare"
    batch_api = True

    def enqueue_one(self, n: int) -> None:
        raise BenchError("the bare loop has no single enqueue; see the ping loop")

    def enqueue_batch(self, n: int) -> None:
        bare_loop.enqueue(self.ctx.client, n)
        self.total += n

    def done(self) -> int:
        queued, leased = self._count(("llen", bare_loop.QUEUE_KEY), ("zcard", bare_loop.LEASES_KEY))
        return self.total - queued - leased

    def _argv(self, batch: int) -> list[str]:
        return [PY, "-m", "benchmarks.bare_loop", self.ctx.url, str(batch)]

    def drain_variants(self) -> dict[str, list[list[str]]]:
        return {f"bare loop, batch {b}": [self._argv(b)] for b in (1, 16, 64)}

    def multi_variants(self, procs: int) -> dict[str, list[list[str]]]:
        return {f"bare loop, batch 1, x{procs} procs": [self._argv(1)] * procs}

    def latency_worker(self) -> None:
        return None


ADAPTERS: dict[str, type[Lib]] = {
    "myrq": MyrqLib, "rq": RQLib, "dramatiq": DramatiqLib, "huey": HueyLib,
    "saq": SaqLib, "arq": ArqLib, "bare": BareLib,
}  # fmt: skip


# -- measurements --------------------------------------------------------------


def wait_done(
    ctx: Ctx, lib: Lib, target: int, procs: list[subprocess.Popen[bytes]], timeout: float
) -> tuple[float, float]:
    """Poll until ``target`` jobs are done.

    Returns (time all were done, time the first was seen done, how many were done then).
    """
    start = time.perf_counter()
    first, first_done = 0.0, 0
    while True:
        done = lib.done()
        now = time.perf_counter()
        if done and not first:
            first, first_done = now, done
        if done >= target:
            return now, first or now, first_done
        if all(p.poll() is not None for p in procs):
            # Burst workers may exit a moment before their last job shows as done.
            if lib.done() >= target:
                return time.perf_counter(), first or now, first_done
            tails = "\n".join(_log_tail(p) for p in procs)
            raise BenchError(f"{lib.name}: workers exited with {done}/{target} done:\n{tails}")
        if now - start > timeout:
            raise BenchError(f"{lib.name}: only {done}/{target} jobs done after {timeout:.0f}s")
        time.sleep(0.002)


def timed_drain(ctx: Ctx, lib: Lib, argvs: list[list[str]], n: int) -> tuple[float, float]:
    """Items 3 and 4: pre-enqueue n no-ops, start the workers, poll until all are done.

    Returns (jobs/s from spawn to done, jobs/s from the first job seen done to the last).
    """
    ctx.flush()
    lib.reset()
    lib.preload(n)
    t0 = time.perf_counter()
    procs = [ctx.spawn(argv, lib.name) for argv in argvs]
    try:
        t1, first, first_done = wait_done(ctx, lib, n, procs, timeout=max(120.0, n / 20))
        if all(_is_burst(a) for a in argvs):  # let burst workers exit by themselves
            for p in procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=5)
    finally:
        ctx.stop(procs)
    steady = (n - first_done) / (t1 - first) if t1 > first else float("nan")
    return n / (t1 - t0), steady


def _is_burst(argv: list[str]) -> bool:
    return "--burst" in argv or "benchmarks.bare_loop" in argv


def idle_latency(ctx: Ctx, lib: Lib, samples: int) -> tuple[float, float]:
    """Item 5: p50 and p99 (ms) from enqueue call to job start, worker idle."""
    argv = lib.latency_worker()
    if argv is None:
        raise BenchError("no idle worker")
    ctx.flush()
    lib.reset()
    proc = ctx.spawn(argv, f"{lib.name}-latency")
    key = peer_jobs.LATENCY_KEY
    try:
        lib.enqueue_stamp(-1)  # warm-up: wait until the worker runs jobs
        _wait_hlen(ctx, key, 1, proc, 60)
        time.sleep(1.5)  # let back-off pollers (dramatiq, huey) settle into their idle state
        sent: dict[int, float] = {}
        rnd = random.Random(7)
        for i in range(samples):
            sent[i] = time.time()
            lib.enqueue_stamp(i)
            time.sleep(rnd.uniform(0.005, 0.025))
        _wait_hlen(ctx, key, samples + 1, proc, 60)
        started = {int(k): float(v) for k, v in ctx.client.hgetall(key).items()}
    finally:
        ctx.stop([proc])
    lat = sorted((started[i] - t) * 1000 for i, t in sent.items())
    return percentile(lat, 50), percentile(lat, 99)


def _wait_hlen(ctx: Ctx, key: str, n: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while ctx.client.hlen(key) < n:
        if proc.poll() is not None:
            raise BenchError(f"worker exited (rc {proc.returncode}):\n{_log_tail(proc)}")
        if time.monotonic() > deadline:
            raise BenchError(f"{ctx.client.hlen(key)}/{n} latency samples after {timeout:.0f}s")
        time.sleep(0.005)


def percentile(sorted_values: list[float], pct: float) -> float:
    k = (len(sorted_values) - 1) * pct / 100
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


class MonitorCounter(threading.Thread):
    """Count MONITOR lines from inside Lua scripts, split at a marker ECHO."""

    MARKER = b"bench-phase-marker"

    def __init__(self, path: str) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.sock.sendall(b"MONITOR\r\n")
        self.sock.settimeout(0.2)
        self.stop_flag = threading.Event()
        self.lua = [0, 0]  # per phase
        self.phase = 0

    def run(self) -> None:
        buf = b""
        while not self.stop_flag.is_set():
            try:
                chunk = self.sock.recv(1 << 20)
            except TimeoutError:
                continue
            if not chunk:
                return
            buf += chunk
            *lines, buf = buf.split(b"\r\n")
            for line in lines:
                if b" lua] " in line:
                    self.lua[min(self.phase, 1)] += 1
                elif self.MARKER in line:
                    self.phase += 1

    def close(self) -> None:
        self.stop_flag.set()
        self.join(5)
        self.sock.close()


def commands_and_memory(ctx: Ctx, lib: Lib, n: int) -> dict[str, float]:
    """Items 6 and 7 in one pass: enqueue n (one at a time), then drain with one worker."""
    ctx.flush()
    lib.reset()
    time.sleep(0.2)
    ctx.client.config_resetstat()
    monitor = MonitorCounter(str(ctx.server.socket))
    monitor.start()
    try:
        ctx.own = 0
        mem0 = ctx.info("memory", "used_memory")
        c0 = ctx.info("stats", "total_commands_processed")
        if lib.name == "bare":
            lib.enqueue_batch(n)
        else:
            lib.enqueue_one(n)
        c1 = ctx.info("stats", "total_commands_processed")
        mem1 = ctx.info("memory", "used_memory")
        enq_own = ctx.own - 1  # the INFO that read c0 is not in c0
        ctx.client.echo(monitor.MARKER)
        ctx.own = 1
        argvs = next(iter(lib.drain_variants().values()))
        procs = [ctx.spawn(argv, f"{lib.name}-commands") for argv in argvs]
        try:
            wait_done(ctx, lib, n, procs, timeout=max(120.0, n / 10))
        finally:
            ctx.stop(procs)
        c2 = ctx.info("stats", "total_commands_processed")
        run_own = ctx.own
        time.sleep(0.3)  # let MONITOR's stream catch up
    finally:
        monitor.close()
    enq = (c1 - c0 - enq_own) / n
    run = (c2 - c1 - run_own) / n
    return {
        "enqueue": enq,
        "run": run,
        "total": enq + run,
        "enqueue_top": enq - monitor.lua[0] / n,
        "run_top": run - monitor.lua[1] / n,
        "memory": (mem1 - mem0) / n,
    }


# -- reporting -----------------------------------------------------------------


@dataclass
class Metric:
    title: str
    unit: str
    higher_is_better: bool
    values: dict[str, list[float]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def add(self, label: str, value: float) -> None:
        self.values.setdefault(label, []).append(value)


def fmt(v: float) -> str:
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def report(metrics: list[Metric], header: str) -> str:
    out = [header]
    for m in metrics:
        if not m.values and not m.failed:
            continue
        better = "higher" if m.higher_is_better else "lower"
        out.append(f"{m.title} [{m.unit}, {better} is better]")
        myrq_label = next((k for k in m.values if k.startswith("myrq")), None)
        base = statistics.median(m.values[myrq_label]) if myrq_label else None
        for label, vals in m.values.items():
            med = statistics.median(vals)
            spread = f"({fmt(min(vals))}-{fmt(max(vals))})" if len(vals) > 1 else ""
            ratio = ""
            if base is not None and label != myrq_label and med:
                r = base / med
                ratio = f"myrq/peer {r:.2f}" if r >= 0.1 else f"myrq/peer {r:.3f}"
            out.append(f"  {label:<34}{fmt(med):>10} {spread:<20} {ratio}")
        for label, why in m.failed.items():
            out.append(f"  {label:<34}{'failed':>10}  {why.splitlines()[0][:60]}")
    return "\n".join(line.rstrip() for line in out)


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    parts = []
    for pkg in ["myrq", "rq", "dramatiq", "huey", "saq", "arq", "redis", "hiredis"]:
        try:
            parts.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            parts.append(f"{pkg} (not installed)")
    return ", ".join(parts)


def machine(ctx: Ctx) -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    redis_version = ctx.client.info("server")["redis_version"]
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {sys.version.split()[0]}, "
        f"redis-server {redis_version} (unix socket)"
    )


# -- modes -----------------------------------------------------------------------


def run_compare(ctx: Ctx, libs: dict[str, Lib], args: argparse.Namespace) -> list[Metric]:
    n, procs = args.jobs, args.procs
    enq = Metric("(1) enqueue, one call at a time", "jobs/s", True)
    batch = Metric("(2) enqueue, batches of 1,000", "jobs/s", True)
    drain1 = Metric(f"(3) drain {n:,} no-ops, one worker process, spawn -> done", "jobs/s", True)
    steady1 = Metric("    (3) without start-up: first job done -> all done", "jobs/s", True)
    drain2 = Metric(f"(4) drain {n:,} no-ops, {procs} worker processes", "jobs/s", True)
    lat50 = Metric("(5) idle enqueue -> start latency, p50", "ms", False)
    lat99 = Metric("    idle enqueue -> start latency, p99", "ms", False)
    cmds = Metric("(6) Redis commands per job, enqueue + run (incl. inside Lua)", "cmds", False)
    top = Metric("    of which top-level (sent by clients): enqueue + run", "cmds", False)
    mem = Metric(f"(7) Redis memory per queued job ({n:,} jobs)", "bytes", False)

    def attempt(metric: Metric, label: str, fn: Callable[[], Any]) -> Any:
        if label in metric.failed:
            return None
        try:
            return fn()
        except Exception as exc:  # one peer failing must not stop the others
            metric.failed[label] = f"{type(exc).__name__}: {exc}"
            print(f"  ! {metric.title.strip()} / {label}: {exc}", file=sys.stderr)
            return None

    def ping_loop() -> float:
        ping = ctx.client.ping
        t0 = time.perf_counter()
        for _ in range(n):
            ping()
        return n / (time.perf_counter() - t0)

    def rate_of(step: Callable[[int], None]) -> float:
        t0 = time.perf_counter()
        step(n)
        return n / (time.perf_counter() - t0)

    for r in range(1, args.rounds + 1):
        print(f"round {r}/{args.rounds} ...", file=sys.stderr, flush=True)
        for name, lib in libs.items():
            if name == "bare":
                label = "redis-py ping loop (round trips/s)"
                if (rate := attempt(enq, label, ping_loop)) is not None:
                    enq.add(label, rate)
                continue
            ctx.flush()
            lib.reset()
            if (rate := attempt(enq, name, lambda lib=lib: rate_of(lib.enqueue_one))) is not None:
                enq.add(name, rate)
        for name, lib in libs.items():
            if not lib.batch_api or name == "bare":
                continue
            ctx.flush()
            lib.reset()
            rate = attempt(batch, name, lambda lib=lib: rate_of(lib.enqueue_batch))
            if rate is not None:
                batch.add(name, rate)
        for lib in libs.values():
            for label, argvs in lib.drain_variants().items():
                res = attempt(drain1, label, lambda lib=lib, a=argvs: timed_drain(ctx, lib, a, n))
                if res:
                    drain1.add(label, res[0])
                    steady1.add(label, res[1])
        for lib in libs.values():
            for label, argvs in lib.multi_variants(procs).items():
                res = attempt(drain2, label, lambda lib=lib, a=argvs: timed_drain(ctx, lib, a, n))
                if res:
                    drain2.add(label, res[0])
        if args.samples:
            for name, lib in libs.items():
                if name == "bare":
                    continue
                res = attempt(lat50, name, lambda lib=lib: idle_latency(ctx, lib, args.samples))
                if res:
                    lat50.add(name, res[0])
                    lat99.add(name, res[1])
    print("commands and memory ...", file=sys.stderr, flush=True)
    for name, lib in libs.items():
        label = "bare loop, batch 1" if name == "bare" else name
        res = attempt(cmds, label, lambda lib=lib: commands_and_memory(ctx, lib, n))
        if res:
            cmds.add(f"{label} ({res['enqueue']:.1f} + {res['run']:.1f})", res["total"])
            top.add(f"{label} ({res['enqueue_top']:.1f} + {res['run_top']:.1f})",
                    res["enqueue_top"] + res["run_top"])  # fmt: skip
            mem.add(label, res["memory"])
    return [enq, batch, drain1, steady1, drain2, lat50, lat99, cmds, top, mem]


def run_rss(ctx: Ctx, libs: dict[str, Lib], args: argparse.Namespace) -> list[Metric]:
    """Item 8: RSS of a long-running worker after 1k, 10k, ... jobs."""
    checkpoints = [c for c in (1_000, 10_000, 100_000, 1_000_000) if c <= args.rss_jobs]
    metrics = {c: Metric(f"(8) worker RSS after {c:,} jobs", "MiB", False) for c in checkpoints}
    for name, lib in libs.items():
        argv = lib.latency_worker()  # a long-running (not burst) worker
        if argv is None:
            continue
        print(f"rss: {name} ...", file=sys.stderr, flush=True)
        ctx.flush()
        lib.reset()
        proc = ctx.spawn(argv, f"{name}-rss")
        try:
            pending = list(checkpoints)
            t0 = time.perf_counter()
            while pending:
                done = lib.done()
                if done >= pending[0]:
                    rss = tree_rss(proc.pid) / 2**20
                    metrics[pending.pop(0)].add(name, rss)
                    print(f"  {name}: {done:,} jobs, RSS {rss:.1f} MiB, "
                          f"{time.perf_counter() - t0:.0f}s", file=sys.stderr)  # fmt: skip
                    continue
                if proc.poll() is not None:
                    raise BenchError(f"worker exited:\n{_log_tail(proc)}")
                if lib.total - done < 2000 and lib.total < checkpoints[-1]:
                    lib.preload(min(1000, checkpoints[-1] - lib.total))
                else:
                    time.sleep(0.01)
        except Exception as exc:
            for m in metrics.values():
                if name not in m.values:
                    m.failed[name] = f"{type(exc).__name__}: {exc}"
            print(f"  ! rss / {name}: {exc}", file=sys.stderr)
        finally:
            ctx.stop([proc])
    return list(metrics.values())


def run_profile(ctx: Ctx, args: argparse.Namespace) -> None:
    """Drain ``--profile-jobs`` no-ops with one myrq worker under pyinstrument."""
    profile_worker(ctx, MyrqLib(ctx), args.profile_jobs, [], "myrq-worker")


def profile_worker(ctx: Ctx, lib: Any, jobs: int, extra: list[str], name: str) -> None:
    """Preload ``jobs`` with ``lib``, drain them with one ``myrq worker`` (plus ``extra``
    arguments) under pyinstrument, and print its tree; the session is kept."""
    ctx.flush()
    lib.preload(jobs)
    session = ctx.logdir / f"{name}.pyisession"
    argv = [PY, "-m", "pyinstrument", "-r", "pyisession", "-o", str(session),
            "-m", "myrq", "worker", peer_jobs.QUEUE, "--burst", "--broker", ctx.url,
            *extra]  # fmt: skip
    t0 = time.perf_counter()
    proc = ctx.spawn(argv, f"{name}-profile")
    try:
        proc.wait(timeout=max(300.0, jobs / 20))
    finally:
        ctx.stop([proc])
    elapsed = time.perf_counter() - t0
    if lib.done() < jobs or not session.exists():
        raise BenchError(f"profiled worker did not finish:\n{_log_tail(proc)}")
    print(f"{jobs:,} jobs drained under pyinstrument in {elapsed:.1f}s "
          f"({jobs / elapsed:,.0f} jobs/s with the profiler on); "
          f"session kept in {session}")  # fmt: skip
    render = [PY, "-m", "pyinstrument", "--load", str(session), "-r", "text"]
    print(subprocess.run(render, capture_output=True, text=True, check=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000, help="N per run (default 2000)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default=",".join(LIBS),
                        help=f"comma-separated subset of {','.join(LIBS)}")  # fmt: skip
    parser.add_argument("--procs", type=int, default=os.cpu_count() or 2,
                        help="worker processes for item 4 (default: one per core)")  # fmt: skip
    parser.add_argument("--samples", type=int, default=200,
                        help="idle-latency samples per round (0 skips item 5)")  # fmt: skip
    parser.add_argument("--rss", action="store_true", help="only item 8 (slow)")
    parser.add_argument("--rss-jobs", type=int, default=100_000)
    parser.add_argument("--profile", action="store_true",
                        help="only profile a myrq worker's drain (pyinstrument)")  # fmt: skip
    parser.add_argument("--profile-jobs", type=int, default=20_000)
    parser.add_argument("--json", metavar="PATH", help="also write raw results as JSON")
    args = parser.parse_args()
    names = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(names) - set(LIBS)
    if unknown:
        parser.error(f"unknown --only names {sorted(unknown)}; choose from {LIBS}")
    if "myrq" not in names:
        names.insert(0, "myrq")  # the ratios need it

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    logdir = Path(tempfile.mkdtemp(prefix="myrq-bench-"))
    server = RedisServer()
    ctx: Ctx | None = None
    started = time.perf_counter()
    try:
        server.start()
        os.environ["BENCH_REDIS_URL"] = server.url
        ctx = Ctx(server, server.url, redis.Redis.from_url(server.url), logdir)
        header = (
            f"{machine(ctx)}\n{versions()}\n"
            f"ratio = myrq / peer (for jobs/s above 1 means myrq is faster; "
            f"for ms, cmds, bytes, MiB below 1 means myrq uses less)"
        )
        if args.profile:
            run_profile(ctx, args)
            return
        libs = {name: ADAPTERS[name](ctx) for name in names}
        if args.rss:
            metrics = run_rss(ctx, libs, args)
            header += f"\nworker RSS, one long-running worker per library, {args.rss_jobs:,} jobs"
        else:
            metrics = run_compare(ctx, libs, args)
            header += (
                f"\nN = {args.jobs:,} jobs per run, {args.rounds} interleaved rounds, "
                f"median (min-max); items 6-7 from one pass"
            )
        text = report(metrics, header)
        print(text)
        print(f"(took {time.perf_counter() - started:.0f}s; worker logs in {logdir})")
        if args.json:
            Path(args.json).write_text(json.dumps(
                {m.title: {"unit": m.unit, "values": m.values, "failed": m.failed}
                 for m in metrics}, indent=1))  # fmt: skip
    finally:
        if ctx is not None:
            ctx.kill_all()
        server.stop()
        LOOP.close()


if __name__ == "__main__":
    main()
