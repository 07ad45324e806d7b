"""The README's first command: enqueue a mixed batch, run a worker, show what happened.

``python -m myrq demo`` runs on the in-memory broker; ``--broker redis://...``
runs the same against Redis. Exits 0 when every job ended as expected.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

from myrq.backends import Broker
from myrq.exceptions import MyrqError
from myrq.queue import Queue
from myrq.serializers import Serializer
from myrq.status import JobStatus
from myrq.task import task
from myrq.worker import Worker

# -- the demo's job functions: module level, and registered with @task so that a
# worker allows them (see myrq.registry) ----


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def greet(name: str, punctuation: str = "!") -> str:
    return f"hello, {name}{punctuation}"


@task
def divide(a: float, b: float) -> float:
    return a / b


@task
def nap(seconds: float) -> str:
    time.sleep(seconds)
    return "rested"


@task
def tags() -> set[str]:
    return {"a", "b"}  # a set: the JSON serializer cannot store this result


# -- the demo ----------------------------------------------------------------


def run_demo(broker: Broker, serializer: Serializer | str | None = None) -> int:
    """Run the demo on ``broker``; print a report; return 0 if all went as expected."""
    default = Queue("demo", broker=broker, serializer=serializer)
    high = Queue("demo-high", broker=broker, serializer=serializer)
    print(f"broker: {broker.url or repr(broker)}   serializer: {default.serializer.name}")
    print("\nrefused at enqueue time (nothing is stored):")
    is_json = default.serializer.name == "json"
    bad: list[tuple[str, Any]] = [
        ("a lambda", lambda: default.enqueue(lambda: 1)),
        ("an invalid job id", lambda: default.enqueue_call(add, (1, 2), job_id="no spaces")),
    ]
    if is_json:  # pickle can encode a date, so this one is refused by JSON only
        day = datetime.date(2026, 1, 1)  # wrong on purpose: a type checker refuses it too
        bad.append(("a date argument", lambda: default.enqueue(add, day, 1)))  # type: ignore[call-overload]
    for label, attempt in bad:
        try:
            attempt()
            print(f"  {label}: accepted (unexpected)")
        except MyrqError as exc:
            print(f"  {label}: {type(exc).__name__}: {exc}")

    expected: list[tuple[Any, JobStatus]] = [
        (default.enqueue(add, 1, 2), JobStatus.FINISHED),
        (default.enqueue("myrq.demo.greet", "world", punctuation="?"), JobStatus.FINISHED),
        (default.enqueue(divide, 1, 0), JobStatus.FAILED),
        (default.with_options(timeout=0.5).enqueue(nap, 5), JobStatus.TIMEOUT),
        (default.enqueue("myrq.demo.no_such_function"), JobStatus.FAILED),
        (default.enqueue(tags), JobStatus.FAILED if is_json else JobStatus.FINISHED),
        (high.enqueue(add, 40, 2), JobStatus.FINISHED),
    ]
    print(f"\nenqueued {len(expected)} jobs; running a worker on demo-high, demo (burst)...")
    worker = Worker(["demo-high", "demo"], broker=broker, serializer=serializer, lease_ttl=10)
    started = time.monotonic()
    worker.work(burst=True)
    print(f"worker done in {time.monotonic() - started:.2f}s\n")
    for job, _ in expected:
        job.refresh()
    order = sorted(expected, key=lambda pair: pair[0].started_at or datetime.datetime.max)
    print(f"  {'ran':<5}{'job':<10}{'queue':<11}{'function':<28}{'status':<10}outcome")
    ok = True
    for job, want in expected:
        status = job.get_status(refresh=False)
        outcome = repr(job.result) if status is JobStatus.FINISHED else str(job.error)
        mark = "" if status is want else f"   <-- expected {want.value}"
        ok = ok and status is want
        ran = f"#{[j for j, _ in order].index(job) + 1}"
        print(
            f"  {ran:<5}{job.id[:8]:<10}{job.origin:<11}{job.func_name:<28}{status.value:<10}"
            f"{outcome[:90]}{mark}"
        )
        job.delete()
    print("\nall jobs ended as expected" if ok else "\nSOME JOBS DID NOT END AS EXPECTED")
    return 0 if ok else 1
