"""Django integration (``pip install 'myrq[django]'``): settings, queues, a worker command, commits.

Add the app and a ``MYRQ`` dict to your settings::

    INSTALLED_APPS = [..., "myrq.contrib.django"]
    MYRQ = {
        "broker_url": "redis://127.0.0.1:6379/0",
        "allow": ["shop.tasks"],              # modules whose functions workers run
        "queues": {"default": {}, "mail": {"default_timeout": "1m", "default_retry": 3}},
        # "eager": True,                      # tests: run jobs inside enqueue
        # "enqueue_on_commit": True,          # the default: see below
    }

When Django starts, the app hands the process-wide settings (``broker_url``,
``serializer``, ``key_prefix``, ``allow``, ``max_payload_size``,
``secret_key``, ``eager``) to :func:`myrq.configure`, so every
:class:`~myrq.Queue`, ``@myrq.task``'s ``.delay()`` and the worker use them.
:func:`get_queue` gives a queue with its options from ``queues``.

With ``enqueue_on_commit`` (the default), an enqueue inside
``transaction.atomic()`` on the ``database`` (default ``"default"``) is held
and sent when the outermost transaction commits, through
``transaction.on_commit``; a rollback, or the rollback of the savepoint it
was made in, drops it. The returned job has its id at once. Outside a
transaction it is sent at once. See :mod:`myrq.contrib.django.db`.

``python manage.py myrq_worker [QUEUE ...]`` runs a worker with ``myrq
worker``'s options (``--burst``, ``--concurrency``...), on every queue of
``queues`` in their order when none is named, and closes stale database
connections around each job (:class:`~myrq.contrib.django.db.DjangoConnections`).
"""

from __future__ import annotations

try:
    import django  # noqa: F401 - only to fail early with the extra's name
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("myrq.contrib.django needs Django: pip install 'myrq[django]'") from exc

from myrq.contrib.django.conf import get_queue, queue_names

__all__ = ["get_queue", "queue_names"]
