"""The values broker steps take and return (see :class:`myrq.backends.base.Broker`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

#: A job record: field name -> bytes.
Fields = Mapping[str, bytes]


@dataclass(frozen=True)
class EnqueueRequest:
    """One job to store and push: see :meth:`Broker.enqueue`."""

    queue: str
    job_id: str
    fields: Fields
    at: float | None = None
    delay: float | None = None
    front: bool = False
    ttl: float | None = None
    #: Ids of jobs this one waits for; it runs once they all finished.
    depends_on: tuple[str, ...] = ()
    #: Run it even if one of ``depends_on`` fails (it still waits for them to end).
    allow_failure: bool = False


@dataclass(frozen=True)
class Delivery:
    """What :meth:`Broker.dequeue` took off a queue.

    ``token`` is the lease's fencing token when the job was claimed. It is
    ``None`` when the id was taken off the queue but not claimed: either its
    record is missing (``fields is None``) or its status was not claimable
    (``fields`` holds the record as it is).
    """

    job_id: str
    queue: str
    token: str | None
    fields: dict[str, bytes] | None = field(default=None)
    #: ``"expired"`` when the claim canceled the job instead (its ``ttl`` had passed).
    note: str | None = None

    @property
    def claimed(self) -> bool:
        return self.token is not None


@dataclass(frozen=True)
class FinishRequest:
    """One outcome for :meth:`Broker.finish_many_and_dequeue`: the arguments of ``finish``."""

    job_id: str
    token: str
    fields: Fields
    ttl: float | None
    #: The queue the job was claimed from (where a retry puts it back).
    queue: str = "default"
    #: None: the outcome is final. Else the job runs again: on its queue now
    #: (0), or scheduled after this many seconds.
    retry_delay: float | None = None


#: The former name of :class:`FinishRequest`.
Finish = FinishRequest


@dataclass(frozen=True)
class CronJob:
    """One job of a periodic schedule: its id, record and due time (seconds since the epoch)."""

    job_id: str
    fields: Fields
    at: float


@dataclass(frozen=True)
class CronEntry:
    """A stored schedule: the spec its producer wrote, its version, its next job's id."""

    spec: bytes
    version: str
    next_id: str | None


ReapOutcome = Literal["requeued", "failed", "missing", "blocked"]


@dataclass(frozen=True)
class Reaped:
    """One expired lease that :meth:`Broker.reap` dealt with."""

    job_id: str
    queue: str | None
    outcome: ReapOutcome
    attempts: int
