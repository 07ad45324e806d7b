"""In-memory broker: the broker steps of :mod:`myrq.backends.store_broker` on dicts.

For unit tests and single-process use. Every Queue and Worker in the process
that uses the same instance (or the same ``memory://name`` URL) shares it.
Nothing survives the process. Each step runs under one lock, so it is atomic
for every thread of the process.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from myrq.backends.store import Store, Txn
from myrq.backends.store_broker import StoreBroker
from myrq.exceptions import BrokerError

_K = TypeVar("_K")


class MemoryStore(Store):
    """Keys in a dict under one lock; blocked waiters wake on every push."""

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._cond = threading.Condition()
        self._data: dict[str, Any] = {}  # key -> dict | deque | _ZSet | set
        self._expires: dict[str, float] = {}  # key -> time.time() deadline
        self._version = 0

    @contextmanager
    def transaction(self) -> Iterator[Txn]:
        with self._cond:
            txn = _MemoryTxn(self)
            yield txn
            if txn.wake:
                self._version += 1
                self._cond.notify_all()

    def version(self) -> int:
        return self._version

    def wait(self, seen: int, timeout: float) -> None:
        with self._cond:
            if self._version == seen:
                self._cond.wait(timeout)

    def clear(self) -> None:
        with self._cond:
            self._data.clear()
            self._expires.clear()


class _ZSet(dict[str, float]):
    """member -> score."""


class _MemoryTxn(Txn):
    def __init__(self, store: MemoryStore) -> None:
        self._data = store._data
        self._expires = store._expires
        self._now = time.time()
        self.wake = False

    def now(self) -> float:
        return self._now

    def _get(self, key: str, kind: type[_K]) -> _K | None:
        deadline = self._expires.get(key)
        if deadline is not None and deadline <= self._now:
            self._data.pop(key, None)
            del self._expires[key]
        value = self._data.get(key)
        if value is None or kind is object or type(value) is kind:
            return value
        raise BrokerError(f"WRONGTYPE key {key!r} holds a {type(value).__name__}, not a {kind}")

    def _make(self, key: str, kind: type[_K]) -> _K:
        value = self._get(key, kind)
        if value is None:
            value = self._data[key] = kind()
        return value

    # -- any key ---------------------------------------------------------------

    def exists(self, key: str) -> bool:
        return self._get(key, object) is not None

    def delete(self, key: str) -> bool:
        existed = self.exists(key)
        self._data.pop(key, None)
        self._expires.pop(key, None)
        return existed

    def expire(self, key: str, at: float | None) -> None:
        if at is None:
            self._expires.pop(key, None)
        elif self.exists(key):
            self._expires[key] = at

    def keys(self, prefix: str) -> list[str]:
        return [k for k in list(self._data) if k.startswith(prefix) and self.exists(k)]

    # -- hashes ------------------------------------------------------------------

    def hgetall(self, key: str) -> dict[str, bytes] | None:
        record = self._get(key, dict)
        return None if record is None else dict(record)

    def hget(self, key: str, field: str) -> bytes | None:
        record = self._get(key, dict)
        return None if record is None else record.get(field)

    def hset(self, key: str, fields: Mapping[str, bytes]) -> None:
        self._make(key, dict).update(fields)

    def hdel(self, key: str, *fields: str) -> None:
        record = self._get(key, dict)
        if record is not None:
            for name in fields:
                record.pop(name, None)

    # -- lists -------------------------------------------------------------------

    def push(self, key: str, value: str, *, front: bool = False) -> int:
        items = self._make(key, deque)
        if front:
            items.appendleft(value)
        else:
            items.append(value)
        self.wake = True
        return len(items)

    def pop(self, key: str) -> str | None:
        items = self._get(key, deque)
        return items.popleft() if items else None

    def remove(self, key: str, value: str) -> int:
        items = self._get(key, deque)
        if not items:
            return 0
        kept = [v for v in items if v != value]
        removed = len(items) - len(kept)
        if removed:
            items.clear()
            items.extend(kept)
        return removed

    def lrange(self, key: str, start: int, stop: int) -> list[str]:
        items = list(self._get(key, deque) or ())
        n = len(items)
        start = max(start + n if start < 0 else start, 0)
        stop = stop + n if stop < 0 else min(stop, n - 1)
        return items[start : stop + 1] if start <= stop else []

    def llen(self, key: str) -> int:
        return len(self._get(key, deque) or ())

    # -- sorted sets ---------------------------------------------------------------

    def zadd(self, key: str, member: str, score: float) -> None:
        self._make(key, _ZSet)[member] = score

    def zrem(self, key: str, member: str) -> bool:
        zset = self._get(key, _ZSet)
        return zset is not None and zset.pop(member, None) is not None

    def zscore(self, key: str, member: str) -> float | None:
        zset = self._get(key, _ZSet)
        return None if zset is None else zset.get(member)

    def _ordered(self, key: str) -> list[tuple[float, str]]:
        zset: dict[str, float] = self._get(key, _ZSet) or {}
        return sorted((score, member) for member, score in zset.items())

    def zrange_by_score(self, key: str, max_score: float, limit: int) -> list[str]:
        return [m for s, m in self._ordered(key) if s <= max_score][:limit]

    def zmembers(self, key: str) -> list[str]:
        return [m for _, m in self._ordered(key)]

    def zrange_with_scores(self, key: str, limit: int) -> list[tuple[str, float]]:
        return [(m, s) for s, m in self._ordered(key)[:limit]]

    def zcount_above(self, key: str, score: float) -> int:
        zset: dict[str, float] = self._get(key, _ZSet) or {}
        return sum(1 for s in zset.values() if s > score)

    def zrange_above(self, key: str, score: float, offset: int, limit: int) -> list[str]:
        above = [m for s, m in self._ordered(key) if s > score][offset:]
        return above if limit < 0 else above[:limit]

    def zremrange_below(self, key: str, score: float) -> int:
        zset = self._get(key, _ZSet)
        if not zset:
            return 0
        gone = [m for m, s in zset.items() if s <= score]
        for m in gone:
            del zset[m]
        return len(gone)

    # -- sets --------------------------------------------------------------------

    def sadd(self, key: str, member: str) -> None:
        self._make(key, set).add(member)

    def smembers(self, key: str) -> list[str]:
        return list(self._get(key, set) or ())


class MemoryBroker(StoreBroker):
    """A broker that keeps everything in this process's memory."""

    store: MemoryStore

    def __init__(self, url: str = "memory://") -> None:
        super().__init__(MemoryStore(url))

    def clear(self) -> None:
        """Forget every job and queue (handy between unit tests)."""
        self.store.clear()
