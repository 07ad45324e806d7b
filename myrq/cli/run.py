"""``myrq worker`` and ``myrq demo``: running jobs."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from myrq import config
from myrq.cli.common import Parser, add_common, broker_of
from myrq.contrib import worker_metrics
from myrq.exceptions import MyrqError
from myrq.worker import Worker
from myrq.worker.pool import WorkerPool


def add_commands(sub: argparse._SubParsersAction[Parser]) -> None:
    p = sub.add_parser("worker", help="run a worker")
    p.add_argument("queues", nargs="*", metavar="QUEUE", help="queues, highest priority first")
    add_common(p)
    p.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    p.add_argument(
        "--name",
        help="worker name (default host.pid.random); with --processes, the pool's name "
        "(default host.pid): its workers are NAME-1.PID, NAME-2.PID, ...",
    )
    p.add_argument("--lease-ttl", type=float, default=15.0, metavar="SECONDS")
    p.add_argument("--max-jobs", type=int, metavar="N", help="exit after N jobs")
    p.add_argument(
        "--processes",
        type=int,
        metavar="N",
        help="run N worker processes under a supervisor that restarts any that dies and "
        "passes signals on (--max-jobs then applies to each; see docs/process-pool.md)",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        default=1,
        metavar="N",
        help="run up to N jobs at once: async def jobs on an event loop, others in threads "
        "(default 1: one at a time; see docs/concurrency.md)",
    )
    p.add_argument(
        "--max-attempts",
        type=int,
        default=3,
        metavar="N",
        help="claims after which a job whose worker keeps dying fails as abandoned (0: no limit)",
    )
    p.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="MODULE",
        help="run functions defined in MODULE and its submodules (repeatable; adds to MYRQ_ALLOW)",
    )
    p.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE at start, so its @myrq.task functions may run (repeatable)",
    )
    p.add_argument(
        "--grace-period",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="after SIGTERM, let the current job run this long before putting it back "
        "(default 30; negative: no limit)",
    )
    p.add_argument(
        "--isolate",
        action="store_true",
        help="run each job in a forked child process (a crash fails the job, not the worker)",
    )
    p.add_argument(
        "--isolate-queue",
        action="append",
        default=[],
        metavar="QUEUE",
        help="run jobs of QUEUE in a child process (repeatable)",
    )
    p.add_argument(
        "--job-memory-limit",
        type=int,
        metavar="BYTES",
        help="with isolation, cap each job process's address space",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics on PORT, all interfaces (needs myrq[prometheus])",
    )
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    p = sub.add_parser("demo", help="enqueue a mixed batch and run a worker on it")
    add_common(p)


def cmd_worker(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # As `python -m`, and as RQ's worker does: modules next to where the worker
    # is started can be imported (and allowed) by name.
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for module in args.imports:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise MyrqError(f"--import {module}: {exc}") from None
    queues = args.queues or ["default"]
    options = {
        "serializer": args.serializer,
        "name": args.name,
        "lease_ttl": args.lease_ttl,
        "max_attempts": args.max_attempts,
        "allow": args.allow,
        "grace_period": None if args.grace_period < 0 else args.grace_period,
        "isolate": True if args.isolate else args.isolate_queue,
        "job_memory_limit": args.job_memory_limit,
        "concurrency": args.concurrency,
    }
    if args.processes is not None:
        if args.metrics_port is not None:
            raise MyrqError("--metrics-port does not work with --processes yet")
        pool = WorkerPool(queues, args.processes, broker=args.broker, **options)
        return pool.run(burst=args.burst, max_jobs=args.max_jobs)
    worker = Worker(queues, broker=broker_of(args), **options)
    worker.broker.ping()
    with worker_metrics(args.metrics_port):
        worker.work(burst=args.burst, max_jobs=args.max_jobs)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from myrq.demo import run_demo  # noqa: PLC0415 - only the demo needs it

    broker = config.get_broker(args.broker or "memory://")
    return run_demo(broker, args.serializer)


COMMANDS = {"worker": cmd_worker, "demo": cmd_demo}
