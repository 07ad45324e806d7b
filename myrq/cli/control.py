"""``myrq stop``, ``cancel``, ``requeue`` and ``empty``: operators acting on jobs and queues."""

from __future__ import annotations

import argparse
from typing import Any

from myrq.cli.common import Parser, add_common, broker_of
from myrq.exceptions import MyrqError, NoSuchJobError
from myrq.job import Job
from myrq.queue import Queue
from myrq.status import TERMINAL_STATUSES, JobStatus


def add_commands(sub: argparse._SubParsersAction[Parser]) -> None:
    p = sub.add_parser(
        "stop", help="stop jobs: a running one is stopped by its worker, a waiting one canceled"
    )
    p.add_argument("job_ids", nargs="+", metavar="ID")
    add_common(p)

    p = sub.add_parser("cancel", help="cancel jobs that have not started")
    p.add_argument("job_ids", nargs="+", metavar="ID")
    add_common(p)

    p = sub.add_parser(
        "requeue",
        help="run ended jobs again: myrq requeue ID..., or myrq requeue QUEUE --all-failed",
    )
    p.add_argument("job_ids", nargs="*", metavar="ID", help="job ids (or QUEUE with --all-failed)")
    p.add_argument(
        "--all-failed",
        action="store_true",
        help="the one argument is a queue: requeue its failed and timed-out jobs",
    )
    p.add_argument("--queue", metavar="NAME", help="requeue this queue's ended jobs")
    p.add_argument(
        "--state",
        action="append",
        metavar="STATE",
        help="with --queue: the registry to requeue (repeatable; default: failed and timeout)",
    )
    add_common(p)

    p = sub.add_parser("empty", help="delete every job waiting on a queue")
    p.add_argument("queue", metavar="QUEUE")
    p.add_argument("--yes", action="store_true", help="do it (without it, only count)")
    add_common(p)


def _job(args: argparse.Namespace, job_id: str) -> Job[Any]:
    return Job.fetch(job_id, broker=broker_of(args), serializer=args.serializer)


def cmd_stop(args: argparse.Namespace) -> int:
    failed = 0
    for job_id in args.job_ids:
        try:
            job = _job(args, job_id)
            was = job.status
            if job.stop():
                how = "its worker stops it" if was is JobStatus.RUNNING else "canceled"
                print(f"{job_id}: {how}")
            else:
                print(f"{job_id}: had already ended ({job.get_status().value})")
        except NoSuchJobError as exc:
            print(f"{job_id}: {exc}")
            failed += 1
    return 1 if failed else 0


def cmd_cancel(args: argparse.Namespace) -> int:
    failed = 0
    for job_id in args.job_ids:
        try:
            job = _job(args, job_id)
        except NoSuchJobError as exc:
            print(f"{job_id}: {exc}")
            failed += 1
            continue
        if job.cancel():
            print(f"{job_id}: canceled")
        else:
            print(f"{job_id}: not canceled: it is {job.get_status().value} (myrq stop stops it)")
            failed += 1
    return 1 if failed else 0


def cmd_requeue(args: argparse.Namespace) -> int:
    if args.all_failed:
        if len(args.job_ids) != 1 or args.queue:
            raise MyrqError("--all-failed takes one queue: myrq requeue QUEUE --all-failed")
        args.queue, args.job_ids = args.job_ids[0], []
    if bool(args.job_ids) == bool(args.queue):
        raise MyrqError("give job ids, or --queue NAME (and optionally --state), not both")
    if args.queue:
        queue = Queue(args.queue, broker=broker_of(args), serializer=args.serializer)
        states = args.state or [JobStatus.FAILED.value, JobStatus.TIMEOUT.value]
        ended = sorted(s.value for s in TERMINAL_STATUSES)
        for state in states:
            if state not in ended:
                raise MyrqError(
                    f"--state {state}: only ended jobs can be requeued; the states are "
                    f"{', '.join(ended)}"
                )
        n = queue.requeue_failed(states)
        print(f"requeued {n} job(s) of {args.queue} ({', '.join(states)})")
        return 0
    failed = 0
    for job_id in args.job_ids:
        try:
            job = _job(args, job_id)
        except NoSuchJobError as exc:
            print(f"{job_id}: {exc}")
            failed += 1
            continue
        if job.requeue():
            print(f"{job_id}: requeued on {job.origin}")
        else:
            print(f"{job_id}: not requeued: it is {job.get_status().value}, not ended")
            failed += 1
    return 1 if failed else 0


def cmd_empty(args: argparse.Namespace) -> int:
    queue = Queue(args.queue, broker=broker_of(args), serializer=args.serializer)
    if not args.yes:
        print(f"{args.queue}: {queue.count} job(s) waiting; run again with --yes to delete them")
        return 0
    print(f"{args.queue}: deleted {queue.empty()} waiting job(s)")
    return 0


COMMANDS = {"stop": cmd_stop, "cancel": cmd_cancel, "requeue": cmd_requeue, "empty": cmd_empty}
