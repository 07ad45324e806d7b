"""Brokers on the sharded layout by URL: Redis Cluster, and one server or fakeredis.

- ``redis+cluster://[user:password@]host:port[,host:port...][?options]`` (and
  ``rediss+cluster://`` for TLS): redis-py's ``RedisCluster``, which finds the
  other nodes and follows failovers and slot moves;
- ``redis+sharded://[user:password@]host:port[/db][?options]`` (also
  ``rediss+sharded://``, ``unix+sharded:///path.sock?db=N``): the same layout on
  one server, keys and all, e.g. to move to a cluster later by moving keys;
- ``fakeredis+sharded://[name]``: on an in-process fakeredis server (tests).

Options myrq reads: ``shards`` (a new layout's shard count, default 16),
``wait_replicas`` and ``wait_timeout`` (see docs/reliability.md); the others
go to redis-py (``socket_timeout`` defaults to 5 s on a cluster). Building a broker reads the shard
count, and for a cluster its topology, so it needs the server to answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import redis

from myrq.backends.redis_client import (
    broker_options,
    check_redis_url,
    parse_nodes,
    split_options,
    translate_errors,
)
from myrq.exceptions import BrokerConnectionError, ConfigurationError
from myrq.urls import redact_url, scheme_of

if TYPE_CHECKING:
    from redis.cluster import RedisCluster

    from myrq.backends.redis_sharded import ShardedRedisBroker

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
#: Seconds a command may wait for a reply unless the URL says otherwise: a master
#: that stops answering (a partition, a paused process) is given up for its replica.
SOCKET_TIMEOUT = 5.0
SHARDED_SCHEMES = ("redis+sharded", "rediss+sharded", "unix+sharded")


def check_url(url: str) -> None:
    """Raise ConfigurationError if ``url`` is not a usable sharded or cluster URL."""
    scheme = scheme_of(url)
    broker_options(url)
    if scheme in CLUSTER_SCHEMES:
        parse_nodes(url)
        if urlsplit(url).path.strip("/") not in ("", "0"):
            raise ConfigurationError(
                f"invalid Redis Cluster URL {redact_url(url)!r}: a cluster has no database "
                "numbers; drop the /db path"
            )
    elif scheme in SHARDED_SCHEMES:
        check_redis_url(url.replace("+sharded", "", 1))
    else:
        raise ConfigurationError(
            f"{redact_url(url)!r} is not a sharded Redis URL: use redis+cluster://, "
            "redis+sharded://, rediss+sharded:// or unix+sharded://"
        )


def cluster_client(url: str) -> RedisCluster:
    """A ``RedisCluster`` (bytes replies) for a ``redis+cluster://`` URL."""
    from redis.cluster import ClusterNode, RedisCluster  # noqa: PLC0415 - lazy, as redis-py

    check_url(url)
    userinfo, nodes = parse_nodes(url)
    plain, _ = split_options(url)
    parts = urlsplit(plain)
    scheme = "rediss" if parts.scheme.startswith("rediss") else "redis"
    host, port = nodes[0]
    first = urlunsplit((scheme, f"{userinfo}{host}:{port}", "", parts.query, ""))
    timeouts: dict[str, Any] = {}
    if "socket_timeout" not in parts.query:
        timeouts["socket_timeout"] = SOCKET_TIMEOUT
    with translate_errors(redact_url(url)):
        try:
            client: RedisCluster = RedisCluster(
                url=first,
                startup_nodes=[ClusterNode(h, p) for h, p in nodes[1:]],  # type: ignore[no-untyped-call]
                decode_responses=False,
                **timeouts,
            )
            return client
        except ValueError as exc:
            raise ConfigurationError(f"invalid Redis URL {redact_url(url)!r}: {exc}") from exc
        except redis.exceptions.RedisClusterException as exc:
            if isinstance(exc.__cause__, redis.ConnectionError | redis.TimeoutError):
                raise BrokerConnectionError(
                    f"cannot reach Redis Cluster at {redact_url(url)}: {exc}"
                ) from exc
            raise


def sharded_from_url(url: str, *, key_prefix: str = "myrq:", **kwargs: Any) -> ShardedRedisBroker:
    """A :class:`~myrq.backends.redis_sharded.ShardedRedisBroker` for a sharded or cluster URL."""
    from myrq.backends.redis_client import client_from_url  # noqa: PLC0415
    from myrq.backends.redis_sharded import ShardedRedisBroker  # noqa: PLC0415 - lazy

    check_url(url)
    options = {**broker_options(url), **kwargs}
    client = (
        cluster_client(url)
        if scheme_of(url) in CLUSTER_SCHEMES
        else client_from_url(url.replace("+sharded", "", 1))
    )
    return ShardedRedisBroker(client, url=url, key_prefix=key_prefix, **options)


def cluster_warnings(client: Any, url: str, layout_count: int, shards: list[str]) -> list[str]:
    """A cluster's setup problems: each primary's ``maxmemory-policy``, and masters without shards.

    ``shards`` are the shards' key prefixes (the slot of each is that of its tag).
    """
    out = []
    primaries = client.get_primaries()
    for node in primaries:
        server = client.get_redis_connection(node)
        try:
            policy = server.config_get("maxmemory-policy").get("maxmemory-policy")
        except redis.RedisError:
            policy = None  # a check that cannot run is no warning
        policy = policy.decode() if isinstance(policy, bytes) else policy
        if policy and str(policy).startswith("allkeys"):
            out.append(
                f"Redis Cluster master {node.name} ({redact_url(url)}) has maxmemory-policy "
                f"{policy}: under memory pressure it may evict queued jobs. Set it to "
                "noeviction on every master."
            )
    owners = {client.get_node_from_key(f"{prefix}leases").name for prefix in shards}
    idle = [node.name for node in primaries if node.name not in owners]
    if idle:
        out.append(
            f"Redis Cluster at {redact_url(url)}: master(s) {', '.join(idle)} hold none of the "
            f"{layout_count} shards, so they take no job traffic; move slots so every master "
            "holds some (docs/scaling.md), or use a layout with more shards"
        )
    return out
