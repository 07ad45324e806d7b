"""Brokers: the Broker contract, the Redis and in-memory brokers, selection by URL."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable

from myrq._imports import import_object
from myrq.backends.base import Broker, Delivery, EnqueueRequest, Finish, Reaped
from myrq.backends.memory import MemoryBroker
from myrq.backends.redis import RedisBroker, check_redis_url, redact_url
from myrq.exceptions import ConfigurationError

__all__ = [
    "Broker",
    "Delivery",
    "EnqueueRequest",
    "Finish",
    "MemoryBroker",
    "Reaped",
    "RedisBroker",
    "broker_from_url",
    "register_scheme",
]

BrokerFactory = Callable[[str], Broker]

_memory_lock = threading.Lock()
_memory_brokers: dict[str, MemoryBroker] = {}


def _memory(url: str) -> Broker:
    # One shared instance per memory:// URL, so a Queue and a Worker made
    # separately from config see the same jobs.
    with _memory_lock:
        if url not in _memory_brokers:
            _memory_brokers[url] = MemoryBroker(url)
        return _memory_brokers[url]


def _redis(url: str, key_prefix: str | None = None) -> Broker:
    return RedisBroker.from_url(url, **({"key_prefix": key_prefix} if key_prefix else {}))


_SCHEMES: dict[str, BrokerFactory] = {
    "redis": _redis,
    "rediss": _redis,
    "unix": _redis,
    "memory": _memory,
}


def register_scheme(scheme: str, factory: BrokerFactory) -> None:
    """Make ``scheme://...`` URLs build brokers with ``factory(url)``."""
    _SCHEMES[scheme.lower()] = factory


def check_broker_spec(spec: str) -> None:
    """Raise ConfigurationError if ``spec`` names no broker, without building one."""
    spec = spec.strip()
    if "://" in spec:
        factory = _SCHEMES.get(spec.partition("://")[0].lower())
        if factory is None:
            broker_from_url(spec)  # raises the full error
        elif factory is _redis:
            check_redis_url(spec)
    elif ":" in spec or "." in spec:
        obj = import_object(spec, what="broker")
        if not (isinstance(obj, type) and issubclass(obj, Broker)) or inspect.isabstract(obj):
            broker_from_url(spec)  # raises the full error
    else:
        broker_from_url(spec)


def broker_from_url(spec: str, *, key_prefix: str | None = None) -> Broker:
    """Build a broker from a URL or a dotted class path.

    ``redis://``, ``rediss://``, ``unix://`` give a :class:`RedisBroker`;
    ``memory://`` (or ``memory://name``) a shared :class:`MemoryBroker`;
    ``package.module:ClassName`` instantiates that Broker subclass with no
    arguments. ``key_prefix`` applies to Redis URLs.

    Raises:
        ConfigurationError: unknown scheme, bad URL or unusable class.
    """
    spec = spec.strip()
    if "://" in spec:
        scheme = spec.partition("://")[0].lower()
        factory = _SCHEMES.get(scheme)
        if factory is None:
            raise ConfigurationError(
                f"unknown broker URL scheme {scheme!r} in {redact_url(spec)!r}: accepted are "
                f"{', '.join(s + '://' for s in sorted(_SCHEMES))}, or a Broker subclass as "
                "'package.module:ClassName'"
            )
        if factory is _redis:
            return _redis(spec, key_prefix)
        return factory(spec)
    if ":" in spec or "." in spec:
        obj = import_object(spec, what="broker")
        if isinstance(obj, type) and issubclass(obj, Broker) and not inspect.isabstract(obj):
            try:
                return obj()
            except Exception as exc:
                raise ConfigurationError(
                    f"broker class {spec!r} could not be built with no arguments: "
                    f"{type(exc).__name__}: {exc}; give it defaults, or pass an instance "
                    "to configure(broker=...)"
                ) from exc
        raise ConfigurationError(
            f"broker {spec!r} resolves to {obj!r}, which is not a concrete "
            "myrq.backends.Broker subclass"
        )
    raise ConfigurationError(
        f"broker {spec!r} is neither a URL nor a dotted path: use e.g. "
        "'redis://127.0.0.1:6379/0', 'memory://' or 'package.module:ClassName'"
    )
