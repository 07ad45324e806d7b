"""The sharded Redis layout: which shard keeps a job, and how each shard's keys are named.

Every key of shard ``k`` starts with ``<prefix>{<tag k>}:``, so Redis Cluster
keeps all of a shard's keys in one hash slot and every Lua script of the
classic layout runs unchanged on one shard. A job lives on the shard of its id:

- an id with a hash tag (``order-7{customer-42}``: the text between the first
  ``{`` and the next ``}``, as Redis Cluster reads keys) is placed by its tag,
  so jobs that must keep their order can share a shard;
- the occurrences of a periodic schedule (``cron:<queue>:<name>:<ms>``, see
  :mod:`myrq.cron`) are placed by ``cron:<queue>:<name>``, with the schedule;
- any other id by the whole id;

then shard = CRC16 of that text (Redis's slot function) mod the shard count.
``get(id)`` therefore finds a job from its id alone.

The shard tags are chosen once for a count: tag ``k`` hashes into the middle of
the ``k``-th of ``count`` equal ranges of the 16384 slots. A cluster whose
masters own equal contiguous ranges (what ``redis-cli --cluster create`` does)
thus gets ``count / masters`` shards per master, rounded up or down: 16 shards
on 3 masters are 6/5/5.

The count is stored once, under ``<prefix>shards``, by the first broker that
uses the layout; a broker built with another count is refused, because every
job's shard would change. It cannot change afterwards (see docs/scaling.md).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from myrq.exceptions import ConfigurationError

#: Shards of a new layout unless configured (``shards=`` / ``?shards=N``).
DEFAULT_SHARDS = 16
#: Most shards a layout may have (each then spans 16 slots).
MAX_SHARDS = 1024


@functools.cache
def shard_tags(count: int) -> tuple[str, ...]:
    """The hash tag of each of ``count`` shards: tag ``k`` hashes into the middle of range ``k``."""
    width = REDIS_CLUSTER_HASH_SLOTS / count
    tags = []
    for k in range(count):
        low, high = k * width + width / 4, k * width + 3 * width / 4
        n = 0
        while not low <= key_slot(f"s{k}.{n}".encode()) < high:
            n += 1
        tags.append(f"s{k}.{n}")
    return tuple(tags)


def routing_key(job_id: str) -> str:
    """The text whose slot places a job (see the module docstring)."""
    if job_id.startswith("cron:") and job_id.count(":") == 3:
        head, _, due = job_id.rpartition(":")
        if due.isdigit():
            return head
    return job_id


@dataclass(frozen=True)
class ShardLayout:
    """The key names of a sharded layout: ``prefix`` (e.g. ``myrq:``) and ``count`` shards."""

    prefix: str
    count: int

    def __post_init__(self) -> None:
        if "{" in self.prefix or "}" in self.prefix:
            raise ConfigurationError(
                f"key_prefix {self.prefix!r} holds a hash tag: the sharded layout puts its own "
                "tag ({s<k>...}) after the prefix in every key; use a prefix without { and }"
            )
        if not (isinstance(self.count, int) and 1 <= self.count <= MAX_SHARDS):
            raise ConfigurationError(
                f"shards must be a whole number from 1 to {MAX_SHARDS}, not {self.count!r}"
            )

    @property
    def count_key(self) -> str:
        """Where the shard count is stored (one key, read once per broker)."""
        return f"{self.prefix}shards"

    def shard_prefix(self, shard: int) -> str:
        return f"{self.prefix}{{{shard_tags(self.count)[shard]}}}:"

    def shard_of(self, job_id: str) -> int:
        return key_slot(routing_key(job_id).encode()) % self.count

    def bell_key(self, queue: str) -> str:
        """The list idle workers of ``queue`` block on; every queue's bell shares one slot."""
        return f"{self.prefix}{{bell}}:bell:{queue}"

    def home(self, worker: str) -> int:
        """The shard a worker claims from first."""
        return key_slot(worker.encode()) % self.count


def settle_count(layout_prefix: str, stored: bytes | None, wanted: int | None) -> int:
    """The shard count to use, given the stored one (None: none yet) and the configured one.

    Raises:
        ConfigurationError: both are set and differ.
    """
    if stored is None:
        return DEFAULT_SHARDS if wanted is None else wanted
    try:
        count = int(stored)
    except ValueError:
        raise ConfigurationError(
            f"{layout_prefix}shards holds {stored!r}, not a shard count; it was not written "
            "by myrq: delete it only if no job is stored under this prefix"
        ) from None
    if wanted is not None and wanted != count:
        raise ConfigurationError(
            f"the sharded layout under {layout_prefix!r} has {count} shards (stored in "
            f"{layout_prefix}shards) but this broker was configured with shards={wanted}: "
            "the count cannot change (every job's shard would move); drop the setting, or "
            "use another key_prefix for a new layout"
        )
    return count


def scored(raw: Any) -> list[tuple[Any, float]]:
    """A ``... WITHSCORES`` reply sent as a raw command, as ``(member, score)`` pairs.

    redis-py 5 returns such a reply flat (member, score, member, ...), later
    versions as pairs; both are read here.
    """
    items = list(raw or ())
    if items and not isinstance(items[0], list | tuple):
        return [(m, float(v)) for m, v in zip(items[::2], items[1::2], strict=True)]
    return [(m, float(v)) for m, v in items]
