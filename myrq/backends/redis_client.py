"""Connecting to Redis: URL checks, clients, reply decoding, and redis-py's errors as myrq's."""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.commands.core import Script
from redis.connection import parse_url
from redis.exceptions import RedisClusterException

from myrq.exceptions import (
    BrokerConnectionError,
    BrokerError,
    BrokerFullError,
    ConfigurationError,
)
from myrq.urls import redact_url, scheme_of

#: Cluster and replication errors that leave nothing half done and pass: retried
#: like a lost connection (ClusterError: redis-py's redirections ran out).
_MOVING = (
    redis.exceptions.ClusterError,  # and ClusterDownError, MasterDownError
    redis.exceptions.AskError,  # and MovedError
    redis.exceptions.TryAgainError,
    redis.exceptions.SlotNotCoveredError,
    redis.exceptions.ReadOnlyError,
)

#: Error replies of a master that is being demoted, or lacks its replicas: retried.
_RETRYABLE_REPLIES = ("UNBLOCKED", "NOREPLICAS")

#: URL query options that myrq reads itself (redis-py would refuse them).
BROKER_OPTIONS = ("wait_replicas", "wait_timeout", "shards")


@contextmanager
def translate_errors(url: str) -> Iterator[None]:
    """Turn redis-py's exceptions into myrq's, chained, naming ``url`` (password hidden)."""
    try:
        yield
    except (redis.AuthenticationError, redis.exceptions.AuthorizationError) as exc:
        # Subclasses of ConnectionError in redis-py: the server is there but
        # refused the credentials. Still a BrokerConnectionError (the step was
        # not done), with a message that says what to fix.
        raise BrokerConnectionError(
            f"Redis at {url} refused the login: {exc} Check the user name and "
            "password in the URL (redis://user:password@host:port/db) and the ACL "
            "user on the server"
        ) from exc
    except redis.exceptions.OutOfMemoryError as exc:
        raise BrokerFullError(
            f"Redis at {url} is full (maxmemory reached, eviction off) and refused the write; "
            "nothing was stored. Workers keep draining it: retry later, raise maxmemory, or "
            "shorten result_ttl/failure_ttl"
        ) from exc
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise BrokerConnectionError(
            f"cannot reach Redis at {url}: {exc}. Check that redis-server is running "
            "there and that the URL (MYRQ_BROKER_URL or configure(broker=...)) is right"
        ) from exc
    except _MOVING as exc:
        # Refused before the command ran (a failover, a slot being moved, a demoted
        # master) or redis-py's own retries ran out: a script is done whole or not
        # at all, and every step is safe to send again, so the caller retries.
        raise BrokerConnectionError(
            f"Redis at {url} is failing over or moving slots ({type(exc).__name__}: {exc}); "
            "the step was not done, or done whole: try it again"
        ) from exc
    except redis.ResponseError as exc:
        if str(exc).startswith(_RETRYABLE_REPLIES):
            # UNBLOCKED: a blocking command (WAIT, BLPOP) ended as its master was
            # demoted; NOREPLICAS: min-replicas-to-write refused the write, whole.
            raise BrokerConnectionError(
                f"Redis at {url} cannot take writes now ({exc}); try the step again"
            ) from exc
        raise BrokerError(f"Redis at {url} refused the operation: {exc}") from exc
    except (redis.RedisError, RedisClusterException) as exc:
        raise BrokerError(f"Redis at {url} refused the operation: {exc}") from exc


def as_str(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


def split_options(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without the query options of :data:`BROKER_OPTIONS`, and those options."""
    parts = urlsplit(url)
    if not parts.query:
        return url, {}
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in pairs if k in BROKER_OPTIONS}
    if not ours:
        return url, {}
    rest = urlencode([(k, v) for k, v in pairs if k not in BROKER_OPTIONS])
    return urlunsplit(parts._replace(query=rest)), ours


def broker_options(url: str) -> dict[str, Any]:
    """The options of :data:`BROKER_OPTIONS` in ``url``, checked: ``wait_replicas``
    (replicas, >= 0) and ``shards`` (>= 1) as ints, ``wait_timeout`` (seconds > 0)."""
    out: dict[str, Any] = {}
    for name, text in split_options(url)[1].items():
        try:
            value = float(text) if name == "wait_timeout" else int(text)
        except ValueError:
            value = -1
        if name == "wait_timeout" and not 0 < value < 1e6:
            rule = "a number of seconds > 0"
        elif name != "wait_timeout" and value < (1 if name == "shards" else 0):
            rule = f"a whole number >= {1 if name == 'shards' else 0}"
        else:
            out[name] = value
            continue
        raise ConfigurationError(
            f"invalid Redis URL {redact_url(url)!r}: {name}={text!r} must be {rule}"
        )
    return out


def parse_nodes(url: str) -> tuple[str, list[tuple[str, int]]]:
    """The user info (``user:password@`` or ``""``) and the ``(host, port)`` of each node."""
    netloc = urlsplit(url).netloc
    userinfo, _, hosts = netloc.rpartition("@")
    nodes = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ConfigurationError(
                f"invalid Redis URL {redact_url(url)!r}: list the nodes as "
                f"host:port[,host:port...], not {item!r}"
            )
        nodes.append((host.strip("[]"), int(port)))
    return (userinfo + "@" if userinfo else ""), nodes


def connection_kwargs(client: Any) -> dict[str, Any]:
    """The keyword arguments a client makes connections with (Redis, RedisCluster,
    a Sentinel-managed client, fakeredis), or ``{}`` for a client without them."""
    get = getattr(client, "get_connection_kwargs", None)
    try:
        return dict(get()) if get is not None else {}
    except AttributeError:
        return {}


def check_redis_url(url: str) -> None:
    """Raise ConfigurationError if ``url`` is not a usable Redis URL (connects to nothing)."""
    broker_options(url)
    url = split_options(url)[0]
    scheme = scheme_of(url)
    if scheme not in ("redis", "rediss", "unix"):
        raise ConfigurationError(
            f"RedisBroker cannot use URL {redact_url(url)!r}: the scheme must be redis://, "
            "rediss:// (TLS) or unix://"
        )
    try:
        parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise ConfigurationError(f"invalid Redis URL {redact_url(url)!r}: {exc}") from exc
    db = urlsplit(url).path.strip("/")
    if scheme != "unix" and db and not db.isdigit():
        raise ConfigurationError(
            f"invalid Redis URL {redact_url(url)!r}: the path must be a database number "
            f"(e.g. /0), not {db!r}"
        )


def client_from_url(url: str) -> redis.Redis:
    check_redis_url(url)
    try:
        return redis.Redis.from_url(split_options(url)[0], decode_responses=False)
    except ValueError as exc:
        raise ConfigurationError(f"invalid Redis URL {redact_url(url)!r}: {exc}") from exc


def describe(client: redis.Redis) -> str:
    pool = getattr(client, "connection_pool", None)
    kw = pool.connection_kwargs if pool is not None else {}
    if "path" in kw:
        return f"unix://{kw['path']}?db={kw.get('db', 0)}"
    if "host" in kw:
        return f"redis://{kw['host']}:{kw.get('port', 6379)}/{kw.get('db', 0)}"
    return type(client).__name__


def reply(value: Any) -> Any:
    """A reply of the synchronous client. (redis-py 5 types replies as
    ``Awaitable | value`` for its sync and async clients alike; this keeps
    mypy --strict quiet on every redis-py version we support.)"""
    return value


@functools.cache
def script_text(name: str) -> str:
    """The text of ``lua/<name>`` with ``lua/_lib.lua`` in front, as it is sent to Redis."""
    lua = importlib.resources.files("myrq.backends").joinpath("lua")
    return lua.joinpath("_lib.lua").read_text("utf-8") + lua.joinpath(name).read_text("utf-8")


def load_script(client: redis.Redis, name: str) -> Script:
    """Register ``lua/<name>`` (with ``_lib.lua``) on ``client``."""
    return client.register_script(script_text(name))
