"""myrq: a job queue with pluggable brokers and serializers.

>>> from myrq import Queue, Worker
>>> q = Queue("default", broker="memory://")
>>> job = q.enqueue("json.dumps", [1, 2])
>>> Worker(["default"], broker=q.broker, allow=["json"]).work(burst=True)
1
>>> job.refresh(); job.result
'[1, 2]'
"""

from __future__ import annotations

from myrq.callbacks import Callback
from myrq.codec import ErrorInfo, JobError
from myrq.config import configure
from myrq.context import get_current_job
from myrq.dependency import Dependency
from myrq.eager import Eager
from myrq.exceptions import (
    BrokerConnectionError,
    BrokerError,
    BrokerFullError,
    ConfigurationError,
    DeserializationError,
    FunctionLookupError,
    FunctionNotAllowed,
    InvalidArgumentError,
    InvalidJobError,
    JobExistsError,
    JobFailedError,
    JobStopped,
    JobTimeout,
    MyrqError,
    NoSuchJobError,
    PayloadTooLargeError,
    SerializationError,
    SignatureError,
    WaitTimeout,
)
from myrq.group import Group
from myrq.hooks import Hooks, JobOutcome
from myrq.job import Job
from myrq.queue import Queue
from myrq.registries import Registry
from myrq.retry import Backoff, NoRetry, Retry, RetryLater
from myrq.status import JobStatus
from myrq.task import Task, task
from myrq.transaction import defer_until_commit
from myrq.worker import Worker

__version__ = "0.1.0"

__all__ = [
    "Backoff",
    "BrokerConnectionError",
    "BrokerError",
    "BrokerFullError",
    "Callback",
    "ConfigurationError",
    "Dependency",
    "DeserializationError",
    "Eager",
    "ErrorInfo",
    "FunctionLookupError",
    "FunctionNotAllowed",
    "Group",
    "Hooks",
    "InvalidArgumentError",
    "InvalidJobError",
    "Job",
    "JobError",
    "JobExistsError",
    "JobFailedError",
    "JobOutcome",
    "JobStatus",
    "JobStopped",
    "JobTimeout",
    "MyrqError",
    "NoRetry",
    "NoSuchJobError",
    "PayloadTooLargeError",
    "Queue",
    "Registry",
    "Retry",
    "RetryLater",
    "SerializationError",
    "SignatureError",
    "Task",
    "WaitTimeout",
    "Worker",
    "__version__",
    "configure",
    "defer_until_commit",
    "get_current_job",
    "task",
]
