"""``myrq enqueue`` and ``myrq repair``: changing what is stored."""

from __future__ import annotations

import argparse

from myrq.cli.common import Parser, add_common, broker_of, json_arg
from myrq.defaults import DEFAULT_FAILURE_TTL
from myrq.exceptions import MyrqError
from myrq.queue import Queue
from myrq.schema import F_STATUS, S_RUNNING


def add_commands(sub: argparse._SubParsersAction[Parser]) -> None:
    p = sub.add_parser("enqueue", help="enqueue a job and print its id")
    p.add_argument("func", help="function as package.module.func")
    p.add_argument("args", nargs="*", metavar="ARG", help="positional arguments, each as JSON")
    p.add_argument("--kwargs", metavar="JSON", help="keyword arguments as a JSON object")
    p.add_argument("--queue", default="default", metavar="NAME")
    p.add_argument("--timeout", metavar="DURATION", help="how long it may run: 30, 90s, 5m")
    p.add_argument("--job-id", metavar="ID")
    p.add_argument("--delay", metavar="DURATION", help="run it after this long (e.g. 10m)")
    p.add_argument("--retry", type=int, metavar="N", help="retry it up to N times if it fails")
    p.add_argument("--at-front", action="store_true", help="put it at the head of its queue")
    p.add_argument(
        "--depends-on",
        action="append",
        metavar="ID",
        help="run it once this job has finished (repeatable)",
    )
    add_common(p)

    p = sub.add_parser("cron", help="list the periodic schedules, or remove one")
    p.add_argument("queues", nargs="*", metavar="QUEUE", help="queues (default: all)")
    p.add_argument("--remove", metavar="NAME", help="remove this schedule (give its QUEUE)")
    add_common(p)

    p = sub.add_parser(
        "repair",
        help="requeue jobs left running without a lease (after the lease set was lost)",
    )
    p.add_argument(
        "--max-attempts",
        type=int,
        default=3,
        metavar="N",
        help="fail a job already claimed this many times instead (0: no limit; default 3)",
    )
    p.add_argument("--dry-run", action="store_true", help="only list what would be repaired")
    add_common(p)


def cmd_enqueue(args: argparse.Namespace) -> int:
    positional = [json_arg(a, f"argument {i}") for i, a in enumerate(args.args, 1)]
    kwargs = json_arg(args.kwargs, "--kwargs") if args.kwargs else {}
    if not isinstance(kwargs, dict):
        raise MyrqError(f"--kwargs must be a JSON object, not {args.kwargs!r}")
    queue = Queue(args.queue, broker=broker_of(args), serializer=args.serializer)
    job = queue.enqueue_call(
        args.func,
        args=positional,
        kwargs=kwargs,
        timeout=args.timeout,
        job_id=args.job_id,
        delay=args.delay,
        retry=args.retry,
        at_front=args.at_front,
        depends_on=args.depends_on,
    )
    print(job.id)
    return 0


def cmd_cron(args: argparse.Namespace) -> int:
    broker = broker_of(args)
    if args.remove:
        if len(args.queues) != 1:
            raise MyrqError(
                "--remove NAME needs the schedule's queue: myrq cron QUEUE --remove NAME"
            )
        removed = Queue(args.queues[0], broker=broker).remove_cron(args.remove)
        print(f"removed {args.queues[0]}/{args.remove}" if removed else "no such schedule")
        return 0 if removed else 1
    found = False
    for name in args.queues or broker.queue_names():
        for schedule in Queue(name, broker=broker).cron_jobs():
            found = True
            print(f"  {schedule}")
    if not found:
        print("no periodic schedules")
    return 0


def cmd_repair(args: argparse.Namespace) -> int:
    """Find records that say ``running`` but hold no lease, and treat their leases as expired.

    Reads every record (a scan): for operators, not a schedule. A job whose
    worker is registered alive is left alone: its next heartbeat puts its
    lease back. ``Broker.repair`` checks each job again, atomically.
    """
    broker = broker_of(args)
    live = broker.workers()
    suspects: list[tuple[str, str]] = []
    held: list[tuple[str, str]] = []
    for job_id in broker.job_ids():
        record = broker.get(job_id)
        if record is None or record.get(F_STATUS) != S_RUNNING:
            continue
        if broker.lease_deadline(job_id) is not None:
            continue  # it holds a lease: nothing lost
        worker = record.get("worker", b"").decode("utf-8", "replace")
        (held if worker in live else suspects).append((job_id, worker))
    for job_id, worker in held:
        print(f"  {job_id}: held by live worker {worker}; its next heartbeat restores the lease")
    suspects_ids = [job_id for job_id, _ in suspects]
    if not suspects:
        print("nothing to repair: every running job holds a lease or has a live worker")
        return 0
    if args.dry_run:
        print(f"{len(suspects)} running job(s) hold no lease and have no live worker:")
        for job_id, worker in suspects:
            print(f"  {job_id} (worker {worker or '?'})")
        return 0
    repaired = broker.repair(
        suspects_ids, max_attempts=args.max_attempts, failure_ttl=DEFAULT_FAILURE_TTL
    )
    for item in repaired:
        where = f" on {item.queue}" if item.queue else ""
        print(f"  {item.job_id}: {item.outcome}{where} (attempts {item.attempts})")
    print(f"repaired {len(repaired)} job(s)")
    return 0


COMMANDS = {"enqueue": cmd_enqueue, "repair": cmd_repair, "cron": cmd_cron}
