"""Writes confirmed by replicas: a script and ``WAIT`` on one connection.

``WAIT n timeout`` waits until ``n`` replicas have every write made *on the
connection it is sent on*, so the script and the ``WAIT`` must share one: a
pipeline of the two, on the server that holds the script's keys (on a cluster,
that node's own client: redis-py refuses scripts in cluster pipelines, and a
``WAIT`` has no key to route it by).

``wait_replicas`` (see :class:`~myrq.backends.redis.RedisBroker`) uses it for
the writes a failover must not lose: enqueues and outcomes. Leases, claims and
the rest are not waited for: lost in a failover, a claim's job is reaped and
runs again (at least once), a renewal is renewed again.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

import redis
from redis.commands.core import Script
from redis.exceptions import AskError, MovedError, NoScriptError, TryAgainError

from myrq.exceptions import BrokerConnectionError

#: How long a pipeline is retried while its slot moves between nodes (seconds).
_MOVING_FOR = 5.0


def server_of(client: Any, key: str) -> redis.Redis:
    """The client of the one server that holds ``key``: ``client`` itself, or a cluster node's."""
    manager = getattr(client, "nodes_manager", None)
    if manager is None:
        return client  # type: ignore[no-any-return]
    node = manager.get_node_from_slot(client.keyslot(key))
    return client.get_redis_connection(node)  # type: ignore[no-any-return]


def call_and_wait(  # noqa: PLR0917 - the script's call and the wait's terms
    client: Any,
    script: Script,
    keys: Sequence[Any],
    args: Sequence[Any],
    replicas: int,
    timeout_ms: int,
    url: str,
) -> Any:
    """Run ``script`` then ``WAIT replicas timeout_ms`` on one connection; the script's reply.

    Raises:
        BrokerConnectionError: fewer than ``replicas`` replicas confirmed the
            write within the timeout (it is on the master, and may be lost if
            the master fails now: the step is safe to send again), or the slot
            kept moving.
        redis.RedisError: as the script raised it (the caller translates it).
    """
    deadline = time.monotonic() + _MOVING_FOR
    while True:
        server = server_of(client, keys[0])
        pipe = server.pipeline(transaction=False)
        pipe.evalsha(script.sha, len(keys), *keys, *args)
        pipe.wait(replicas, timeout_ms)
        try:
            reply, acked = pipe.execute(raise_on_error=False)
        except (redis.ConnectionError, redis.TimeoutError):
            _refresh(client)  # a node that died: learn who holds its slots now
            raise
        if isinstance(reply, NoScriptError):
            script.sha = str(server.script_load(script.script))
            continue
        if isinstance(reply, AskError | TryAgainError) and time.monotonic() < deadline:
            if isinstance(reply, MovedError):
                _moved(client, reply)
            else:
                time.sleep(0.05)  # the slot is being migrated: wait for the move to finish
            continue
        if isinstance(reply, Exception):
            raise reply
        if isinstance(acked, Exception):
            raise acked
        if int(acked) < replicas:
            raise BrokerConnectionError(
                f"Redis at {url}: the write was made on the master but only {acked} of the "
                f"{replicas} replica(s) asked for (wait_replicas) confirmed it within "
                f"{timeout_ms / 1000:g}s; a failover now could lose it. The step is safe to "
                "send again; check the replicas (INFO replication), or lower wait_replicas"
            )
        return reply


def _refresh(client: Any) -> None:
    """Re-read a cluster's slots (nothing to do on one server); best effort."""
    manager = getattr(client, "nodes_manager", None)
    if manager is None:
        return
    with contextlib.suppress(redis.RedisError, redis.exceptions.RedisClusterException):
        manager.initialize()  # failing, the caller's retry refreshes again


def _moved(client: Any, error: MovedError) -> None:
    """Tell a cluster client that a slot moved (redis-py 6+: ``move_slot``; 5: on next use)."""
    manager = client.nodes_manager
    move = getattr(manager, "move_slot", None)
    if move is not None:
        move(error)
    else:
        manager.update_moved_exception(error)
