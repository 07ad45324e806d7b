"""A Sentinel-managed master by URL: ``redis+sentinel://``.

``redis+sentinel://[user:password@]host:port[,host:port...]/SERVICE[?db=N&options]``
(``rediss+sentinel://`` for TLS) names the Sentinels and the service they
watch. The broker is the classic :class:`~myrq.backends.redis.RedisBroker` on
redis-py's Sentinel-managed client: every new connection asks the Sentinels
for the master, and a connection to a master that was demoted fails at once
(``READONLY`` becomes a connection error), so producers and workers follow a
failover without a restart: the step fails with BrokerConnectionError, and the
retry reaches the new master.

User and password in the URL are the master's; ``sentinel_password`` (and
``sentinel_username``) in the query are the Sentinels' own, if they have one.
``wait_replicas``/``wait_timeout`` make enqueues and outcomes wait for replicas
(docs/reliability.md); other options go to redis-py. ``socket_timeout``
defaults to 5 s, so a master that stops answering (a partition, a paused
process) is left for the new one instead of hanging a worker.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import redis
from redis.connection import parse_url
from redis.sentinel import Sentinel

from myrq.backends.redis import RedisBroker
from myrq.backends.redis_client import broker_options, parse_nodes, split_options
from myrq.exceptions import ConfigurationError
from myrq.urls import redact_url, scheme_of

#: Seconds a command may wait for a reply before the connection is given up.
DEFAULT_SOCKET_TIMEOUT = 5.0


def _parts(url: str) -> tuple[str, list[tuple[str, int]], str, dict[str, Any], dict[str, Any]]:
    """(user info, Sentinel nodes, service, master connection kwargs, Sentinel kwargs)."""
    if scheme_of(url) not in ("redis+sentinel", "rediss+sentinel"):
        raise ConfigurationError(
            f"{redact_url(url)!r} is not a Sentinel URL: use "
            "redis+sentinel://host:port[,host:port...]/SERVICE[?db=N]"
        )
    options = broker_options(url)
    if "shards" in options:
        raise ConfigurationError(
            f"invalid Sentinel URL {redact_url(url)!r}: Sentinel serves one master, so the "
            "classic layout; shards= is for redis+cluster:// and redis+sharded://"
        )
    plain, _ = split_options(url)
    parts = urlsplit(plain)
    userinfo, nodes = parse_nodes(plain)
    service = parts.path.strip("/")
    if not service or "/" in service:
        raise ConfigurationError(
            f"invalid Sentinel URL {redact_url(url)!r}: name the service the Sentinels watch "
            "as the path, e.g. redis+sentinel://host:26379/mymaster"
        )
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    sentinel_kwargs = {
        k.removeprefix("sentinel_"): v for k, v in pairs if k.startswith("sentinel_")
    }
    rest = urlencode([(k, v) for k, v in pairs if not k.startswith("sentinel_")])
    scheme = "rediss" if parts.scheme.startswith("rediss") else "redis"
    try:
        master = parse_url(f"{scheme}://{userinfo}localhost/?{rest}")  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise ConfigurationError(f"invalid Sentinel URL {redact_url(url)!r}: {exc}") from exc
    for name in ("host", "port"):
        master.pop(name, None)
    master.setdefault("socket_timeout", DEFAULT_SOCKET_TIMEOUT)
    return userinfo, nodes, service, master, sentinel_kwargs


def check_url(url: str) -> None:
    """Raise ConfigurationError if ``url`` is not a usable ``redis+sentinel://`` URL."""
    _parts(url)


def sentinel_client(url: str) -> redis.Redis:
    """A client of the master that the Sentinels of ``url`` name (follows failovers)."""
    _, nodes, service, master, sentinel_kwargs = _parts(url)
    sentinel_kwargs.setdefault("socket_timeout", master["socket_timeout"])
    sentinel = Sentinel(nodes, sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
    client: redis.Redis = sentinel.master_for(service, decode_responses=False, **master)  # type: ignore[no-untyped-call]
    return client


def sentinel_from_url(url: str, *, key_prefix: str = "myrq:", **kwargs: Any) -> RedisBroker:
    """A :class:`RedisBroker` on the master of a ``redis+sentinel://`` URL."""
    options = {**broker_options(url), **kwargs}
    return RedisBroker(sentinel_client(url), url=url, key_prefix=key_prefix, **options)
