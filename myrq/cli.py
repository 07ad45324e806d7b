"""The ``myrq`` command line: worker, enqueue, info, job, demo."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from myrq import config
from myrq.backends import Broker
from myrq.codec import ErrorInfo
from myrq.exceptions import MyrqError
from myrq.job import Job
from myrq.queue import Queue
from myrq.worker import Worker


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broker", metavar="URL", help="broker URL (default: configured)")
    p.add_argument("--serializer", metavar="NAME", help="json, pickle or a dotted path")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="myrq", description="myrq job queue")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("worker", help="run a worker")
    p.add_argument("queues", nargs="*", metavar="QUEUE", help="queues, highest priority first")
    _common(p)
    p.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    p.add_argument("--name", help="worker name (default host.pid.random)")
    p.add_argument("--lease-ttl", type=float, default=15.0, metavar="SECONDS")
    p.add_argument("--max-jobs", type=int, metavar="N", help="exit after N jobs")
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
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    p = sub.add_parser("enqueue", help="enqueue a job and print its id")
    p.add_argument("func", help="function as package.module.func")
    p.add_argument("args", nargs="*", metavar="ARG", help="positional arguments, each as JSON")
    p.add_argument("--kwargs", metavar="JSON", help="keyword arguments as a JSON object")
    p.add_argument("--queue", default="default", metavar="NAME")
    p.add_argument("--timeout", type=float, metavar="SECONDS")
    p.add_argument("--job-id", metavar="ID")
    _common(p)

    p = sub.add_parser("info", help="show queues and jobs by status")
    _common(p)

    p = sub.add_parser("job", help="show one job")
    p.add_argument("job_id", metavar="ID")
    _common(p)

    p = sub.add_parser("demo", help="enqueue a mixed batch and run a worker on it")
    _common(p)
    return parser


def _broker(args: argparse.Namespace) -> Broker:
    return config.get_broker(args.broker)


def _json_arg(text: str, label: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise MyrqError(
            f"{label} {text!r} is not JSON; write strings in JSON quotes, e.g. '\"{text}\"'"
        ) from None


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
    worker = Worker(
        args.queues or ["default"],
        broker=_broker(args),
        serializer=args.serializer,
        name=args.name,
        lease_ttl=args.lease_ttl,
        max_attempts=args.max_attempts,
        allow=args.allow,
        grace_period=None if args.grace_period < 0 else args.grace_period,
        isolate=True if args.isolate else args.isolate_queue,
        job_memory_limit=args.job_memory_limit,
    )
    worker.broker.ping()
    worker.work(burst=args.burst, max_jobs=args.max_jobs)
    return 0


def cmd_enqueue(args: argparse.Namespace) -> int:
    positional = [_json_arg(a, f"argument {i}") for i, a in enumerate(args.args, 1)]
    kwargs = _json_arg(args.kwargs, "--kwargs") if args.kwargs else {}
    if not isinstance(kwargs, dict):
        raise MyrqError(f"--kwargs must be a JSON object, not {args.kwargs!r}")
    queue = Queue(args.queue, broker=_broker(args), serializer=args.serializer)
    job = queue.enqueue_call(
        args.func, args=positional, kwargs=kwargs, timeout=args.timeout, job_id=args.job_id
    )
    print(job.id)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    broker = _broker(args)
    print(f"broker: {broker.url or repr(broker)}")
    names = broker.queue_names()
    print("queues:" if names else "queues: none")
    for name in names:
        print(f"  {name:<30} {broker.queue_length(name):>8} queued")
    counts = broker.status_counts()
    print("jobs by status:" if counts else "jobs: none")
    for status, n in sorted(counts.items()):
        print(f"  {status:<30} {n:>8}")
    print(f"leased (running) jobs: {len(broker.leased_ids())}")
    return 0


def cmd_job(args: argparse.Namespace) -> int:
    job = Job.fetch(args.job_id, broker=_broker(args), serializer=args.serializer)
    fields = job.fields
    print(f"id: {job.id}")
    for name in sorted(fields):
        raw = fields[name]
        if name == "error":
            err = ErrorInfo.from_bytes(raw)
            print(f"error.type: {err.type}\nerror.message: {err.message}")
            if err.traceback:
                print("error.traceback:\n  " + err.traceback.rstrip().replace("\n", "\n  "))
            continue
        if name == "result":
            try:
                print(f"result: {job.result!r}")
            except MyrqError as exc:
                print(f"result: <undecodable: {exc}>")
            continue
        if name == "func":
            try:
                print(f"func: {job.func_name}\nargs: {job.args!r}\nkwargs: {job.kwargs!r}")
            except MyrqError as exc:
                print(f"func: <undecodable: {exc}>")
            continue
        print(f"{name}: {raw.decode('utf-8', 'replace')}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from myrq.demo import run_demo  # noqa: PLC0415 - only the demo needs it

    broker = config.get_broker(args.broker or "memory://")
    return run_demo(broker, args.serializer)


_COMMANDS = {
    "worker": cmd_worker,
    "enqueue": cmd_enqueue,
    "info": cmd_info,
    "job": cmd_job,
    "demo": cmd_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except MyrqError as exc:
        print(f"myrq: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
