"""Connecting to Redis: URL checks, clients, reply decoding, and redis-py's errors as myrq's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.connection import parse_url

from myrq.exceptions import (
    BrokerConnectionError,
    BrokerError,
    BrokerFullError,
    ConfigurationError,
)
from myrq.urls import redact_url, scheme_of


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
    except redis.RedisError as exc:
        raise BrokerError(f"Redis at {url} refused the operation: {exc}") from exc


def as_str(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


def check_redis_url(url: str) -> None:
    """Raise ConfigurationError if ``url`` is not a usable Redis URL (connects to nothing)."""
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
        return redis.Redis.from_url(url, decode_responses=False)
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
