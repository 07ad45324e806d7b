"""Where the broker and serializer come from when none is passed explicitly.

Order, first match wins:

1. explicit arguments (``Queue("x", broker=...)``)
2. :func:`configure` in this process
3. environment: ``MYRQ_BROKER_URL``, ``MYRQ_SERIALIZER``, ``MYRQ_KEY_PREFIX``,
   ``MYRQ_ALLOW``, ``MYRQ_MAX_PAYLOAD_SIZE``, ``MYRQ_SECRET_KEY``, ``MYRQ_EAGER``
4. ``[tool.myrq]`` in the nearest ``pyproject.toml`` (cwd, then its parents):
   keys ``broker_url``, ``serializer``, ``key_prefix``, ``allow``,
   ``max_payload_size``, ``eager`` (never ``secret_key``: secrets do not belong in a
   committed file)
5. defaults: ``redis://127.0.0.1:6379/0``, ``json``, ``myrq:``, nothing
   allowed beyond ``@myrq.task`` functions, 1 MiB, no signing
"""

from __future__ import annotations

import os
import threading
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from myrq.backends import Broker, broker_from_url, check_broker_spec
from myrq.defaults import (
    DEFAULT_BROKER_URL,
    DEFAULT_FAILURE_TTL,
    DEFAULT_KEY_PREFIX,
    DEFAULT_MAX_PAYLOAD_SIZE,
    DEFAULT_RESULT_TTL,
    DEFAULT_SERIALIZER,
    DEFAULT_TIMEOUT,
)
from myrq.exceptions import ConfigurationError
from myrq.registry import check_module_prefixes
from myrq.serializers import Serializer, resolve_serializer
from myrq.urls import redact_url

_ENV = {
    "broker_url": "MYRQ_BROKER_URL",
    "serializer": "MYRQ_SERIALIZER",
    "key_prefix": "MYRQ_KEY_PREFIX",
    "allow": "MYRQ_ALLOW",
    "max_payload_size": "MYRQ_MAX_PAYLOAD_SIZE",
    "secret_key": "MYRQ_SECRET_KEY",
    "eager": "MYRQ_EAGER",
}
_KNOWN_KEYS = frozenset(_ENV) - {"secret_key"}


@dataclass(frozen=True)
class Settings:
    """The resolved configuration. ``source`` says where each value came from."""

    broker_url: str = field(repr=False)  # may hold a password: see __repr__
    serializer: str
    key_prefix: str
    source: dict[str, str]
    allow: str = ""  # comma-separated module prefixes
    max_payload_size: str = str(DEFAULT_MAX_PAYLOAD_SIZE)
    secret_key: str = field(default="", repr=False)
    eager: str = ""  # "1": queues run their jobs inside enqueue (see myrq.eager)

    def __repr__(self) -> str:
        key = "***" if self.secret_key else ""
        return (
            f"Settings(broker_url={redact_url(self.broker_url)!r}, serializer={self.serializer!r}, "
            f"key_prefix={self.key_prefix!r}, allow={self.allow!r}, "
            f"max_payload_size={self.max_payload_size!r}, secret_key={key!r}, "
            f"eager={self.eager!r})"
        )


_lock = threading.Lock()
_overrides: dict[str, Any] = {}
_broker_cache: dict[tuple[str, str], Broker] = {}


def configure(
    *,
    broker: str | Broker | None = None,
    serializer: str | Serializer | type[Serializer] | None = None,
    key_prefix: str | None = None,
    allow: Sequence[str] | str | None = None,
    max_payload_size: int | None = None,
    secret_key: str | bytes | Sequence[str | bytes] | None = None,
    eager: bool | None = None,
) -> None:
    """Set this process's defaults; arguments left ``None`` keep their current source.

    ``broker`` is a URL (``redis://``, ``rediss://``, ``unix://``,
    ``memory://``), a dotted path to a Broker subclass, or a Broker instance.
    ``serializer`` is ``"json"``, ``"pickle"``, a dotted path or an instance.
    ``allow`` lists module prefixes whose functions workers may run (see
    :mod:`myrq.registry`). ``max_payload_size`` caps an encoded job payload in
    bytes (0: no cap). ``secret_key`` makes producers sign every record and
    workers refuse unsigned or wrongly signed ones (see :mod:`myrq.signing`);
    a list of keys (or ``"new,old"``) rotates them: sign with the first,
    accept any. ``eager=True`` makes every queue made afterwards without an
    ``eager`` argument run its jobs inside ``enqueue`` (see :mod:`myrq.eager`).
    Values are checked now, so a typo fails here and not at first use.
    """
    updates: dict[str, Any] = {}  # all checked first: a bad value changes nothing
    if broker is not None:
        if isinstance(broker, str):
            check_broker_spec(broker)  # fail now on an unknown scheme or bad path
        elif not isinstance(broker, Broker):
            raise ConfigurationError(
                f"broker must be a URL string or a Broker instance, not {broker!r}"
            )
        updates["broker"] = broker
    if serializer is not None:
        resolve_serializer(serializer)
        updates["serializer"] = serializer
    if key_prefix is not None:
        if not key_prefix:
            raise ConfigurationError("key_prefix must not be empty; the default is 'myrq:'")
        updates["key_prefix"] = key_prefix
    if allow is not None:
        updates["allow"] = ",".join(check_module_prefixes(allow))
    if max_payload_size is not None:
        updates["max_payload_size"] = str(
            _check_max_payload_size(max_payload_size, "max_payload_size")
        )
    if secret_key is not None:
        updates["secret_keys"] = secret_keys_of(secret_key)
    if eager is not None:
        if not isinstance(eager, bool):
            raise ConfigurationError(f"eager must be True or False, not {eager!r}")
        updates["eager"] = "1" if eager else "0"
    with _lock:
        _overrides.update(updates)


def secret_keys_of(value: object) -> tuple[bytes, ...]:
    """Signing keys from a setting: the first signs, all verify; ``()`` turns signing off.

    A ``bytes`` key is one key, whatever bytes it holds. A ``str`` is a list of
    keys separated by commas (``"new,old"``, as ``MYRQ_SECRET_KEY`` holds
    them). In a list or tuple each item is one key, commas and all.

    Raises:
        ConfigurationError: not a key or a list of keys, or text with commas only.
    """
    if isinstance(value, bytes):
        return (value,) if value else ()
    if isinstance(value, str):
        keys = tuple(k.encode("utf-8", "surrogateescape") for k in value.split(",") if k)
        if value and not keys:
            raise ConfigurationError(
                "secret_key holds commas and no key; give 'key' or 'new,old', or '' for none"
            )
        return keys
    if isinstance(value, list | tuple) and all(isinstance(k, str | bytes) for k in value):
        return tuple(
            k.encode("utf-8", "surrogateescape") if isinstance(k, str) else k for k in value if k
        )
    raise ConfigurationError(
        f"secret_key must be a str or bytes, or a list of them, not {type(value).__name__}"
    )


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
            if "secret_key" in table:
                raise ConfigurationError(
                    f"[tool.myrq] in {path} sets secret_key: a secret must not live in a "
                    "committed file; set MYRQ_SECRET_KEY or call myrq.configure(secret_key=...)"
                )
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
        "allow": "",
        "max_payload_size": str(DEFAULT_MAX_PAYLOAD_SIZE),
        "secret_key": "",
        "eager": "",
    }
    values: dict[str, str] = {}
    source: dict[str, str] = {}
    if "secret_keys" in overrides:  # keys given as bytes stay out of the text settings
        overrides["secret_key"] = "<configured>" if overrides["secret_keys"] else ""
    for key, env_name in _ENV.items():
        override_key = "broker" if key == "broker_url" else key
        if override_key in overrides and isinstance(overrides[override_key], str):
            values[key], source[key] = overrides[override_key], "configure()"
        elif os.environ.get(env_name):
            values[key], source[key] = os.environ[env_name], env_name
        elif key in file_values:
            value = file_values[key]
            if key == "allow" and isinstance(value, list):
                value = ",".join(check_module_prefixes(value))
            elif key == "max_payload_size" and isinstance(value, int):
                value = str(value)
            elif key == "eager" and isinstance(value, bool):
                value = "1" if value else "0"
            if not isinstance(value, str):
                raise ConfigurationError(
                    f"[tool.myrq] {key} in {file_path} must be a string, not {value!r}"
                )
            values[key], source[key] = value, file_path
        else:
            values[key], source[key] = defaults[key], "default"
    return Settings(source=source, **values)


def _check_max_payload_size(value: object, where: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigurationError(
            f"{where} must be a whole number of bytes >= 0 (0: no limit), not {value!r}"
        )
    return value


def allowed_modules() -> tuple[str, ...]:
    """Module prefixes whose functions workers may run (see :mod:`myrq.registry`)."""
    current = settings()
    try:
        return check_module_prefixes(current.allow)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{exc} (from {current.source['allow']})") from None


def max_payload_size() -> int:
    """Largest encoded payload accepted at enqueue and run by workers (0: no cap)."""
    current = settings()
    return _check_max_payload_size(
        current.max_payload_size, f"max_payload_size (from {current.source['max_payload_size']})"
    )


def secret_keys() -> tuple[bytes, ...]:
    """The configured signing keys: the first signs, all verify; ``()`` when none."""
    with _lock:
        configured = _overrides.get("secret_keys")
    if isinstance(configured, tuple):
        return configured
    return secret_keys_of(settings().secret_key)


def secret_key() -> bytes | None:
    """The key that signs new records, or None when records are not signed."""
    keys = secret_keys()
    return keys[0] if keys else None


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


def eager() -> bool:
    """True when queues made without an ``eager`` argument run jobs inside ``enqueue``.

    Raises:
        ConfigurationError: ``MYRQ_EAGER`` (or ``[tool.myrq] eager``) is not a yes or a no.
    """
    current = settings()
    value = current.eager.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigurationError(
        f"eager (from {current.source['eager']}) must be 1, true, yes or on, or 0, false, no "
        f"or off, not {current.eager!r}"
    )


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


__all__ = [
    "DEFAULT_BROKER_URL",
    "DEFAULT_FAILURE_TTL",
    "DEFAULT_KEY_PREFIX",
    "DEFAULT_MAX_PAYLOAD_SIZE",
    "DEFAULT_RESULT_TTL",
    "DEFAULT_SERIALIZER",
    "DEFAULT_TIMEOUT",
    "Settings",
    "allowed_modules",
    "configure",
    "eager",
    "get_broker",
    "get_serializer",
    "max_payload_size",
    "reset",
    "secret_key",
    "secret_keys",
    "secret_keys_of",
    "settings",
]
