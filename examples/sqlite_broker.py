"""A complete myrq broker on SQLite (Python's ``sqlite3``); see docs/writing-a-broker.md.

It implements the :class:`myrq.backends.store.Store` contract: a few
Redis-shaped data types (hashes, lists, sorted sets, sets, key expiry) in one
transaction per step. :class:`myrq.backends.store_broker.StoreBroker` carries
out every broker step on it with the same rules as the memory and Redis
brokers, so this file holds no job-queue logic at all. Each step is one
``BEGIN IMMEDIATE`` transaction, so it is done whole or not at all, also when
processes share a database file. Times are each process's ``time.time()``, so
processes sharing a file should run on one host (as SQLite requires anyway).

``configure(broker="examples.sqlite_broker:SQLiteBroker")`` selects an in-memory
database private to this process. To share one between processes, use a file:
``register_scheme("sqlite", SQLiteBroker.from_url)``, then a ``sqlite:///path`` URL.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress

from myrq.backends.store import Store, Txn
from myrq.backends.store_broker import StoreBroker
from myrq.exceptions import BrokerConnectionError, BrokerError

SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    key        TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,       -- hash, list, zset or set
    expires_at REAL                 -- time.time() from which the key is gone; NULL: never
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS keys_by_expiry ON keys (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS hash_fields (
    key   TEXT NOT NULL REFERENCES keys (key) ON DELETE CASCADE,
    field TEXT NOT NULL,
    value BLOB NOT NULL,            -- stored as given: bytes come back byte for byte
    PRIMARY KEY (key, field)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS list_items (
    seq   INTEGER PRIMARY KEY,      -- lowest first; appended max + 1, pushed in front min - 1
    key   TEXT NOT NULL REFERENCES keys (key) ON DELETE CASCADE,
    value TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS list_items_in_order ON list_items (key, seq);
CREATE TABLE IF NOT EXISTS zset_items (
    key    TEXT NOT NULL REFERENCES keys (key) ON DELETE CASCADE,
    member TEXT NOT NULL,
    score  REAL NOT NULL,
    PRIMARY KEY (key, member)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS zset_items_by_score ON zset_items (key, score, member);
CREATE TABLE IF NOT EXISTS set_items (
    key    TEXT NOT NULL REFERENCES keys (key) ON DELETE CASCADE,
    member TEXT NOT NULL,
    PRIMARY KEY (key, member)
) WITHOUT ROWID;
"""


class SQLiteStore(Store):
    """The Store contract on one SQLite database (a file, or ``:memory:``).

    ``poll_interval``: with a file, the longest single wait of an idle worker,
    in seconds; other processes cannot wake it, so it looks again this often.
    """

    def __init__(self, path: str = ":memory:", *, poll_interval: float = 0.05) -> None:
        self.path = path
        self.url = f"sqlite://{path}"
        self.poll_interval = poll_interval
        # One connection, shared by this instance's threads under _lock. ``timeout``
        # is how long BEGIN IMMEDIATE waits while another process is writing.
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._wakeup = threading.Condition()  # wakes this instance's idle waiters
        self._version = 0  # bumped after a step that pushed, so no wake-up is lost
        self._db.execute("PRAGMA foreign_keys = ON")  # deleting a key deletes its items
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode = WAL")
        self._db.executescript(SCHEMA)

    @contextmanager
    def transaction(self) -> Iterator[Txn]:
        """One step: BEGIN IMMEDIATE ... COMMIT, rolled back on any error."""
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
                now = time.time()
                # Expired keys go first (an index range scan), so no step sees one.
                db.execute("DELETE FROM keys WHERE expires_at <= ?", (now,))
                txn = SQLiteTxn(db, now)
                yield txn
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
        if txn.wake:
            with self._wakeup:
                self._version += 1
                self._wakeup.notify_all()

    def version(self) -> int:
        return self._version

    def wait(self, seen: int, timeout: float) -> None:
        if self.path != ":memory:":
            timeout = min(timeout, self.poll_interval)  # other processes cannot wake us
        with self._wakeup:
            if self._version == seen:
                self._wakeup.wait(timeout)

    def close(self) -> None:
        with self._lock:
            self._db.close()


class SQLiteTxn(Txn):
    """The data types on five tables (see ``SCHEMA``); ``db`` is inside BEGIN IMMEDIATE."""

    def __init__(self, db: sqlite3.Connection, now: float) -> None:
        self.db = db
        self._now = now
        self.wake = False

    def now(self) -> float:
        return self._now

    def _key(self, key: str, kind: str) -> None:
        """Make sure ``key`` exists as a ``kind``; a key of another kind is an error."""
        row = self.db.execute("SELECT kind FROM keys WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.db.execute("INSERT INTO keys (key, kind) VALUES (?, ?)", (key, kind))
        elif row[0] != kind:
            raise sqlite3.IntegrityError(f"WRONGTYPE key {key!r} holds a {row[0]}, not a {kind}")

    # -- any key ---------------------------------------------------------------

    def exists(self, key: str) -> bool:
        return self.db.execute("SELECT 1 FROM keys WHERE key = ?", (key,)).fetchone() is not None

    def delete(self, key: str) -> bool:
        return self.db.execute("DELETE FROM keys WHERE key = ?", (key,)).rowcount > 0

    def expire(self, key: str, at: float | None) -> None:
        self.db.execute("UPDATE keys SET expires_at = ? WHERE key = ?", (at, key))

    def keys(self, prefix: str) -> list[str]:
        # substr() instead of LIKE: the prefix may hold % or _.
        sql = "SELECT key FROM keys WHERE substr(key, 1, ?) = ? ORDER BY key"
        return [row[0] for row in self.db.execute(sql, (len(prefix), prefix))]

    # -- hashes ------------------------------------------------------------------

    def hgetall(self, key: str) -> dict[str, bytes] | None:
        if not self.exists(key):
            return None
        rows = self.db.execute("SELECT field, value FROM hash_fields WHERE key = ?", (key,))
        return {field: bytes(value) for field, value in rows}

    def hget(self, key: str, field: str) -> bytes | None:
        sql = "SELECT value FROM hash_fields WHERE key = ? AND field = ?"
        row = self.db.execute(sql, (key, field)).fetchone()
        return None if row is None else bytes(row[0])

    def hset(self, key: str, fields: Mapping[str, bytes]) -> None:
        self._key(key, "hash")
        # bytes() refuses str, so only byte strings are ever stored (as BLOBs).
        rows = [(key, name, bytes(value)) for name, value in fields.items()]
        sql = "INSERT OR REPLACE INTO hash_fields (key, field, value) VALUES (?, ?, ?)"
        self.db.executemany(sql, rows)

    def hdel(self, key: str, *fields: str) -> None:
        sql = "DELETE FROM hash_fields WHERE key = ? AND field = ?"
        self.db.executemany(sql, [(key, name) for name in fields])

    # -- lists -------------------------------------------------------------------

    def push(self, key: str, value: str, *, front: bool = False) -> int:
        self._key(key, "list")
        if front:  # below every seq in the table, so no two lists ever share one
            sql = "INSERT INTO list_items SELECT COALESCE(MIN(seq), 0) - 1, ?, ? FROM list_items"
        else:  # an INTEGER PRIMARY KEY left out becomes max(seq) + 1
            sql = "INSERT INTO list_items (key, value) VALUES (?, ?)"
        self.db.execute(sql, (key, value))
        self.wake = True
        return self.llen(key)

    def pop(self, key: str) -> str | None:
        sql = "SELECT seq, value FROM list_items WHERE key = ? ORDER BY seq LIMIT 1"
        row = self.db.execute(sql, (key,)).fetchone()
        if row is None:
            return None
        self.db.execute("DELETE FROM list_items WHERE seq = ?", (row[0],))
        return str(row[1])

    def remove(self, key: str, value: str) -> int:
        sql = "DELETE FROM list_items WHERE key = ? AND value = ?"
        return self.db.execute(sql, (key, value)).rowcount

    def lrange(self, key: str, start: int, stop: int) -> list[str]:
        sql = "SELECT value FROM list_items WHERE key = ? ORDER BY seq"
        values = [row[0] for row in self.db.execute(sql, (key,))]
        n = len(values)
        start = max(start + n if start < 0 else start, 0)
        stop = stop + n if stop < 0 else min(stop, n - 1)
        return values[start : stop + 1] if start <= stop else []

    def llen(self, key: str) -> int:
        sql = "SELECT COUNT(*) FROM list_items WHERE key = ?"
        return int(self.db.execute(sql, (key,)).fetchone()[0])

    # -- sorted sets ---------------------------------------------------------------

    def zadd(self, key: str, member: str, score: float) -> None:
        self._key(key, "zset")
        sql = "INSERT OR REPLACE INTO zset_items (key, member, score) VALUES (?, ?, ?)"
        self.db.execute(sql, (key, member, score))

    def zrem(self, key: str, member: str) -> bool:
        sql = "DELETE FROM zset_items WHERE key = ? AND member = ?"
        return self.db.execute(sql, (key, member)).rowcount > 0

    def zscore(self, key: str, member: str) -> float | None:
        sql = "SELECT score FROM zset_items WHERE key = ? AND member = ?"
        row = self.db.execute(sql, (key, member)).fetchone()
        return None if row is None else float(row[0])

    def zrange_by_score(self, key: str, max_score: float, limit: int) -> list[str]:
        sql = (
            "SELECT member FROM zset_items WHERE key = ? AND score <= ? "
            "ORDER BY score, member LIMIT ?"
        )
        return [row[0] for row in self.db.execute(sql, (key, max_score, limit))]

    def zmembers(self, key: str) -> list[str]:
        sql = "SELECT member FROM zset_items WHERE key = ? ORDER BY score, member"
        return [row[0] for row in self.db.execute(sql, (key,))]

    def zcount_above(self, key: str, score: float) -> int:
        sql = "SELECT COUNT(*) FROM zset_items WHERE key = ? AND score > ?"
        return int(self.db.execute(sql, (key, score)).fetchone()[0])

    def zrange_above(self, key: str, score: float, offset: int, limit: int) -> list[str]:
        sql = (
            "SELECT member FROM zset_items WHERE key = ? AND score > ? "
            "ORDER BY score, member LIMIT ? OFFSET ?"
        )
        return [row[0] for row in self.db.execute(sql, (key, score, limit, offset))]

    def zremrange_below(self, key: str, score: float) -> int:
        sql = "DELETE FROM zset_items WHERE key = ? AND score <= ?"
        return self.db.execute(sql, (key, score)).rowcount

    def zrange_with_scores(self, key: str, limit: int) -> list[tuple[str, float]]:
        sql = "SELECT member, score FROM zset_items WHERE key = ? ORDER BY score, member LIMIT ?"
        return [(row[0], float(row[1])) for row in self.db.execute(sql, (key, limit))]

    # -- sets --------------------------------------------------------------------

    def sadd(self, key: str, member: str) -> None:
        self._key(key, "set")
        self.db.execute(
            "INSERT OR IGNORE INTO set_items (key, member) VALUES (?, ?)", (key, member)
        )

    def smembers(self, key: str) -> list[str]:
        return [
            row[0] for row in self.db.execute("SELECT member FROM set_items WHERE key = ?", (key,))
        ]


class SQLiteBroker(StoreBroker):
    """A broker on one SQLite database.

    ``path`` is a database file, or ``":memory:"`` (the default, so that config can
    name the class) for a database private to this instance.
    """

    store: SQLiteStore

    def __init__(self, path: str = ":memory:", *, poll_interval: float = 0.05) -> None:
        super().__init__(SQLiteStore(path, poll_interval=poll_interval))
        self.path = path

    @classmethod
    def from_url(cls, url: str) -> SQLiteBroker:
        """``sqlite:///abs/path.db``, ``sqlite://rel/path.db`` or ``sqlite://:memory:``."""
        return cls(url.partition("://")[2] or ":memory:")
