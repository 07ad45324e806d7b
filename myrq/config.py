"""Where the broker and serializer come from when none is passed explicitly.

Order, first match wins:

1. explicit arguments (``Queue("x", broker=...)``)
2. :func:`configure` in this process
3. environment: ``MYRQ_BROKER_URL``, ``MYRQ_SERIALIZER``, ``MYRQ_KEY_PREFIX``
4. ``[tool.myrq]`` in the nearest ``pyproject.toml`` (cwd, then its parents):
   keys ``broker_url``, ``serializer``, ``key_prefix``
5. defaults: ``redis://127.0.0.1:6379/0``, ``json``, ``myrq:``
"""

from __future__ import annotations

import os
import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from myrq.backends import Broker, broker_from_url, check_broker_spec
from myrq.exceptions import ConfigurationError
from myrq.serializers import Serializer, resolve_serializer

DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
DEFAULT_SERIALIZER = "json"
DEFAULT_KEY_PREFIX = "myrq:"
#: Seconds a job may run before it is stopped with status ``timeout``.
DEFAULT_TIMEOUT = 180.0
#: Seconds a finished job's record (and result) is kept. -1: forever, 0: not kept.
DEFAULT_RESULT_TTL = 3600
#: Seconds a failed or timed-out job's record is kept. -1: forever, 0: not kept.
DEFAULT_FAILURE_TTL = 7 * 24 * 3600

_ENV = {
    "broker_url": "MYRQ_BROKER_URL",
    "serializer": "MYRQ_SERIALIZER",
    "key_prefix": "MYRQ_KEY_PREFIX",
}
_KNOWN_KEYS = frozenset(_ENV)


@dataclass(frozen=True)
class Settings:
    """The resolved configuration. ``source`` says where each value came from."""

    broker_url: str
    serializer: str
    key_prefix: str
    source: dict[str, str]


_lock = threading.Lock()
_overrides: dict[str, Any] = {}
_broker_cache: dict[tuple[str, str], Broker] = {}


def configure(
    *,
    broker: str | Broker | None = None,
    serializer: str | Serializer | type[Serializer] | None = None,
    key_prefix: str | None = None,
) -> None:
    """Set this process's defaults; arguments left ``None`` keep their current source.

    ``broker`` is a URL (``redis://``, ``rediss://``, ``unix://``,
    ``memory://``), a dotted path to a Broker subclass, or a Broker instance.
    ``serializer`` is ``"json"``, ``"pickle"``, a dotted path or an instance.
    Values are checked now, so a typo fails here and not at first use.
    """
    with _lock:
        if broker is not None:
            if isinstance(broker, str):
                check_broker_spec(broker)  # fail now on an unknown scheme or bad path
            elif not isinstance(broker, Broker):
                raise ConfigurationError(
                    f"broker must be a URL string or a Broker instance, not {broker!r}"
                )
            _overrides["broker"] = broker
        if serializer is not None:
            resolve_serializer(serializer)
            _overrides["serializer"] = serializer
        if key_prefix is not None:
            if not key_prefix:
                raise ConfigurationError("key_prefix must not be empty; the default is 'myrq:'")
            _overrides["key_prefix"] = key_prefix


def reset() -> None:
    """Forget :func:`configure` settings and cached brokers (for tests)."""
    with _lock:
        _overrides.clear()
        _broker_cache.clear()


def _pyproject_settings(start: Path | None = None) -> tuple[dict[str, Any], str]:
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        path = folder / "pyproject.toml"
        if path.is_file():
            try:
                data = tomllib.loads(path.read_text("utf-8"))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigurationError(f"cannot read {path}: {exc}") from exc
            table = data.get("tool", {}).get("myrq", {})
            if not isinstance(table, dict):
                raise ConfigurationError(f"[tool.myrq] in {path} must be a table")
            unknown = set(table) - _KNOWN_KEYS
            if unknown:
                raise ConfigurationError(
                    f"[tool.myrq] in {path} has unknown key(s) {sorted(unknown)}; "
                    f"known keys are {sorted(_KNOWN_KEYS)}"
                )
            return table, str(path)
    return {}, ""


def settings() -> Settings:
    """Resolve the configuration from all sources (see the module docstring)."""
    with _lock:
        overrides = dict(_overrides)
    file_values, file_path = _pyproject_settings()
    defaults = {
        "broker_url": DEFAULT_BROKER_URL,
        "serializer": DEFAULT_SERIALIZER,
        "key_prefix": DEFAULT_KEY_PREFIX,
    }
    values: dict[str, str] = {}
    source: dict[str, str] = {}
    for key, env_name in _ENV.items():
        override_key = "broker" if key == "broker_url" else key
        if override_key in overrides and isinstance(overrides[override_key], str):
            values[key], source[key] = overrides[override_key], "configure()"
        elif os.environ.get(env_name):
            values[key], source[key] = os.environ[env_name], env_name
        elif key in file_values:
            value = file_values[key]
            if not isinstance(value, str):
                raise ConfigurationError(
                    f"[tool.myrq] {key} in {file_path} must be a string, not {value!r}"
                )
            values[key], source[key] = value, file_path
        else:
            values[key], source[key] = defaults[key], "default"
    return Settings(source=source, **values)


def get_broker(broker: str | Broker | None = None) -> Broker:
    """The broker to use: ``broker`` if given, else the configured one."""
    if isinstance(broker, Broker):
        return broker
    if broker is None:
        with _lock:
            configured = _overrides.get("broker")
        if isinstance(configured, Broker):
            return configured
    current = settings()
    url = broker if broker is not None else current.broker_url
    key = (url, current.key_prefix)
    with _lock:
        cached = _broker_cache.get(key)
    if cached is not None:
        return cached
    built = broker_from_url(url, key_prefix=current.key_prefix)
    with _lock:
        return _broker_cache.setdefault(key, built)


def get_serializer(serializer: str | Serializer | type[Serializer] | None = None) -> Serializer:
    """The serializer to use: ``serializer`` if given, else the configured one."""
    if serializer is not None:
        return resolve_serializer(serializer)
    with _lock:
        configured = _overrides.get("serializer")
    if configured is not None:
        return resolve_serializer(configured)
    return resolve_serializer(settings().serializer)
