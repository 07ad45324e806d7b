"""The worker: see :mod:`myrq.worker.worker` for the loop and the modules it uses."""

from __future__ import annotations

from myrq.worker.pool import RestartPolicy, WorkerPool
from myrq.worker.settings import WorkerSettings
from myrq.worker.stats import WorkerStats
from myrq.worker.worker import Worker

__all__ = ["RestartPolicy", "Worker", "WorkerPool", "WorkerSettings", "WorkerStats"]
