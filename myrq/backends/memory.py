"""In-memory broker: the whole contract in dicts under one lock.

For unit tests and single-process use. Every Queue and Worker in the process
that uses the same instance (or the same ``memory://name`` URL) shares it.
Nothing survives the process.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence

from myrq.backends.base import (
    F_ATTEMPTS,
    F_BATCH,
    F_ENDED_AT,
    F_ERROR,
    F_FAILURE_TTL,
    F_LEASE,
    F_QUEUE,
    F_SOLO,
    F_STARTED_AT,
    F_STATUS,
    F_WORKER,
    LIVE,
    UNCLAIMABLE,
    Broker,
    Delivery,
    Fields,
    Reaped,
    abandoned_error,
)
from myrq.exceptions import JobExistsError


class MemoryBroker(Broker):
    """A broker that keeps everything in this process's memory."""

    batch_claims = True

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._lock = threading.Condition()
        self._records: dict[str, dict[str, bytes]] = {}
        self._expires: dict[str, float] = {}  # job id -> time.time() deadline
        self._queues: dict[str, deque[str]] = {}
        self._leases: dict[str, float] = {}  # job id -> time.time() deadline
        self._tokens = itertools.count(1)

    # -- helpers (call with the lock held) ---------------------------------

    def _record(self, job_id: str) -> dict[str, bytes] | None:
        deadline = self._expires.get(job_id)
        if deadline is not None and deadline <= time.time():
            self._records.pop(job_id, None)
            self._expires.pop(job_id, None)
        return self._records.get(job_id)

    def _queue(self, name: str) -> deque[str]:
        return self._queues.setdefault(name, deque())

    # -- producing ---------------------------------------------------------

    def enqueue(self, queue: str, job_id: str, fields: Fields) -> None:
        with self._lock:
            old = self._record(job_id)
            if old is not None and old.get(F_STATUS, b"").decode() in LIVE:
                raise JobExistsError(job_id)
            record = dict(fields)
            record.setdefault(F_STATUS, b"pending")
            self._records[job_id] = record
            self._expires.pop(job_id, None)
            self._queue(queue).append(job_id)
            self._lock.notify_all()

    # -- consuming ---------------------------------------------------------

    def dequeue(
        self,
        queues: Sequence[str],
        worker: str,
        lease: float,
        timeout: float = 0,
        count: int = 1,
    ) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                out = self._claim(queues, worker, lease, count)
                remaining = deadline - time.monotonic()
                if out or remaining <= 0:
                    return out
                self._lock.wait(remaining)

    def _claim(
        self, queues: Sequence[str], worker: str, lease: float, count: int
    ) -> list[Delivery]:
        out: list[Delivery] = []
        now = time.time()
        batch = b"1" if count > 1 else b"0"
        for name in queues:
            q = self._queues.get(name)
            while q and len(out) < count:
                job_id = q.popleft()
                rec = self._record(job_id)
                if rec is None:
                    out.append(Delivery(job_id, name, None, None))
                    continue
                if rec.get(F_STATUS, b"").decode("utf-8", "replace") in UNCLAIMABLE:
                    out.append(Delivery(job_id, name, None, dict(rec)))
                    continue
                solo = rec.get(F_SOLO) == b"1"
                if solo and out:
                    q.appendleft(job_id)  # runs alone: first in line for the next claim
                    return out
                if solo:
                    count = 1
                attempts = min(max(_int(rec.get(F_ATTEMPTS)), 0), 10**9) + 1
                token = f"{worker}:{attempts}:{next(self._tokens)}"
                rec.update(
                    {
                        F_STATUS: b"running",
                        F_ATTEMPTS: str(attempts).encode(),
                        F_STARTED_AT: repr(now).encode(),
                        F_WORKER: worker.encode(),
                        F_LEASE: token.encode(),
                        F_QUEUE: name.encode(),
                        F_BATCH: b"0" if solo else batch,
                    }
                )
                self._expires.pop(job_id, None)
                self._leases[job_id] = now + lease
                out.append(Delivery(job_id, name, token, dict(rec)))
            if len(out) >= count:
                break
        return out

    def _holds(self, job_id: str, token: str) -> dict[str, bytes] | None:
        rec = self._record(job_id)
        if rec is None or rec.get(F_LEASE) != token.encode() or job_id not in self._leases:
            return None
        return rec

    def renew(self, job_id: str, token: str, lease: float) -> bool:
        with self._lock:
            if self._holds(job_id, token) is None:
                return False
            self._leases[job_id] = time.time() + lease
            return True

    def finish(self, job_id: str, token: str, fields: Fields, ttl: float | None) -> bool:
        with self._lock:
            rec = self._holds(job_id, token)
            if rec is None:
                return False
            del self._leases[job_id]
            if ttl is not None and ttl <= 0:
                del self._records[job_id]
                self._expires.pop(job_id, None)
                return True
            rec.update(fields)
            rec.pop(F_LEASE, None)
            if ttl is None:
                self._expires.pop(job_id, None)
            else:
                self._expires[job_id] = time.time() + ttl
            return True

    def release(self, job_id: str, token: str) -> bool:
        with self._lock:
            rec = self._holds(job_id, token)
            if rec is None:
                return False
            del self._leases[job_id]
            self._requeue(job_id, rec, front=True)
            rec[F_ATTEMPTS] = str(max(0, _int(rec.get(F_ATTEMPTS)) - 1)).encode()
            return True

    def _requeue(self, job_id: str, rec: dict[str, bytes], *, front: bool) -> None:
        rec[F_STATUS] = b"pending"
        for name in (F_LEASE, F_WORKER, F_STARTED_AT):
            rec.pop(name, None)
        q = self._queue(rec.get(F_QUEUE, b"default").decode())
        if front:
            q.appendleft(job_id)
        else:
            q.append(job_id)
        self._lock.notify_all()

    def reap(
        self, max_attempts: int, failure_ttl: float | None = None, limit: int = 100
    ) -> list[Reaped]:
        with self._lock:
            now = time.time()
            expired = sorted(
                (deadline, job_id) for job_id, deadline in self._leases.items() if deadline <= now
            )[:limit]
            out: list[Reaped] = []
            for _, job_id in expired:
                del self._leases[job_id]
                rec = self._record(job_id)
                if rec is None:
                    out.append(Reaped(job_id, None, "missing", 0))
                    continue
                attempts = _int(rec.get(F_ATTEMPTS))
                queue = rec.get(F_QUEUE, b"default").decode()
                if rec.get(F_BATCH) == b"1":
                    # Claimed in a batch: whether it had started is unknown, so it
                    # goes back uncounted and runs alone from now on.
                    attempts = max(0, attempts - 1)
                    rec.update({F_ATTEMPTS: str(attempts).encode(), F_BATCH: b"0", F_SOLO: b"1"})
                    self._requeue(job_id, rec, front=False)
                    out.append(Reaped(job_id, queue, "requeued", attempts))
                elif max_attempts > 0 and attempts >= max_attempts:
                    rec.update(
                        {
                            F_STATUS: b"failed",
                            F_ERROR: abandoned_error(attempts),
                            F_ENDED_AT: repr(now).encode(),
                        }
                    )
                    rec.pop(F_LEASE, None)
                    ttl = _float(rec.get(F_FAILURE_TTL))
                    if ttl is None:
                        ttl = -1 if failure_ttl is None else failure_ttl
                    if ttl == 0:
                        del self._records[job_id]
                    elif ttl > 0:
                        self._expires[job_id] = now + ttl
                    out.append(Reaped(job_id, queue, "failed", attempts))
                else:
                    self._requeue(job_id, rec, front=False)
                    out.append(Reaped(job_id, queue, "requeued", attempts))
            return out

    # -- inspecting --------------------------------------------------------

    def get(self, job_id: str) -> dict[str, bytes] | None:
        with self._lock:
            rec = self._record(job_id)
            return None if rec is None else dict(rec)

    def delete(self, job_id: str) -> bool:
        with self._lock:
            existed = self._record(job_id) is not None
            self._records.pop(job_id, None)
            self._expires.pop(job_id, None)
            self._leases.pop(job_id, None)
            for q in self._queues.values():
                while job_id in q:
                    q.remove(job_id)
            return existed

    def queue_length(self, queue: str) -> int:
        with self._lock:
            return len(self._queues.get(queue, ()))

    def queued_ids(self, queue: str, start: int = 0, stop: int = -1) -> list[str]:
        with self._lock:
            ids = list(self._queues.get(queue, ()))
        return ids[start:] if stop == -1 else ids[start : stop + 1]

    def queue_names(self) -> list[str]:
        with self._lock:
            return sorted(self._queues)

    def job_ids(self) -> Iterator[str]:
        with self._lock:
            ids = [i for i in list(self._records) if self._record(i) is not None]
        return iter(ids)

    def leased_ids(self) -> list[str]:
        with self._lock:
            return list(self._leases)

    def clear(self) -> None:
        """Forget every job and queue (handy between unit tests)."""
        with self._lock:
            self._records.clear()
            self._expires.clear()
            self._queues.clear()
            self._leases.clear()


def _int(raw: bytes | None) -> int:
    try:
        return int(raw or b"0")
    except ValueError:
        return 0


def _float(raw: bytes | None) -> float | None:
    try:
        return float(raw) if raw else None
    except ValueError:
        return None
