"""The Store contract: a few Redis-shaped data types in one atomic step.

Brokers written in Python (the memory broker, the SQLite example, a future
PostgreSQL broker) do not implement the :class:`~myrq.backends.base.Broker`
steps themselves. They implement this much smaller contract, and
:class:`~myrq.backends.store_broker.StoreBroker` carries out every broker step
on it, with the same keys and the same rules as the Redis broker's Lua
scripts. So a rule is written twice (Lua and Python), never once per broker,
and the memory broker behaves as Redis does.

A store keeps keys of four kinds, as Redis does:

- hashes (a job record): field name -> bytes;
- lists of ids (a queue), taken from the left;
- sorted sets (leases): member -> score, ordered by score, then member;
- sets (queue names).

:meth:`Store.transaction` yields a :class:`Txn` whose operations are one atomic
step: another step sees all of them or none, also across processes when the
store is shared. Any key may carry an expiry; an expired key behaves as absent
everywhere. A list, sorted set or set that became empty may be kept as an
empty key (no broker step depends on it vanishing).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from contextlib import AbstractContextManager


class Txn(ABC):
    """One atomic step on a :class:`Store`. Valid only inside its ``with`` block."""

    #: Set by :meth:`push` (an id was added to a list) and by steps that end a job:
    #: idle workers and clients waiting for a job should look again.
    wake: bool = False

    @abstractmethod
    def now(self) -> float:
        """Seconds since the epoch on the store's clock (may be fixed for the step)."""

    # -- any key -------------------------------------------------------------

    @abstractmethod
    def exists(self, key: str) -> bool:
        """True if ``key`` holds anything and has not expired."""

    @abstractmethod
    def delete(self, key: str) -> bool:
        """Remove ``key`` whatever it holds; True if it existed."""

    @abstractmethod
    def expire(self, key: str, at: float | None) -> None:
        """Make ``key`` vanish at time ``at`` (store clock); ``None`` removes an expiry."""

    @abstractmethod
    def keys(self, prefix: str) -> list[str]:
        """Every live key that starts with ``prefix`` (for tools, not hot paths)."""

    # -- hashes --------------------------------------------------------------

    @abstractmethod
    def hgetall(self, key: str) -> dict[str, bytes] | None:
        """A copy of the hash, or None if there is none."""

    def hget(self, key: str, field: str) -> bytes | None:
        record = self.hgetall(key)
        return None if record is None else record.get(field)

    @abstractmethod
    def hset(self, key: str, fields: Mapping[str, bytes]) -> None:
        """Set these fields, creating the hash if needed."""

    @abstractmethod
    def hdel(self, key: str, *fields: str) -> None:
        """Remove these fields (absent ones are ignored)."""

    # -- lists of ids -----------------------------------------------------------

    @abstractmethod
    def push(self, key: str, value: str, *, front: bool = False) -> int:
        """Add ``value`` at the end (or the front); return the new length. Sets :attr:`wake`."""

    @abstractmethod
    def pop(self, key: str) -> str | None:
        """Take the first value, or None if the list is empty."""

    @abstractmethod
    def remove(self, key: str, value: str) -> int:
        """Remove every occurrence of ``value``; return how many there were."""

    @abstractmethod
    def lrange(self, key: str, start: int, stop: int) -> list[str]:
        """Values from ``start`` to ``stop`` inclusive; negative indexes count from the end."""

    @abstractmethod
    def llen(self, key: str) -> int:
        """Number of values in the list."""

    # -- sorted sets ------------------------------------------------------------

    @abstractmethod
    def zadd(self, key: str, member: str, score: float) -> None:
        """Set ``member``'s score, adding it if needed."""

    @abstractmethod
    def zrem(self, key: str, member: str) -> bool:
        """Remove ``member``; True if it was there."""

    @abstractmethod
    def zscore(self, key: str, member: str) -> float | None:
        """``member``'s score, or None."""

    @abstractmethod
    def zrange_by_score(self, key: str, max_score: float, limit: int) -> list[str]:
        """Up to ``limit`` members with score <= ``max_score``, lowest score first."""

    @abstractmethod
    def zmembers(self, key: str) -> list[str]:
        """Every member, lowest score first (ties by member)."""

    @abstractmethod
    def zrange_with_scores(self, key: str, limit: int) -> list[tuple[str, float]]:
        """The first ``limit`` ``(member, score)`` pairs, lowest score first."""

    @abstractmethod
    def zcount_above(self, key: str, score: float) -> int:
        """How many members have a score above ``score``."""

    @abstractmethod
    def zrange_above(self, key: str, score: float, offset: int, limit: int) -> list[str]:
        """Members with a score above ``score``, lowest first, from ``offset`` (limit -1: all)."""

    @abstractmethod
    def zremrange_below(self, key: str, score: float) -> int:
        """Remove the members with a score at or below ``score``; return how many."""

    # -- sets -----------------------------------------------------------------

    @abstractmethod
    def sadd(self, key: str, member: str) -> None:
        """Add ``member`` to the set."""

    @abstractmethod
    def smembers(self, key: str) -> list[str]:
        """Every member, in any order."""


class Store(ABC):
    """Storage for :class:`~myrq.backends.store_broker.StoreBroker`. Thread-safe.

    Subclass it to put myrq on another database: implement
    :meth:`transaction` (and :class:`Txn`), and :meth:`version` and
    :meth:`wait` if idle workers should wake when a job is pushed.
    """

    #: A description safe to print (no passwords), e.g. ``sqlite:///var/jobs.db``.
    url: str = ""

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Txn]:
        """One atomic step: everything done through the Txn is kept whole or not at all.

        Raises:
            BrokerConnectionError: the storage cannot be reached (nothing done).
            BrokerError: the storage refused the step (nothing done).
        """

    def version(self) -> int:
        """A number that changes after a step set :attr:`Txn.wake` (see :meth:`wait`)."""
        return 0

    def wait(self, seen: int, timeout: float) -> None:
        """Block until :meth:`version` differs from ``seen``, or ``timeout`` seconds.

        It may return early. The default sleeps for at most 50 ms: a store that
        cannot be told about pushes is polled in short slices.
        """
        import time  # noqa: PLC0415 - only stores without notifications get here

        time.sleep(min(max(timeout, 0.0), 0.05))

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. The store must not be used afterwards."""
