"""Choosing a broker from a URL or a dotted class path, importing backends lazily.

``import myrq`` imports no backend library: redis-py is imported the first
time a ``redis://`` broker is built or checked, fakeredis the first time a
``fakeredis://`` broker is built.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from myrq._imports import import_object
from myrq.backends.base import Broker
from myrq.exceptions import ConfigurationError
from myrq.urls import redact_url, scheme_of

if TYPE_CHECKING:
    from fakeredis import FakeServer

    from myrq.backends.memory import MemoryBroker

BrokerFactory = Callable[[str], Broker]


@dataclass(frozen=True)
class _Scheme:
    build: Callable[[str, str | None], Broker]  # (url, key_prefix or None)
    check: Callable[[str], None] | None = None  # raises ConfigurationError


_lock = threading.Lock()
_memory_brokers: dict[str, MemoryBroker] = {}
_fake_servers: dict[str, FakeServer] = {}


def _memory(url: str, key_prefix: str | None) -> Broker:
    # One shared instance per memory:// URL, so a Queue and a Worker made
    # separately from config see the same jobs.
    from myrq.backends.memory import MemoryBroker  # noqa: PLC0415 - lazy: workers on Redis skip it

    with _lock:
        if url not in _memory_brokers:
            _memory_brokers[url] = MemoryBroker(url)
        return _memory_brokers[url]


def _redis(url: str, key_prefix: str | None) -> Broker:
    from myrq.backends.redis import RedisBroker  # noqa: PLC0415 - lazy: redis-py is heavy

    return RedisBroker.from_url(url, **({"key_prefix": key_prefix} if key_prefix else {}))


def _check_redis(url: str) -> None:
    from myrq.backends.redis_client import check_redis_url  # noqa: PLC0415 - lazy, as above

    check_redis_url(url)


def _fakeredis(url: str, key_prefix: str | None) -> Broker:
    """``fakeredis://[name]``: the Redis broker and its Lua scripts on fakeredis.

    One fake server per URL in the process (like ``memory://``), so Queues and
    Workers built from the same URL share it. Needs ``fakeredis[lua]``.
    """
    try:
        import fakeredis  # noqa: PLC0415 - optional at run time

        from myrq.backends.redis import RedisBroker  # noqa: PLC0415
    except ImportError as exc:
        raise ConfigurationError(
            f"broker URL {url!r} needs fakeredis with Lua support: pip install 'fakeredis[lua]'"
        ) from exc
    with _lock:
        server = _fake_servers.setdefault(url, fakeredis.FakeServer())
    client = fakeredis.FakeRedis(server=server)
    if scheme_of(url) == "fakeredis+sharded":  # the sharded layout (redis_sharded.py)
        from myrq.backends.redis_client import broker_options  # noqa: PLC0415
        from myrq.backends.redis_sharded import ShardedRedisBroker  # noqa: PLC0415

        options = broker_options(url)
        return ShardedRedisBroker(client, url=url, key_prefix=key_prefix or "myrq:", **options)
    return RedisBroker(client, url=url, key_prefix=key_prefix or "myrq:")


def _sharded(url: str, key_prefix: str | None) -> Broker:
    """``redis+cluster://``, ``redis+sharded://``...: see myrq/backends/redis_cluster.py."""
    from myrq.backends.redis_cluster import sharded_from_url  # noqa: PLC0415 - lazy

    return sharded_from_url(url, **({"key_prefix": key_prefix} if key_prefix else {}))


def _check_sharded(url: str) -> None:
    from myrq.backends.redis_cluster import check_url  # noqa: PLC0415 - lazy

    check_url(url)


def _sentinel(url: str, key_prefix: str | None) -> Broker:
    """``redis+sentinel://``: see myrq/backends/redis_sentinel.py."""
    from myrq.backends.redis_sentinel import sentinel_from_url  # noqa: PLC0415 - lazy

    return sentinel_from_url(url, **({"key_prefix": key_prefix} if key_prefix else {}))


def _check_sentinel(url: str) -> None:
    from myrq.backends.redis_sentinel import check_url  # noqa: PLC0415 - lazy

    check_url(url)


_SCHEMES: dict[str, _Scheme] = {
    "redis": _Scheme(_redis, _check_redis),
    "rediss": _Scheme(_redis, _check_redis),
    "unix": _Scheme(_redis, _check_redis),
    "memory": _Scheme(_memory),
    "fakeredis": _Scheme(_fakeredis),
    "fakeredis+sharded": _Scheme(_fakeredis),
    **dict.fromkeys(
        ("redis+sharded", "rediss+sharded", "unix+sharded", "redis+cluster", "rediss+cluster"),
        _Scheme(_sharded, _check_sharded),
    ),
    "redis+sentinel": _Scheme(_sentinel, _check_sentinel),
    "rediss+sentinel": _Scheme(_sentinel, _check_sentinel),
}


def register_scheme(scheme: str, factory: BrokerFactory) -> None:
    """Make ``scheme://...`` URLs build brokers with ``factory(url)``."""
    _SCHEMES[scheme.lower()] = _Scheme(lambda url, _prefix: factory(url))


def _scheme(spec: str) -> _Scheme:
    found = _SCHEMES.get(scheme_of(spec))
    if found is None:
        raise ConfigurationError(
            f"unknown broker URL scheme {scheme_of(spec)!r} in {redact_url(spec)!r}: accepted "
            f"are {', '.join(s + '://' for s in sorted(_SCHEMES))}, or a Broker subclass as "
            "'package.module:ClassName'"
        )
    return found


def _broker_class(spec: str) -> type[Broker]:
    obj = import_object(spec, what="broker")
    if isinstance(obj, type) and issubclass(obj, Broker) and not inspect.isabstract(obj):
        return obj
    raise ConfigurationError(
        f"broker {spec!r} resolves to {obj!r}, which is not a concrete "
        "myrq.backends.Broker subclass"
    )


def _not_a_spec(spec: str) -> ConfigurationError:
    return ConfigurationError(
        f"broker {spec!r} is neither a URL nor a dotted path: use e.g. "
        "'redis://127.0.0.1:6379/0', 'memory://' or 'package.module:ClassName'"
    )


def check_broker_spec(spec: str) -> None:
    """Raise ConfigurationError if ``spec`` names no broker, without building one."""
    spec = spec.strip()
    if "://" in spec:
        scheme = _scheme(spec)
        if scheme.check is not None:
            scheme.check(spec)
    elif ":" in spec or "." in spec:
        _broker_class(spec)
    else:
        raise _not_a_spec(spec)


def broker_from_url(spec: str, *, key_prefix: str | None = None) -> Broker:
    """Build a broker from a URL or a dotted class path.

    ``redis://``, ``rediss://``, ``unix://`` give a :class:`RedisBroker`;
    ``memory://`` (or ``memory://name``) a shared :class:`MemoryBroker`;
    ``fakeredis://`` (or ``fakeredis://name``) a RedisBroker on a shared
    in-process fakeredis server; ``package.module:ClassName`` instantiates that
    Broker subclass with no arguments. ``key_prefix`` applies to Redis URLs.

    Raises:
        ConfigurationError: unknown scheme, bad URL or unusable class.
    """
    spec = spec.strip()
    if "://" in spec:
        return _scheme(spec).build(spec, key_prefix)
    if ":" in spec or "." in spec:
        cls = _broker_class(spec)
        try:
            return cls()
        except Exception as exc:
            raise ConfigurationError(
                f"broker class {spec!r} could not be built with no arguments: "
                f"{type(exc).__name__}: {exc}; give it defaults, or pass an instance "
                "to configure(broker=...)"
            ) from exc
    raise _not_a_spec(spec)
