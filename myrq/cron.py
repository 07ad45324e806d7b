"""Periodic jobs: schedules stored in the broker, run by whichever worker is there.

A schedule is stored per queue (``Broker.cron_set``) with the job it makes:
function, arguments, options. Each of its runs is an ordinary scheduled job
whose id names the schedule and the moment (``cron:<queue>:<name>:<ms>``).
The worker that claims one schedules the next before running it
(``Broker.cron_next``, which does nothing if the schedule changed meanwhile or
the next job exists already), so the schedule lives in the broker alone,
survives any worker's death, and each period runs once however many workers
there are. A run due while no worker was up runs when one comes back, and the
next is the first period after that moment: missed periods are not run one
by one.

Cron expressions are read by ``croniter``: five fields, or six with seconds
last (``"* * * * * */10"``: every ten seconds), in a time zone (``tz``, default UTC). Intervals
(``60``, ``"15m"``) run at multiples of the interval since the epoch, so
registering the same schedule again at the next deploy does not shift it.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from myrq.backends import Broker, Delivery
from myrq.backends.values import CronJob
from myrq.durations import parse_duration
from myrq.exceptions import InvalidJobError
from myrq.options import ENQUEUE_KEYWORDS
from myrq.schema import (
    F_CREATED_AT,
    F_CRON,
    F_CRON_VERSION,
    F_SIGNATURE,
    F_STATUS,
    LIVE,
    S_SCHEDULED,
    format_number,
)
from myrq.signing import sign

if TYPE_CHECKING:
    from myrq.job import Job
    from myrq.queue import Queue

logger = logging.getLogger("myrq.cron")

_NAME = re.compile(r"[^\s\x00-\x1f\x7f:]{1,100}")


@dataclass(frozen=True)
class CronSchedule:
    """A stored schedule, as ``Queue.cron_jobs()`` lists it."""

    queue: str
    name: str
    schedule: str | float  # the cron expression, or the interval in seconds
    tz: str
    func_name: str
    next_job_id: str | None
    next_run: datetime | None

    def __str__(self) -> str:
        every = f"every {self.schedule:g}s" if isinstance(self.schedule, float) else self.schedule
        when = self.next_run.isoformat() if self.next_run else "-"
        return f"{self.queue}/{self.name}: {self.func_name} {every} ({self.tz}); next {when}"


class Timing:
    """When a schedule's runs are: a cron expression in a zone, or an interval."""

    def __init__(self, schedule: object, tz: str | None) -> None:
        self.tz_name = tz or "UTC"
        try:
            self.tz = ZoneInfo(self.tz_name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidJobError(
                f"unknown time zone {tz!r} ({exc}); write e.g. 'Europe/Paris'"
            ) from None
        self.expr: str | None = None
        self.every: float | None = None
        if isinstance(schedule, str) and len(schedule.split()) in (5, 6):
            from croniter import croniter  # noqa: PLC0415 - imported when a cron expression is used

            if not croniter.is_valid(schedule):
                raise InvalidJobError(
                    f"{schedule!r} is not a cron expression: five fields 'minute hour day "
                    "month weekday', or six with seconds last"
                )
            try:  # well formed, but does it ever fire? (February 31st never comes)
                croniter(schedule, datetime.now(self.tz)).get_next(datetime)
            except ValueError as exc:  # croniter's CroniterBadDateError
                raise InvalidJobError(
                    f"cron expression {schedule!r} never fires ({exc}): check its day and month"
                ) from None
            self.expr = schedule
        else:
            self.every = parse_duration(schedule, "schedule")
            if self.every < 1:
                raise InvalidJobError(
                    f"an interval schedule must be 1 second or more, not {schedule!r}"
                )

    @property
    def spec(self) -> str | float:
        return self.expr if self.expr is not None else float(self.every or 0)

    def next_after(self, moment: float) -> float:
        """The first run strictly after ``moment`` (seconds since the epoch)."""
        if self.every is not None:
            return (moment // self.every + 1) * self.every
        from croniter import croniter  # noqa: PLC0415

        start = datetime.fromtimestamp(moment, self.tz)
        return float(croniter(self.expr, start).get_next(datetime).timestamp())


def register_cron(
    queue: Queue, schedule: object, job: Job[Any], *, name: str, tz: str | None
) -> CronSchedule:
    """Store a schedule for ``queue`` and its first run (see :meth:`myrq.Queue.cron`)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidJobError(
            f"invalid schedule name {name!r}: 1-100 characters, no spaces and no ':' "
            "(the broker keeps '<name>:next' and '<name>:version' beside it)"
        )
    timing = Timing(schedule, tz)
    template = {k: v for k, v in job.fields.items() if k not in (F_SIGNATURE, F_CREATED_AT)}
    spec = json.dumps(
        {
            "schedule": timing.spec,
            "tz": timing.tz_name,
            "func": job.func_name,
            "fields": {k: base64.b64encode(v).decode() for k, v in template.items()},
        },
        separators=(",", ":"),
    ).encode()
    version = uuid.uuid4().hex
    first = _occurrence(
        queue.name, name, version, template, timing.next_after(time.time()), queue._secret_key
    )
    queue.broker.cron_set(queue.name, name, spec, version, first)
    return CronSchedule(
        queue.name, name, timing.spec, timing.tz_name, job.func_name, first.job_id,
        datetime.fromtimestamp(first.at, UTC),
    )  # fmt: skip


def schedules(queue: Queue) -> list[CronSchedule]:
    out = []
    for name, entry in sorted(queue.broker.crons(queue.name).items()):
        data = json.loads(entry.spec)
        due = _due_of(entry.next_id)
        out.append(
            CronSchedule(
                queue.name,
                name,
                data["schedule"],
                data.get("tz", "UTC"),
                data.get("func", "?"),
                entry.next_id,
                None if due is None else datetime.fromtimestamp(due, UTC),
            )
        )
    return out


def remove_cron(queue: Queue, name: str) -> bool:
    return queue.broker.cron_remove(queue.name, name)


def schedule_next(broker: Broker, delivery: Delivery, secret_key: bytes | None) -> bool:
    """In the worker, before a schedule's job runs: schedule the schedule's next job.

    Returns True if this call scheduled it (False: the schedule changed or
    is gone, or another claim of this job did it already).
    """
    fields = delivery.fields or {}
    name = fields.get(F_CRON, b"").decode("utf-8", "replace")
    version = fields.get(F_CRON_VERSION, b"").decode("utf-8", "replace")
    entry = broker.crons(delivery.queue).get(name)
    if entry is None or entry.version != version:
        return False
    data = json.loads(entry.spec)
    timing = Timing(data["schedule"], data.get("tz"))
    template = {k: base64.b64decode(v) for k, v in data["fields"].items()}
    moment = max(time.time(), _due_of(delivery.job_id) or 0.0)
    job = _occurrence(
        delivery.queue, name, version, template, timing.next_after(moment), secret_key
    )
    return broker.cron_next(delivery.queue, name, version, job)


def ensure_next_runs(broker: Broker, queue: str, secret_key: bytes | None) -> list[str]:
    """Give every schedule of ``queue`` that has no live next job one; return their names.

    A schedule's next job is made by the worker that runs the current one; if
    that step failed (the broker was unreachable), or the next job was run
    early (``run_now``) and the schedule registered again meanwhile, it would
    have none. Workers call this about once a minute (see
    :class:`~myrq.worker.heartbeat.Heartbeat`), so a schedule heals itself.
    """
    healed = []
    for name, entry in broker.crons(queue).items():
        if entry.next_id is not None:
            record = broker.get(entry.next_id)
            if record is not None and record.get(F_STATUS) in LIVE:
                continue
        try:
            data = json.loads(entry.spec)
            timing = Timing(data["schedule"], data.get("tz"))
            template = {k: base64.b64decode(v) for k, v in data["fields"].items()}
        except (ValueError, KeyError, TypeError, InvalidJobError) as exc:
            logger.error("schedule %s/%s cannot be read, so it does not run: %s", queue, name, exc)
            continue
        job = _occurrence(
            queue, name, entry.version, template, timing.next_after(time.time()), secret_key
        )
        if broker.cron_next(queue, name, entry.version, job):
            logger.warning(
                "schedule %s/%s had no next run; scheduled it for %s",
                queue, name, datetime.fromtimestamp(job.at, UTC).isoformat(),
            )  # fmt: skip
            healed.append(name)
    return healed


def _occurrence(  # noqa: PLR0917 - one internal helper
    queue: str,
    name: str,
    version: str,
    template: Mapping[str, bytes],
    due: float,
    secret_key: bytes | None,
) -> CronJob:
    job_id = f"cron:{queue}:{name}:{round(due * 1000)}"
    fields: dict[str, Any] = {
        **template,
        F_STATUS: S_SCHEDULED,
        F_CREATED_AT: format_number(time.time()),
        F_CRON: name.encode(),
        F_CRON_VERSION: version.encode(),
    }
    if secret_key:
        fields[F_SIGNATURE] = sign(secret_key, job_id, fields)
    return CronJob(job_id, fields, due)


def _due_of(job_id: str | None) -> float | None:
    """The due time in a schedule job's id (``...:<ms>``), or None."""
    if not job_id:
        return None
    tail = job_id.rpartition(":")[2]
    return int(tail) / 1000 if tail.isdigit() else None


class PeriodicJobs:
    """A :class:`~myrq.Queue`'s periodic schedules (mixed into Queue)."""

    if TYPE_CHECKING:
        name: str
        broker: Broker

        def prepare(
            self,
            func: Callable[..., Any] | str,
            args: Sequence[Any] = (),
            kwargs: Mapping[str, Any] | None = None,
            **options: Any,
        ) -> Job[Any]: ...

    def cron(
        self,
        schedule: str | float | timedelta,
        func: Callable[..., Any] | str,
        *,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        name: str | None = None,
        tz: str | None = None,
        **options: Any,
    ) -> CronSchedule:
        """Run ``func(*args, **kwargs)`` on this queue periodically, from now on.

        ``schedule`` is a cron expression (five fields, or six with seconds
        last: ``"* * * * * */10"`` is every ten seconds), read in the time zone ``tz`` (default
        UTC), or an interval (seconds, a ``timedelta`` or ``"15m"``). The
        schedule is stored in the broker: registering it once (at deploy) is
        enough, any worker of this queue runs its jobs, and each period runs
        once however many workers there are. Registering the same ``name``
        (default: the function's name) again replaces the schedule. A period
        missed while no worker ran runs once when one comes back, not once per
        missed period. ``options`` are :meth:`enqueue_call`'s (``timeout``,
        ``retry``...), for every job of the schedule.
        """
        options = {ENQUEUE_KEYWORDS.get(k, k): v for k, v in options.items()}
        for option in ("ttl", "at_front", "at", "delay", "job_id", "depends_on"):
            if options.get(option) not in (None, False):
                raise InvalidJobError(
                    f"a periodic schedule's jobs cannot take {option}: each run is due at "
                    "its period and has an id made from the schedule's name and its time"
                )
        job = self.prepare(func, args, kwargs, **options)
        return register_cron(cast("Queue", self), schedule, job, name=name or job.func_name, tz=tz)

    def cron_jobs(self) -> list[CronSchedule]:
        """The periodic schedules of this queue."""
        return schedules(cast("Queue", self))

    def remove_cron(self, name: str) -> bool:
        """Remove a schedule (and its next job, if not started). True if it existed."""
        return remove_cron(cast("Queue", self), name)


__all__ = [
    "CronSchedule",
    "PeriodicJobs",
    "Timing",
    "ensure_next_runs",
    "register_cron",
    "remove_cron",
    "schedule_next",
    "schedules",
]
