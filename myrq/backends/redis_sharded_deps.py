"""Dependencies between jobs on different shards of the sharded layout.

On one shard a dependency is the classic layout's: the child is in
``dependents:<parent>``, and the script that ends the parent settles it in the
same step. A parent on another shard cannot be touched by the child's script
(another slot), so each cross-shard dependency goes through three steps, each
atomic on one shard and safe to repeat, with a fresh nonce naming it:

1. **attach** (``attach.lua``, on the parent's shard): if the parent has not
   ended, add the member ``0x1f <child> 0x1f <nonce>`` to its dependents and mark
   it ``has_dependents``; else report how it ended (or that it does not exist).
2. **enqueue** (``enqueue.lua`` unchanged, on the child's shard): the child's
   script reads the hash ``edge:<nonce>`` as this parent's record (status
   ``pending`` while it waits, or how it ended) and adds the child to the set
   ``xdeps:<nonce>`` as this parent's dependents. The edge is written just
   before (``HSETNX``: an outcome carried over already wins) and deleted after.
3. **carry over**: the step that ends the parent writes the member and its
   outcome to its shard's ``outbox`` list (``settle`` in ``_lib.lua``); the
   broker moves each entry to the child's shard (``settle_remote.lua``: released
   or canceled as on one shard, and down the chain) and then removes it.
   An entry that comes before step 2 leaves the outcome in the edge (kept a
   day), where step 2 reads it.

A producer that dies between steps leaves nothing wrong: an attached member
without a child is carried over to nobody. A worker that dies after the parent
ended leaves the entry in the outbox for the next one. Who carries over: the
worker that ends a parent known (at its claim) to have dependents, right after;
otherwise any worker's next reap sweep, within one heartbeat.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from myrq.backends.redis_client import as_str, reply
from myrq.backends.values import EnqueueRequest

if TYPE_CHECKING:
    from redis.commands.core import Script

    from myrq.backends.redis import RedisBroker

#: How long an outcome carried over before its child's enqueue is kept (ms).
EDGE_TTL_MS = 86_400_000
#: Outbox entries carried over per shard and call.
OUTBOX_BATCH = 100
_SEP = "\x1f"


class ShardedDependencies:
    """Mixed into :class:`~myrq.backends.redis_sharded.ShardedRedisBroker`."""

    views: list[RedisBroker]
    client: Any
    _attach_script: Script
    _settle_remote_script: Script

    if TYPE_CHECKING:  # provided by the broker or another of its parts

        def shard_of(self, job_id: str) -> int: ...

        def _run_pipeline(self, shard: int, commands: Sequence[tuple[Any, ...]]) -> list[Any]: ...

        def _ring(self, shards_by_queue: dict[str, set[int]]) -> None: ...

    # -- enqueue: steps 1 and 2 -----------------------------------------------------

    def _attach(
        self, requests: Sequence[EnqueueRequest]
    ) -> dict[int, tuple[dict[tuple[str, str], tuple[str, str]], list[tuple[Any, ...]]]]:
        """Step 1 for every cross-shard dependency of ``requests``.

        Returns, per child shard, the keys its enqueue reads for each remote parent
        (``(child, parent) -> (edge, xdeps)``) and the commands that write the edges
        first. A parent that does not exist gets no edge: enqueue.lua reports it.
        """
        members: dict[str, list[tuple[str, str]]] = defaultdict(list)  # parent -> (child, nonce)
        for req in requests:
            home = self.shard_of(req.job_id)
            for parent in req.depends_on:
                if self.shard_of(parent) != home:
                    members[parent].append((req.job_id, secrets.token_hex(8)))
        out: dict[int, tuple[dict[tuple[str, str], tuple[str, str]], list[tuple[Any, ...]]]] = {}
        for parent, kids in members.items():
            view = self.views[self.shard_of(parent)]
            keys = [view.job_key(parent), view.dependents_key(parent)]
            with view._translate():
                status = view._script(
                    self._attach_script,
                    keys,
                    [f"{_SEP}{kid}{_SEP}{nonce}" for kid, nonce in kids],
                    durable=True,
                )
            for kid, nonce in kids:
                shard = self.shard_of(kid)
                remote, writes = out.setdefault(shard, ({}, []))
                edge = f"{self.views[shard].prefix}edge:{nonce}"
                remote[(kid, parent)] = (edge, f"{self.views[shard].prefix}xdeps:{nonce}")
                if status:
                    verb = "HSETNX" if as_str(status) == "waiting" else "HSET"
                    state = "pending" if verb == "HSETNX" else as_str(status)
                    writes += (
                        (verb, edge, "status", state),
                        ("PEXPIRE", edge, EDGE_TTL_MS),
                    )
        return out

    def _drop_edges(self, shard: int, remote: dict[tuple[str, str], tuple[str, str]]) -> None:
        """After step 2: the edges were read; nothing needs them any more."""
        edges = [edge for edge, _ in remote.values()]
        for start in range(0, len(edges), 500):
            self._run_pipeline(shard, [("DEL", edge) for edge in edges[start : start + 500]])

    # -- step 3: carrying the outbox over ------------------------------------------------

    def carry_over(self, shards: Sequence[int]) -> int:
        """Move the outbox entries of ``shards`` to their children's shards, and the entries
        that this writes there in turn (a cancel down a chain); how many were moved."""
        moved = 0
        released: dict[str, set[int]] = defaultdict(set)
        todo = set(shards)
        for _ in range(64):  # a chain of cancels crosses at most this many shards per call
            if not todo:
                break
            shard = todo.pop()
            view = self.views[shard]
            outbox = f"{view.prefix}outbox"
            with view._translate():
                entries = reply(view.client.lrange(outbox, 0, OUTBOX_BATCH - 1))
            for raw in entries:
                _, kid, nonce, parent, ok = as_str(raw).split(_SEP)
                target = self.shard_of(kid)
                tview = self.views[target]
                keys = [f"{tview.prefix}xdeps:{nonce}", f"{tview.prefix}edge:{nonce}"]
                args = [kid, parent, ok, nonce, tview.expired_ttl_ms, EDGE_TTL_MS]
                with tview._translate():
                    done = tview._script(self._settle_remote_script, keys, args, durable=True)
                if isinstance(done, bytes):  # kid's queue: it was released, or canceled
                    released[as_str(done)].add(target)
                    todo.add(target)  # canceled, its own dependents may be in that outbox
                with view._translate():
                    view.client.lrem(outbox, 1, raw)
                moved += 1
            if len(entries) == OUTBOX_BATCH:
                todo.add(shard)
        if released:
            self._ring(released)
        return moved
