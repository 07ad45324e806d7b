"""The ``MYRQ`` settings dict: checked, handed to :func:`myrq.configure`, and queues from it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from myrq import config
from myrq.exceptions import MyrqError
from myrq.queue import Queue

#: Keys of ``MYRQ`` that are :func:`myrq.configure`'s arguments (``broker_url`` is ``broker``).
PROCESS_KEYS = (
    "broker_url", "serializer", "key_prefix", "allow", "max_payload_size", "secret_key", "eager",
)  # fmt: skip
#: Keys of ``MYRQ`` for the Django integration itself.
DJANGO_KEYS = ("queues", "enqueue_on_commit", "database")
#: Options a queue of ``MYRQ["queues"]`` may set (``Queue``'s arguments).
QUEUE_KEYS = (
    "broker_url", "serializer", "default_timeout", "result_ttl", "failure_ttl", "default_retry",
    "max_payload_size", "eager",
)  # fmt: skip


def myrq_settings() -> dict[str, Any]:
    """``settings.MYRQ``, checked (an empty dict when it is not set).

    Raises:
        ImproperlyConfigured: not a dict, an unknown key, or a bad ``queues``.
    """
    value = getattr(settings, "MYRQ", {})
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(f"settings.MYRQ must be a dict, not {type(value).__name__}")
    unknown = sorted(set(value) - set(PROCESS_KEYS) - set(DJANGO_KEYS))
    if unknown:
        raise ImproperlyConfigured(
            f"settings.MYRQ has unknown key(s) {unknown}; the keys are "
            f"{', '.join(PROCESS_KEYS + DJANGO_KEYS)}"
        )
    queues = value.get("queues", {})
    if isinstance(queues, list | tuple):
        queues = {name: {} for name in queues}
    if not isinstance(queues, Mapping) or not all(
        isinstance(name, str) and isinstance(options, Mapping) for name, options in queues.items()
    ):
        raise ImproperlyConfigured(
            'settings.MYRQ["queues"] must map queue names to dicts of options '
            '({"default": {}, "mail": {"default_timeout": "1m"}}), or list names'
        )
    for name, options in queues.items():
        bad = sorted(set(options) - set(QUEUE_KEYS))
        if bad:
            raise ImproperlyConfigured(
                f'settings.MYRQ["queues"][{name!r}] has unknown option(s) {bad}; the options '
                f"are {', '.join(QUEUE_KEYS)}"
            )
    return {**value, "queues": dict(queues)}


def apply(*, reset: bool = False) -> None:
    """Hand ``MYRQ``'s process-wide settings to :func:`myrq.configure`.

    With ``reset``, earlier :func:`myrq.configure` settings are forgotten
    first (when a test changes ``settings.MYRQ``).

    Raises:
        ImproperlyConfigured: a value :func:`myrq.configure` refuses, with its message.
    """
    values = myrq_settings()
    given = {k: values[k] for k in PROCESS_KEYS if values.get(k) is not None}
    if "broker_url" in given:
        given["broker"] = given.pop("broker_url")
    if reset:
        config.reset()
    try:
        config.configure(**given)
    except MyrqError as exc:
        raise ImproperlyConfigured(f"settings.MYRQ: {exc}") from exc


def queue_names() -> list[str]:
    """The queues of ``MYRQ["queues"]``, in their order (``["default"]`` when none are set)."""
    return list(myrq_settings()["queues"]) or ["default"]


def get_queue(name: str = "default", **options: Any) -> Queue:
    """The queue ``name`` with its options from ``MYRQ["queues"]`` (``options`` win).

    Raises:
        ImproperlyConfigured: ``MYRQ["queues"]`` is set and does not list ``name``.
    """
    queues = myrq_settings()["queues"]
    if queues and name not in queues:
        raise ImproperlyConfigured(
            f'no queue {name!r} in settings.MYRQ["queues"]; the queues are {", ".join(queues)}'
        )
    merged = {**queues.get(name, {}), **options}
    if "broker_url" in merged:
        merged["broker"] = merged.pop("broker_url")
    return Queue(name, **merged)
