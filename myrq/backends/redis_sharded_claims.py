"""Claiming on the sharded layout: which shard a worker claims from, and its wake-ups.

A worker claims from one shard at a time: its home shard first (from its
name), then the shard it last found work on, for as long as that shard has
jobs, so that a busy worker's step stays one script call that writes its
outcomes and claims its next batch. When the shard runs out, one pipelined read
of every shard (each queue's length and next scheduled job) ranks the shards by
the highest-priority queue with work, then by rotation from the current one;
the worker claims from the first that has work. FIFO order and queue priority
therefore hold within a shard, not across shards.

Wake-ups: an idle worker blocks on its queues' *bells* (lists sharing one slot,
``<prefix>{bell}:bell:<queue>``); a producer rings after storing jobs due now,
the tokens naming their shards, so the woken worker claims there first. A
producer rings only while its last ring found a worker waiting (the ring's
``LLEN`` was 0), else at most every :data:`PROBE_EVERY` seconds, so a busy
system sends next to nothing to the bell's slot. A worker that just found
nothing waits at most :data:`FIRST_WAIT` before sweeping again, which covers
the rings such a producer left out; later waits last up to the poll interval.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from myrq.backends import arguments
from myrq.backends.redis_client import as_str, reply
from myrq.backends.redis_shards import scored
from myrq.backends.values import Delivery, FinishRequest
from myrq.exceptions import BrokerError
from myrq.schema import F_HAS_DEPENDENTS

if TYPE_CHECKING:
    from myrq.backends.redis import RedisBroker
    from myrq.backends.redis_shards import ShardLayout

logger = logging.getLogger("myrq.broker")

#: Seconds between two rings of a producer whose last ring found no idle worker.
PROBE_EVERY = 0.05
#: The first wait of a worker that found nothing (seconds), before it sweeps again.
FIRST_WAIT = 0.1
#: Wake-up tokens kept on a bell nobody waits on.
BELL_CAP = 32
#: Longest a worker keeps claiming from one shard before it looks at the others (seconds):
#: it bounds how long jobs on other shards, and of higher-priority queues there, wait.
STICK_FOR = 1.0


class ShardedClaims:
    """Mixed into :class:`~myrq.backends.redis_sharded.ShardedRedisBroker`."""

    views: list[RedisBroker]
    layout: ShardLayout
    client: Any
    url: str
    _lock: threading.Lock
    _current: dict[str, int]  # worker -> the shard it claims from
    _until: dict[str, float]  # worker -> when it stops preferring its shard (monotonic)
    _drained: set[str]  # workers whose shard ran out at their last claim
    _claims: OrderedDict[str, list[int]]  # claim id -> shards asked, for a resend
    _parents: OrderedDict[str, int]  # claimed jobs known to have dependents -> shard
    _bells: dict[str, tuple[bool, float]]  # queue -> (last ring found a waiter, when)

    if TYPE_CHECKING:  # provided by the broker or another of its parts

        def _translate(self) -> Any: ...

        def _pipeline(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]: ...

        def carry_over(self, shards: Sequence[int]) -> int: ...

    # -- wake-ups ------------------------------------------------------------------------------

    def _ring(self, shards_by_queue: dict[str, set[int]]) -> None:
        """Wake idle workers of these queues, naming the shards that got jobs (see module doc)."""
        now = time.monotonic()
        commands: list[tuple[Any, ...]] = []
        rung = []
        for queue, shards in shards_by_queue.items():
            idle_seen, last = self._bells.get(queue, (True, 0.0))
            if not idle_seen and now - last < PROBE_EVERY:
                continue
            bell = self.layout.bell_key(queue)
            commands += (("RPUSH", bell, *sorted(shards)), ("LTRIM", bell, -BELL_CAP, -1))
            commands.append(("LLEN", bell))
            rung.append(queue)
        if not commands:
            return
        try:
            replies = self._pipeline(commands)
        except BrokerError as exc:  # best effort: the job is stored; idle workers sweep
            logger.warning("could not wake idle workers: %s", exc)
            return
        for n, queue in enumerate(rung):
            self._bells[queue] = (int(replies[3 * n + 2]) == 0, now)

    def _wait_bell(self, queues: Sequence[str], wait: float) -> int | None:
        """Block on the bells of ``queues`` for up to ``wait`` seconds; the shard rung, if any."""
        keys = [self.layout.bell_key(q) for q in queues]
        with self._translate():
            got = reply(self.client.blpop(keys, timeout=max(wait, 0.01)))
        if got is None:
            return None
        token = as_str(got[1])
        return int(token) % self.layout.count if token.isdigit() else None

    # -- consuming -----------------------------------------------------------------------------

    def dequeue(
        self,
        queues: Sequence[str],
        worker: str,
        lease: float,
        timeout: float = 0,
        count: int = 1,
        *,
        claim_id: str | None = None,
    ) -> list[Delivery]:
        lease_ms = arguments.lease_ms(lease)
        remaining = arguments.wait_seconds(timeout)
        count = arguments.whole("count", count, minimum=0)
        claim_id = claim_id or secrets.token_hex(8)
        deadline = time.monotonic() + remaining
        first_wait = True
        while True:
            _, out, next_due = self._claim(queues, worker, lease_ms, count, claim_id)
            remaining = deadline - time.monotonic()
            if out or remaining <= 0 or count == 0:
                return out
            wait = min(remaining, self.views[0]._max_block, FIRST_WAIT if first_wait else 1e9)
            if next_due is not None:
                wait = min(wait, next_due + 0.001)
            first_wait = False
            shard = self._wait_bell(queues, wait)
            if shard is not None:
                self._move(worker, shard)

    def _move(self, worker: str, shard: int, *, renew: bool = True) -> None:
        """Make ``shard`` the worker's shard, for :data:`STICK_FOR` seconds at most.

        ``renew``: a time on the same shard that ran out starts again (the shard
        was chosen afresh). A claim that stayed on its shard does not renew it, even
        if its time ran out meanwhile: the next claim looks at the other shards.
        """
        now = time.monotonic()
        with self._lock:
            current = self._current.get(worker)
            if current != shard or (renew and now >= self._until.get(worker, 0.0)):
                self._until[worker] = now + STICK_FOR
            self._current[worker] = shard
            self._drained.discard(worker)

    def _claim(  # noqa: PLR0917 - the claim's arguments
        self,
        queues: Sequence[str],
        worker: str,
        lease_ms: int,
        count: int,
        claim_id: str,
        finishes: Sequence[tuple[FinishRequest, int, int]] = (),
        here: int | None = None,
    ) -> tuple[list[bool], list[Delivery], float | None]:
        """Write ``finishes`` (all kept on shard ``here``) and claim up to ``count`` jobs.

        A resend (a claim id seen before) asks the same shards again, which hand
        out what that claim took. Otherwise the worker's shard comes first, while
        it has work and for at most :data:`STICK_FOR` seconds; then, to fill the
        batch, the shards a sweep finds work on. Returns what each finish
        returned, the deliveries, and when nothing was claimed, the seconds until
        the next scheduled job of these queues falls due (None: none scheduled).
        """
        now = time.monotonic()
        with self._lock:
            replay = list(self._claims.get(claim_id, ()))
            fresh = worker not in self._current
            current = self._current.setdefault(worker, self.layout.home(worker))
            drained = worker in self._drained
            expired = now >= self._until.get(worker, 0.0)
        here = current if here is None else here
        stay = not drained and not expired
        plan = replay or ([here] if stay or finishes else [])
        written: list[bool] = []
        out: list[Delivery] = []
        asked = []
        for shard in plan:
            want = count - len(out) if replay or stay else 0
            mine = finishes if shard == here else ()
            done, got = self._claim_on(
                shard, queues, worker, lease_ms, want, claim_id, mine, renew=False
            )
            written = done if shard == here else written
            out += got
            if want:
                asked.append(shard)
        if len(out) >= count or (replay and out):
            return written, out, None
        next_due = None
        for found in self._sweep(queues, worker, rotate=expired and not fresh):
            if isinstance(found, float):
                next_due = found
            elif found not in asked:
                out += self._claim_on(found, queues, worker, lease_ms, count - len(out), claim_id)[
                    1
                ]
                if len(out) >= count:
                    break
        return written, out, None if out else next_due

    def _claim_on(  # noqa: PLR0917 - the claim's arguments
        self,
        shard: int,
        queues: Sequence[str],
        worker: str,
        lease_ms: int,
        count: int,
        claim_id: str,
        finishes: Sequence[tuple[FinishRequest, int, int]] = (),
        *,
        renew: bool = True,
    ) -> tuple[list[bool], list[Delivery]]:
        with self._lock:
            tried = self._claims.setdefault(claim_id, [])
            if shard not in tried:
                tried.append(shard)
            while len(self._claims) > 1024:
                self._claims.popitem(last=False)
        view = self.views[shard]
        with view._translate():
            written, out, errors, _ = view._claim_call(
                queues, worker, lease_ms, count, claim_id, finishes
            )
        if errors and not out:
            raise BrokerError(f"Redis at {self.url} refused the claim: {errors[0]}")
        for error in errors:
            logger.error("a claim stopped early: %s (the jobs it did claim were handed out)", error)
        expired_parent = self._remember(shard, out)
        if expired_parent or (finishes and self._finished_parents(finishes, written)):
            self.carry_over([shard])
        if out:
            self._move(worker, shard, renew=renew)
        else:  # no claim record was left there: a resend need not ask it again
            with self._lock:
                if shard in self._claims.get(claim_id, ()):
                    self._claims[claim_id].remove(shard)
        if len(out) < count:
            with self._lock:
                self._drained.add(worker)
        return written, out

    def _remember(self, shard: int, out: Sequence[Delivery]) -> bool:
        """Note the claimed jobs that have dependents, so that their end is carried over
        at once; True if the claim itself ended one (canceled: its ttl had passed)."""
        ended = False
        with self._lock:
            for d in out:
                if d.fields is not None and d.fields.get(F_HAS_DEPENDENTS) == b"1":
                    if d.claimed:
                        self._parents[d.job_id] = shard
                    ended = ended or d.note == "expired"
            while len(self._parents) > 10_000:
                self._parents.popitem(last=False)
        return ended

    def _finished_parents(
        self, finishes: Sequence[tuple[FinishRequest, int, int]], written: list[bool]
    ) -> bool:
        """True if a job of ``finishes`` that was written was known to have dependents."""
        with self._lock:
            found = [
                self._parents.pop(f.job_id, None) is not None and ok
                for (f, _, _), ok in zip(finishes, written, strict=True)
            ]
        return any(found)

    def _sweep(self, queues: Sequence[str], worker: str, *, rotate: bool) -> list[int | float]:
        """The shards with work, best first, then the seconds until the next due job, if any.

        Best: the highest-priority queue with jobs (or due scheduled ones), then
        the rotation from the worker's shard (``rotate``: from the next one, so
        that a worker that stayed long enough on its shard moves on).
        """
        commands: list[tuple[Any, ...]] = []
        for view in self.views:
            for q in queues:
                commands.append(("LLEN", view.queue_key(q)))
                commands.append(("ZRANGE", view.scheduled_key(q), 0, 0, "WITHSCORES"))
        with self._translate():
            replies = self._pipeline(commands)
            now_s, now_us = reply(self.client.time())
        now_ms = int(now_s) * 1000 + int(now_us) // 1000
        with self._lock:
            start = self._current.get(worker, self.layout.home(worker)) + int(rotate)
        ranked: list[tuple[int, int, int]] = []  # (queue rank, distance from start, shard)
        next_ms: int | None = None
        for shard in range(self.layout.count):
            best = None
            for n in range(len(queues)):
                at = 2 * (shard * len(queues) + n)
                length, first = replies[at], scored(replies[at + 1])
                due = int(first[0][1]) if first else None
                if due is not None and due > now_ms:
                    next_ms = due - now_ms if next_ms is None else min(next_ms, due - now_ms)
                if best is None and (int(length) > 0 or (due is not None and due <= now_ms)):
                    best = n
            if best is not None:
                ranked.append((best, (shard - start) % self.layout.count, shard))
        order: list[int | float] = [shard for _, _, shard in sorted(ranked)]
        if next_ms is not None:
            order.append(next_ms / 1000)
        return order

    def finish_many_and_dequeue(
        self,
        finishes: Sequence[FinishRequest],
        *,
        queues: Sequence[str],
        worker: str,
        lease: float,
        count: int = 1,
        claim_id: str | None = None,
    ) -> tuple[list[bool], list[Delivery]]:
        for f in finishes:
            arguments.fields(f.fields)
        steps = [(f, arguments.ttl_ms(f.ttl), arguments.retry_ms(f.retry_delay)) for f in finishes]
        lease_ms = arguments.lease_ms(lease)
        count = arguments.whole("count", count, minimum=0)
        claim_id = claim_id or secrets.token_hex(8)
        by_shard: dict[int, list[int]] = defaultdict(list)
        for n, f in enumerate(finishes):
            by_shard[self.layout.shard_of(f.job_id)].append(n)
        with self._lock:
            tried = self._claims.get(claim_id)
            here = tried[0] if tried else self._current.get(worker, self.layout.home(worker))
        written: list[bool] = [False] * len(finishes)
        for shard, indexes in by_shard.items():
            if shard == here:
                continue
            mine = [steps[n] for n in indexes]
            view = self.views[shard]
            with view._translate():
                done, _, _, _ = view._claim_call((), "", 1, 0, "-", mine)
            for n, ok in zip(indexes, done, strict=True):
                written[n] = ok
            if self._finished_parents(mine, done):
                self.carry_over([shard])
        mine = [steps[n] for n in by_shard.get(here, [])]
        if not mine and not count:
            return written, []
        done, out, _ = self._claim(queues, worker, lease_ms, count, claim_id, mine, here)
        for n, ok in zip(by_shard.get(here, []), done, strict=True):
            written[n] = ok
        return written, out
