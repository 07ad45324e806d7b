"""A complete myrq broker on SQLite (Python's ``sqlite3``); see docs/writing-a-broker.md.

It implements every abstract method of :class:`myrq.backends.base.Broker` with
the behaviour of :class:`myrq.backends.memory.MemoryBroker`. Each broker step
is one ``BEGIN IMMEDIATE`` transaction, so it is done whole or not at all, also
when processes share a database file. Times are each process's ``time.time()``,
so processes sharing a file should run on one host (as SQLite requires anyway).

``configure(broker="examples.sqlite_broker:SQLiteBroker")`` selects an in-memory
database private to this process. To share one between processes, use a file:
``register_scheme("sqlite", SQLiteBroker.from_url)``, then a ``sqlite:///path`` URL.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress

from myrq.backends.base import (
    F_ATTEMPTS,
    F_ENDED_AT,
    F_ERROR,
    F_FAILURE_TTL,
    F_LEASE,
    F_QUEUE,
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
from myrq.exceptions import BrokerConnectionError, BrokerError, JobExistsError

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id         TEXT PRIMARY KEY,
    expires_at REAL                 -- time.time() from which the record is gone; NULL: never
);
CREATE INDEX IF NOT EXISTS jobs_by_expiry ON jobs (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS job_fields (  -- the record: one row per field, value stored as is
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    name   TEXT NOT NULL,
    value  BLOB NOT NULL,
    PRIMARY KEY (job_id, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS queue_entries (
    seq    INTEGER PRIMARY KEY,     -- taken lowest first; appended max + 1, released min - 1
    queue  TEXT NOT NULL,
    job_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_entries_in_order ON queue_entries (queue, seq);
CREATE INDEX IF NOT EXISTS queue_entries_by_job ON queue_entries (job_id);
CREATE TABLE IF NOT EXISTS leases (
    job_id   TEXT PRIMARY KEY,
    deadline REAL NOT NULL,         -- time.time() at which the lease expires
    token    TEXT NOT NULL          -- fencing token, also in the record's 'lease' field
);
CREATE INDEX IF NOT EXISTS leases_by_deadline ON leases (deadline);
CREATE TABLE IF NOT EXISTS queues (name TEXT PRIMARY KEY);
"""


class SQLiteBroker(Broker):
    """A broker on one SQLite database.

    ``path`` is a database file, or ``":memory:"`` (the default, so that config can
    name the class) for a database private to this instance. ``poll_interval``:
    with a file, the longest single wait of an idle :meth:`dequeue`, in seconds.
    """

    def __init__(self, path: str = ":memory:", *, poll_interval: float = 0.05) -> None:
        self.path = path
        self.url = f"sqlite://{path}"
        self.poll_interval = poll_interval
        # One connection, shared by this instance's threads under _lock. ``timeout``
        # is how long BEGIN IMMEDIATE waits while another process is writing.
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._wakeup = threading.Condition()  # wakes this instance's idle dequeue() calls
        self._generation = 0  # bumped on every wake-up, so none is lost between check and wait
        self._db.execute("PRAGMA foreign_keys = ON")  # deleting a job deletes its fields
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode = WAL")
        self._db.executescript(SCHEMA)

    @classmethod
    def from_url(cls, url: str) -> SQLiteBroker:
        """``sqlite:///abs/path.db``, ``sqlite://rel/path.db`` or ``sqlite://:memory:``."""
        return cls(url.partition("://")[2] or ":memory:")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One broker step: BEGIN IMMEDIATE ... COMMIT, rolled back on any error."""
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
                # Expired records go first (an index range scan), so no step sees one.
                db.execute("DELETE FROM jobs WHERE expires_at <= ?", (time.time(),))
                yield db
                db.execute("COMMIT")
            except BaseException as exc:
                with suppress(sqlite3.Error):  # e.g. closed: nothing to roll back
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError):  # locked too long, disk, file
                    raise BrokerConnectionError(f"SQLite {self.url} is unusable: {exc}") from exc
                if isinstance(exc, sqlite3.Error):
                    raise BrokerError(f"SQLite {self.url} refused the operation: {exc}") from exc
                raise

    def _notify(self) -> None:
        with self._wakeup:
            self._generation += 1
            self._wakeup.notify_all()

    # -- producing ---------------------------------------------------------

    def enqueue(self, queue: str, job_id: str, fields: Fields) -> None:
        with self._transaction() as db:
            old = _read(db, job_id)
            if old is not None and _status(old) in LIVE:
                raise JobExistsError(job_id)  # rolls back; nothing was written anyway
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            db.execute("INSERT INTO jobs (id, expires_at) VALUES (?, NULL)", (job_id,))
            _update(db, job_id, {F_STATUS: b"pending", **fields})
            _push(db, queue, job_id)
        self._notify()

    # -- consuming ---------------------------------------------------------

    def dequeue(
        self,
        queues: Sequence[str],
        worker: str,
        lease: float,
        timeout: float = 0,
        count: int = 1,
    ) -> list[Delivery]:
        """Take and claim up to ``count`` jobs; see :meth:`Broker.dequeue`.

        An idle wait blocks on a condition that this instance's enqueue, release
        and reap notify, so their jobs wake it at once. Other processes sharing
        the file cannot notify it, so with a file the wait is cut into slices of
        at most ``poll_interval`` (50 ms), each followed by one indexed query.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._wakeup:
                seen = self._generation
            with self._transaction() as db:
                out = _claim(db, queues, worker, lease, count)
            remaining = deadline - time.monotonic()
            if out or remaining <= 0:
                return out
            if self.path != ":memory:":
                remaining = min(remaining, self.poll_interval)
            with self._wakeup:
                if self._generation == seen:  # nothing was pushed since we looked
                    self._wakeup.wait(remaining)

    def renew(self, job_id: str, token: str, lease: float) -> bool:
        with self._transaction() as db:
            if _holder(db, job_id, token) is None:
                return False
            sql = "UPDATE leases SET deadline = ? WHERE job_id = ?"
            db.execute(sql, (time.time() + lease, job_id))
            return True

    def finish(self, job_id: str, token: str, fields: Fields, ttl: float | None) -> bool:
        with self._transaction() as db:
            if _holder(db, job_id, token) is None:
                return False  # fenced: lease expired and reaped, or job deleted
            db.execute("DELETE FROM leases WHERE job_id = ?", (job_id,))
            if ttl is not None and ttl <= 0:
                db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
                return True
            _update(db, job_id, {**fields, F_LEASE: None})
            expires_at = None if ttl is None else time.time() + ttl
            db.execute("UPDATE jobs SET expires_at = ? WHERE id = ?", (expires_at, job_id))
            return True

    def release(self, job_id: str, token: str) -> bool:
        with self._transaction() as db:
            rec = _holder(db, job_id, token)
            if rec is None:
                return False
            db.execute("DELETE FROM leases WHERE job_id = ?", (job_id,))
            _requeue(db, job_id, rec, front=True)
            attempts = max(0, int(_number(rec.get(F_ATTEMPTS))) - 1)  # this claim does not count
            _update(db, job_id, {F_ATTEMPTS: str(attempts).encode()})
        self._notify()
        return True

    def reap(
        self, max_attempts: int, failure_ttl: float | None = None, limit: int = 100
    ) -> list[Reaped]:
        out: list[Reaped] = []
        with self._transaction() as db:
            now = time.time()
            sql = "SELECT job_id FROM leases WHERE deadline <= ? ORDER BY deadline, job_id LIMIT ?"
            for (job_id,) in db.execute(sql, (now, limit)).fetchall():
                db.execute("DELETE FROM leases WHERE job_id = ?", (job_id,))
                rec = _read(db, job_id)
                if rec is None:
                    out.append(Reaped(job_id, None, "missing", 0))
                    continue
                attempts = int(_number(rec.get(F_ATTEMPTS)))
                queue = rec.get(F_QUEUE, b"default").decode()
                if max_attempts > 0 and attempts >= max_attempts:
                    failed = {
                        F_STATUS: b"failed",
                        F_ERROR: abandoned_error(attempts),
                        F_ENDED_AT: repr(now).encode(),
                        F_LEASE: None,
                    }
                    _update(db, job_id, failed)
                    raw_ttl = rec.get(F_FAILURE_TTL)  # the job's own setting wins
                    default = -1.0 if failure_ttl is None else failure_ttl
                    try:  # absent or not a number: the default, as in the other brokers
                        ttl = float(raw_ttl) if raw_ttl else default
                    except ValueError:
                        ttl = default
                    if ttl == 0:
                        db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
                    elif ttl > 0:
                        sql = "UPDATE jobs SET expires_at = ? WHERE id = ?"
                        db.execute(sql, (now + ttl, job_id))
                    out.append(Reaped(job_id, queue, "failed", attempts))
                else:
                    _requeue(db, job_id, rec, front=False)
                    out.append(Reaped(job_id, queue, "requeued", attempts))
        if any(r.outcome == "requeued" for r in out):
            self._notify()
        return out

    # -- inspecting --------------------------------------------------------

    def get(self, job_id: str) -> dict[str, bytes] | None:
        with self._transaction() as db:
            return _read(db, job_id)

    def delete(self, job_id: str) -> bool:
        with self._transaction() as db:
            existed = _read(db, job_id) is not None
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            db.execute("DELETE FROM leases WHERE job_id = ?", (job_id,))
            db.execute("DELETE FROM queue_entries WHERE job_id = ?", (job_id,))
            return existed

    def queue_length(self, queue: str) -> int:
        with self._transaction() as db:
            sql = "SELECT COUNT(*) FROM queue_entries WHERE queue = ?"
            return int(db.execute(sql, (queue,)).fetchone()[0])

    def queued_ids(self, queue: str, start: int = 0, stop: int = -1) -> list[str]:
        with self._transaction() as db:
            sql = "SELECT job_id FROM queue_entries WHERE queue = ? ORDER BY seq"
            ids = [row[0] for row in db.execute(sql, (queue,))]
        return ids[start:] if stop == -1 else ids[start : stop + 1]

    def queue_names(self) -> list[str]:
        with self._transaction() as db:
            return sorted(row[0] for row in db.execute("SELECT name FROM queues"))

    def job_ids(self) -> Iterator[str]:
        with self._transaction() as db:
            return iter([row[0] for row in db.execute("SELECT id FROM jobs")])

    def leased_ids(self) -> list[str]:
        with self._transaction() as db:
            return [row[0] for row in db.execute("SELECT job_id FROM leases ORDER BY deadline")]

    # -- lifecycle ---------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- test hooks for myrq.testing.contract --------------------------------

    def drop_record_only(self, job_id: str) -> None:
        """Delete a record but keep its queue entries and lease (as an expiry would)."""
        with self._transaction() as db:
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def push_id_only(self, queue: str, job_id: str) -> None:
        """Append an id to a queue without touching its record (a duplicate push)."""
        with self._transaction() as db:
            _push(db, queue, job_id)
        self._notify()


# -- parts of a step: ``db`` is inside a BEGIN IMMEDIATE transaction ------------


def _read(db: sqlite3.Connection, job_id: str) -> dict[str, bytes] | None:
    if db.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is None:
        return None
    rows = db.execute("SELECT name, value FROM job_fields WHERE job_id = ?", (job_id,))
    return {name: bytes(value) for name, value in rows}


def _update(db: sqlite3.Connection, job_id: str, fields: Mapping[str, bytes | None]) -> None:
    """Set fields of a record; a ``None`` value removes that field."""
    # bytes() refuses str, so only byte strings are ever stored (as BLOBs).
    sets = [(job_id, k, bytes(v)) for k, v in fields.items() if v is not None]
    removals = [(job_id, k) for k, v in fields.items() if v is None]
    db.executemany("INSERT OR REPLACE INTO job_fields (job_id, name, value) VALUES (?, ?, ?)", sets)
    db.executemany("DELETE FROM job_fields WHERE job_id = ? AND name = ?", removals)


def _push(db: sqlite3.Connection, queue: str, job_id: str, *, front: bool = False) -> None:
    if front:
        sql = "INSERT INTO queue_entries SELECT COALESCE(MIN(seq), 0) - 1, ?, ? FROM queue_entries"
    else:  # an INTEGER PRIMARY KEY left out becomes max(seq) + 1
        sql = "INSERT INTO queue_entries (queue, job_id) VALUES (?, ?)"
    db.execute(sql, (queue, job_id))
    db.execute("INSERT OR IGNORE INTO queues (name) VALUES (?)", (queue,))


def _holder(db: sqlite3.Connection, job_id: str, token: str) -> dict[str, bytes] | None:
    """The record if ``token`` holds the job's lease, else None: the fencing check."""
    row = db.execute("SELECT token FROM leases WHERE job_id = ?", (job_id,)).fetchone()
    rec = _read(db, job_id)
    if row is None or row[0] != token or rec is None or rec.get(F_LEASE) != token.encode():
        return None
    return rec


def _claim(
    db: sqlite3.Connection, queues: Sequence[str], worker: str, lease: float, count: int
) -> list[Delivery]:
    out: list[Delivery] = []
    now = time.time()
    sql = "SELECT seq, job_id FROM queue_entries WHERE queue = ? ORDER BY seq LIMIT 1"
    for name in queues:
        while len(out) < count:
            row = db.execute(sql, (name,)).fetchone()
            if row is None:
                break  # this queue is empty: try the next one
            seq, job_id = row
            db.execute("DELETE FROM queue_entries WHERE seq = ?", (seq,))
            rec = _read(db, job_id)
            if rec is None or _status(rec) in UNCLAIMABLE:  # no record, or a duplicate id:
                out.append(Delivery(job_id, name, None, rec))  # drop it, write nothing
                continue
            attempts = int(_number(rec.get(F_ATTEMPTS))) + 1
            token = f"{worker}:{attempts}:{uuid.uuid4().hex}"
            claim = {
                F_STATUS: b"running",
                F_ATTEMPTS: str(attempts).encode(),
                F_STARTED_AT: repr(now).encode(),
                F_WORKER: worker.encode(),
                F_LEASE: token.encode(),
                F_QUEUE: name.encode(),  # where it came from: reap requeues it there
            }
            _update(db, job_id, claim)
            db.execute("UPDATE jobs SET expires_at = NULL WHERE id = ?", (job_id,))
            db.execute(
                "INSERT OR REPLACE INTO leases (job_id, deadline, token) VALUES (?, ?, ?)",
                (job_id, now + lease, token),
            )
            out.append(Delivery(job_id, name, token, {**rec, **claim}))
        if len(out) >= count:
            break
    return out


def _requeue(db: sqlite3.Connection, job_id: str, rec: Mapping[str, bytes], *, front: bool) -> None:
    _update(db, job_id, {F_STATUS: b"pending", F_LEASE: None, F_WORKER: None, F_STARTED_AT: None})
    _push(db, rec.get(F_QUEUE, b"default").decode(), job_id, front=front)


def _status(rec: Mapping[str, bytes]) -> str:
    return rec.get(F_STATUS, b"").decode("utf-8", "replace")


def _number(raw: bytes | None) -> float:
    """A numeric field's value; 0 when it is absent or not a number."""
    try:
        return float(raw or 0)
    except ValueError:
        return 0.0
