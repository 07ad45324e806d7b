"""Optional integrations built on :mod:`myrq.hooks`, each with its own extra.

- :mod:`myrq.contrib.prometheus` (``pip install 'myrq[prometheus]'``): job
  counts and run times per queue, function and outcome, and queue depth read
  from the broker at scrape time; ``myrq worker --metrics-port``.
- :mod:`myrq.contrib.otel` (``pip install 'myrq[otel]'``): an OpenTelemetry
  span per enqueue and per run, the run linked to the enqueue through a W3C
  trace context carried in ``job.meta``.

Importing either module without its extra raises ImportError naming the
``pip install`` to run. This package imports neither.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from myrq.exceptions import ConfigurationError

__all__ = ["worker_metrics"]


@contextmanager
def worker_metrics(port: int | None) -> Iterator[None]:
    """``myrq worker --metrics-port PORT``: serve Prometheus metrics while the block runs.

    Does nothing when ``port`` is None. Otherwise installs
    :class:`~myrq.contrib.prometheus.PrometheusHooks` on prometheus_client's
    default registry (so metrics your job modules define there are served too)
    and serves it on ``http://0.0.0.0:PORT/metrics`` (``0``: a free port, logged);
    both are undone when the block ends.

    Raises:
        ConfigurationError: prometheus-client is not installed, or the port
            cannot be listened on.
    """
    if port is None:
        yield
        return
    try:
        from myrq.contrib.prometheus import serve_worker_metrics  # noqa: PLC0415 - an extra
    except ImportError as exc:
        raise ConfigurationError(f"--metrics-port: {exc}") from exc
    with serve_worker_metrics(port):
        yield
