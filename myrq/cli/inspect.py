"""``myrq info``, ``myrq job`` and ``myrq workers``: what is where, for operators."""

from __future__ import annotations

import argparse
import time
from typing import Any

from myrq.backends import Broker
from myrq.backends.control import REGISTRY_STATES
from myrq.cli.common import Parser, add_common, broker_of, moment, span, worker_state
from myrq.codec import ErrorInfo
from myrq.exceptions import BrokerError, MyrqError
from myrq.job import Job
from myrq.schema import F_ERROR, F_PAYLOAD, F_RESULT, parse_number

#: Running jobs listed by ``myrq info`` (the rest are counted).
RUNNING_SHOWN = 20


def add_commands(sub: argparse._SubParsersAction[Parser]) -> None:
    p = sub.add_parser("info", help="show queues, their registries, running jobs and leases")
    p.add_argument(
        "--scan",
        action="store_true",
        help="also count every stored job by status (reads every record: slow on big brokers)",
    )
    add_common(p)
    p = sub.add_parser("job", help="show one job")
    p.add_argument("job_id", metavar="ID")
    p.add_argument("--raw", action="store_true", help="every stored field as it is")
    add_common(p)
    p = sub.add_parser("workers", help="show the live workers")
    add_common(p)


def cmd_info(args: argparse.Namespace) -> int:
    broker = broker_of(args)
    print(f"broker: {broker.url or repr(broker)}")
    names = broker.queue_names()
    print("queues:" if names else "queues: none")
    for name in names:
        try:
            waiting = f"{broker.queue_length(name):>8} queued"
            waiting += _registries(broker, name)
        except BrokerError as exc:  # a foreign key of another type under the queue's name
            waiting = f"unreadable ({exc})"
        print(f"  {name:<30} {waiting}")
    if args.scan:
        counts = broker.status_counts()
        print("jobs by status (every record read):" if counts else "jobs: none")
        for status, n in sorted(counts.items()):
            print(f"  {status:<30} {n:>8}")
    leased = broker.leased_ids()
    print(f"running (leased) jobs: {len(leased)}")
    live = broker.workers()
    now = time.time()
    for job_id in leased[:RUNNING_SHOWN]:
        record = broker.get(job_id) or {}
        worker = record.get("worker", b"").decode("utf-8", "replace")
        deadline = broker.lease_deadline(job_id)
        lease = "-" if deadline is None else _lease(deadline, now)
        print(f"  {job_id}  worker {worker_state(broker, worker, live)}  lease {lease}")
    if len(leased) > RUNNING_SHOWN:
        print(f"  ... and {len(leased) - RUNNING_SHOWN} more")
    return 0


def _registries(broker: Broker, queue: str) -> str:
    """The queue's non-empty registries: ``, 2 running, 5 failed``."""
    parts = []
    for state in REGISTRY_STATES:
        if state != "pending":
            n = broker.registry_count(queue, state)
            if n:
                parts.append(f"{n} {state}")
    return ", " + ", ".join(parts) if parts else ""


def _lease(deadline: float, now: float) -> str:
    if deadline >= now:
        return f"expires in {span(deadline - now)}"
    return f"expired {span(now - deadline)} ago (the job runs again once a worker reaps it)"


def cmd_job(args: argparse.Namespace) -> int:
    broker = broker_of(args)
    job = Job.fetch(args.job_id, broker=broker, serializer=args.serializer)
    fields = job.fields
    if args.raw:
        print(f"id: {job.id}")
        for name in sorted(fields):
            print(f"{name}: {fields[name].decode('utf-8', 'replace')}")
        return 0
    print(f"id: {job.id}\nstatus: {fields.get('status', b'?').decode('utf-8', 'replace')}")
    print(f"queue: {job.origin}")
    _print_call(job)
    _print_times(job)
    if job.worker_name:
        print(f"worker: {worker_state(broker, job.worker_name, broker.workers())}")
    deadline = broker.lease_deadline(job.id)
    if deadline is not None:
        print(f"lease: {_lease(deadline, time.time())}")
    elif fields.get("status") == b"running":
        print("lease: none (the lease set was lost? `myrq repair --dry-run` tells)")
    if F_ERROR in fields:
        err = ErrorInfo.from_bytes(fields[F_ERROR])
        print(f"error.type: {err.type}\nerror.message: {err.message}")
        if err.traceback:
            print("error.traceback:\n  " + err.traceback.rstrip().replace("\n", "\n  "))
    hidden = sorted(set(fields) - _SHOWN)
    if hidden:
        print(f"(also stored: {', '.join(hidden)}; --raw shows every field)")
    return 0


def _print_call(job: Job[Any]) -> None:
    try:
        print(f"func: {job.func_name}\nargs: {job.args!r}\nkwargs: {job.kwargs!r}")
    except MyrqError as exc:
        print(f"func: <undecodable: {exc}>")
    if job.description:
        print(f"description: {job.description}")
    if F_RESULT in job.fields:
        try:
            print(f"result: {job.result!r}")
        except MyrqError as exc:
            print(f"result: <undecodable: {exc}>")


def _print_times(job: Job[Any]) -> None:
    started, ended = job.started_at, job.ended_at
    print(f"created: {moment(job.created_at)}\nstarted: {moment(started)}")
    ran = f" (ran {span((ended - started).total_seconds())})" if ended and started else ""
    print(f"ended: {moment(ended)}{ran}\nattempts: {job.attempts}")
    for label, name in (("timeout", "timeout"), ("result ttl", "result_ttl")):
        value = parse_number(job.fields.get(name))
        if value is not None:
            print(f"{label}: {span(value)}" if value >= 0 else f"{label}: forever")


_SHOWN = {
    F_PAYLOAD, F_RESULT, F_ERROR, "status", "queue", "description", "created_at", "started_at",
    "ended_at", "attempts", "worker", "timeout", "result_ttl",
}  # fmt: skip


def cmd_workers(args: argparse.Namespace) -> int:
    broker = broker_of(args)
    live = broker.workers()
    if not live:
        print("workers: none alive")
        return 0
    now = time.time()
    print(f"workers: {len(live)} alive")
    for name, rec in sorted(live.items()):
        field = {k: v.decode("utf-8", "replace") for k, v in rec.items()}
        beat = parse_number(rec.get("beat_at"))
        print(
            f"  {name}  host {field.get('host', '?')} pid {field.get('pid', '?')}  "
            f"queues {field.get('queues', '?')}  job {field.get('job') or '-'}  "
            f"done {field.get('finished', '0')} failed {field.get('failed', '0')}  "
            f"last beat {span(now - beat) + ' ago' if beat is not None else '?'}"
        )
    return 0


COMMANDS = {"info": cmd_info, "job": cmd_job, "workers": cmd_workers}
