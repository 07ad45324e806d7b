"""A worker's upkeep beside its jobs: its record for ``myrq workers``, periodic schedules,
registries. Each step is idempotent: any worker may do it, several at once."""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import TYPE_CHECKING

from myrq.backends import Delivery
from myrq.cron import ensure_next_runs, schedule_next
from myrq.exceptions import BrokerError, InvalidJobError
from myrq.schema import format_number, format_time

if TYPE_CHECKING:
    from myrq.worker.outbox import Outbox
    from myrq.worker.worker import Worker

logger = logging.getLogger("myrq.worker")


def worker_record(worker: Worker, outbox: Outbox) -> dict[str, bytes]:
    """What ``myrq workers`` shows of ``worker`` (refreshed at every heartbeat)."""
    running = outbox.running
    current = running.job_id if running is not None else ",".join(list(outbox.in_flight)[:20])
    s = worker.stats
    return {
        "name": worker.name.encode(),
        "host": socket.gethostname().encode(),
        "pid": str(os.getpid()).encode(),
        "queues": ",".join(worker.queue_names).encode(),
        "started_at": format_time(worker._started_at),
        "beat_at": format_time(time.time()),
        "job": current.encode(),
        "finished": str(s.finished).encode(),
        "failed": str(s.failed + s.timed_out).encode(),
        "lease_ttl": format_number(worker.settings.lease_ttl),
        "concurrency": str(worker.settings.concurrency).encode(),
    }


def schedule_next_run(worker: Worker, delivery: Delivery) -> None:
    """A periodic schedule's job: schedule the next one first, so a crash cannot end it."""
    keys = worker.settings.secret_keys
    try:
        schedule_next(worker.broker, delivery, keys[0] if keys else None)
    except (BrokerError, InvalidJobError, ValueError, KeyError) as exc:
        logger.error(
            "worker %s: could not schedule the next run of periodic job %s: %s",
            worker.name,
            delivery.job_id,
            exc,
        )


def maintain(worker: Worker) -> None:
    """From the heartbeat thread, about once a minute, per queue: drop registry entries
    whose records expired, and give periodic schedules that lost their next run one."""
    keys = worker.settings.secret_keys
    for queue in worker.queue_names:
        worker.broker.trim_registries(queue)
        ensure_next_runs(worker.broker, queue, keys[0] if keys else None)
