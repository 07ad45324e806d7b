"""Prometheus metrics for myrq, built on :mod:`myrq.hooks` (``pip install 'myrq[prometheus]'``).

Two parts, so the worker's loop never talks to Prometheus:

- :class:`PrometheusHooks` counts what happens in this process, as it
  happens: enqueues (in producers) and runs (in workers);
- :class:`QueueCollector` reads what the broker holds when Prometheus
  scrapes, from the HTTP server's thread: the jobs of each queue in each
  state and the age of the job at the head of each queue.

What is exported::

    myrq_jobs_enqueued_total{queue,function}            counter  stored by this process
    myrq_job_runs_total{queue,function,outcome}         counter  runs ended in this process
    myrq_job_duration_seconds{queue,function}           histogram  run time of those runs
    myrq_queue_jobs{queue,state}                        gauge  read at scrape time
    myrq_queue_oldest_job_age_seconds{queue}            gauge  read at scrape time
    myrq_broker_up                                      gauge  1 if the scrape read the broker

``outcome`` is the run's status (``finished``, ``failed``, ``timeout``,
``stopped``), or ``retried`` for a failed or timed-out run after which the
job runs again: ``failed`` and ``timeout`` count final failures only.
``function`` is ``<unknown>`` for jobs the worker refused before running them
(payload too large, bad signature, undecodable) or stopped before they
started: their payload was not decoded. ``state`` is each of the broker's
registries (:data:`myrq.backends.control.REGISTRY_STATES`); ``pending`` is the
queue's depth, and ended states count the records still kept.

Serve the registry with :class:`MetricsServer` (prometheus_client's
``start_http_server``), or ``myrq worker --metrics-port PORT``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any

try:
    import prometheus_client
    from prometheus_client import CollectorRegistry, Counter, Histogram
    from prometheus_client.core import GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "myrq.contrib.prometheus needs prometheus-client: pip install 'myrq[prometheus]'"
    ) from exc

from myrq import hooks as lifecycle
from myrq.backends import Broker
from myrq.backends.control import REGISTRY_STATES
from myrq.exceptions import BrokerError, ConfigurationError
from myrq.hooks import Hooks, JobOutcome
from myrq.schema import F_CREATED_AT, parse_number

if TYPE_CHECKING:
    from myrq.job import Job
    from myrq.worker import Worker

__all__ = ["BUCKETS", "MetricsServer", "PrometheusHooks", "QueueCollector"]

logger = logging.getLogger(__name__)

#: Run-time histogram buckets, in seconds: 5 ms to an hour.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
#: The ``function`` label of a job whose payload the worker did not decode.
UNKNOWN = "<unknown>"
#: Jobs between before_job and after_job that are remembered (a run cut short
#: by the worker's own crash never reaches after_job; beyond this, the oldest go).
_MAX_RUNNING = 10_000
#: Every interface: Prometheus scrapes from another host.
_ALL_INTERFACES = "0.0.0.0"  # noqa: S104


class PrometheusHooks(Hooks):
    """Counts enqueues and runs into ``registry``; see the module docstring.

    Args:
        registry: where the metrics live (default: prometheus_client's
            ``REGISTRY``). One PrometheusHooks per registry: share the instance
            between queues and workers.
        buckets: of the run-time histogram, in seconds.
        queue_metrics: also export, at scrape time, the queues of the workers
            that use these hooks (a :class:`QueueCollector`). With many workers,
            each exports the same values: aggregate with ``max by (queue, state)``,
            or turn this off and run one :class:`QueueCollector` elsewhere.

    Raises:
        ConfigurationError: ``registry`` already has myrq's metrics.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        buckets: Sequence[float] = BUCKETS,
        queue_metrics: bool = True,
    ) -> None:
        self.registry = prometheus_client.REGISTRY if registry is None else registry
        self._registered: list[Collector] = []
        try:
            self.enqueued = Counter(
                "myrq_jobs_enqueued",
                "Jobs this process stored, by queue and function.",
                ["queue", "function"],
                registry=self.registry,
            )
            self._registered.append(self.enqueued)
            self.runs = Counter(
                "myrq_job_runs",
                "Runs of jobs that ended in this process, by queue, function and outcome "
                "(retried: failed or timed out, and will run again).",
                ["queue", "function", "outcome"],
                registry=self.registry,
            )
            self._registered.append(self.runs)
            self.duration = Histogram(
                "myrq_job_duration_seconds",
                "Run time of the jobs that ran in this process, by queue and function.",
                ["queue", "function"],
                buckets=tuple(buckets),
                registry=self.registry,
            )
            self._registered.append(self.duration)
            self.queues = QueueCollector() if queue_metrics else None
            if self.queues is not None:
                self.registry.register(self.queues)
                self._registered.append(self.queues)
        except ValueError as exc:  # prometheus_client: "Duplicated timeseries in CollectorRegistry"
            self.unregister()
            raise ConfigurationError(
                f"this registry already has myrq's metrics ({exc}): share one PrometheusHooks, "
                "or pass registry=CollectorRegistry()"
            ) from exc
        self._running: dict[str, str] = {}  # job id -> function, from before_job to after_job
        self._lock = threading.Lock()

    def unregister(self) -> None:
        """Remove these metrics from the registry (the hooks then count into nothing)."""
        while self._registered:
            self.registry.unregister(self._registered.pop())

    # -- producers -----------------------------------------------------------------

    def after_enqueue(self, job: Job[Any]) -> None:
        self.enqueued.labels(job.origin, job.func_name).inc()

    # -- workers -------------------------------------------------------------------

    def worker_started(self, worker: Worker) -> None:
        if self.queues is not None:
            self.queues.watch(worker.broker, worker.queue_names)

    def before_job(self, job: Job[Any]) -> None:
        # The payload is checked and decoded by now (before_job comes only for a
        # job about to run), so decoding it again for its name is safe.
        func = job.func_name
        with self._lock:
            self._running[job.id] = func
            if len(self._running) > _MAX_RUNNING:
                del self._running[next(iter(self._running))]

    def after_job(self, job: Job[Any], outcome: JobOutcome) -> None:
        with self._lock:
            func = self._running.pop(job.id, None)
        queue = job.origin
        label = "retried" if outcome.will_retry else outcome.status.value
        self.runs.labels(queue, func or UNKNOWN, label).inc()
        if func is not None:  # it ran: a refused job has no run time
            self.duration.labels(queue, func).observe(outcome.elapsed)


class QueueCollector(Collector):
    """Reads the queues of one broker when Prometheus scrapes.

    Per queue and scrape: one :meth:`~myrq.backends.Broker.registry_count` per
    state, the head of the queue (``queued_ids(queue, 0, 0)``) and its record
    (``get``) for the oldest job's age; no scan. A broker error is logged and
    exported as ``myrq_broker_up 0``; the rest of the scrape still answers.

    Args:
        broker: the broker to read (None: the first one :meth:`watch` is given).
        queues: names to read (None: every queue the broker knows, read at
            each scrape with ``queue_names()``).
        clock: seconds since the epoch, for the age (the record's
            ``created_at`` is the producer's clock).
    """

    def __init__(
        self,
        broker: Broker | None = None,
        queues: Iterable[str] | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._broker = broker
        self._queues = None if queues is None else set(queues)
        self._clock = clock
        self._lock = threading.Lock()
        self._warned = False

    def watch(self, broker: Broker, queues: Iterable[str]) -> None:
        """Also read ``queues`` of ``broker`` (a worker's); another broker is ignored."""
        with self._lock:
            if self._broker is None:
                self._broker, self._queues = broker, set(queues)
            elif self._broker is broker:
                if self._queues is not None:
                    self._queues.update(queues)
            elif not self._warned:
                self._warned = True
                logger.warning(
                    "myrq metrics: a worker uses another broker (%r) than the one whose "
                    "queues are exported (%r); its queues are not read at scrape time",
                    broker,
                    self._broker,
                )

    def describe(self) -> Iterable[Metric]:
        """The metric names, without reading the broker (called at registration)."""
        return _families()

    def collect(self) -> Iterator[Metric]:
        jobs, age, up = _families()
        with self._lock:
            broker, queues = self._broker, self._queues
            names = None if queues is None else sorted(queues)
        if broker is None:
            return
        try:
            for queue in broker.queue_names() if names is None else names:
                for state in REGISTRY_STATES:
                    jobs.add_metric([queue, state], broker.registry_count(queue, state))
                oldest = self._oldest_age(broker, queue)
                if oldest is not None:
                    age.add_metric([queue], oldest)
        except BrokerError as exc:
            logger.warning("myrq metrics: could not read the queues of %r: %s", broker, exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield from (jobs, age, up)

    def _oldest_age(self, broker: Broker, queue: str) -> float | None:
        """Seconds since the job at the head of ``queue`` was created; 0 when empty.

        None when the head's record is gone (deleted or expired; the next claim
        skips it) or has no creation time.
        """
        head = broker.queued_ids(queue, 0, 0)
        if not head:
            return 0.0
        record = broker.get(head[0])
        created = None if record is None else parse_number(record.get(F_CREATED_AT))
        if created is None:
            return None
        return max(0.0, self._clock() - created)


def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
    return (
        GaugeMetricFamily(
            "myrq_queue_jobs",
            "Jobs of each queue in each state, read from the broker at scrape time "
            "(pending: waiting to run; ended states: records still kept).",
            labels=["queue", "state"],
        ),
        GaugeMetricFamily(
            "myrq_queue_oldest_job_age_seconds",
            "Seconds since the job at the head of the queue was created (0: empty queue).",
            labels=["queue"],
        ),
        GaugeMetricFamily(
            "myrq_broker_up", "1 if this scrape could read the broker's queues, else 0."
        ),
    )


class MetricsServer:
    """Serves ``registry`` over HTTP on a daemon thread (prometheus_client's
    ``start_http_server``) until :meth:`close`; a context manager.

    Args:
        port: to listen on; 0 picks a free one (then read :attr:`port`).
        addr: interface to bind (default: all, as Prometheus scrapes from afar).
        registry: what to serve (default: prometheus_client's ``REGISTRY``).
    """

    def __init__(
        self,
        port: int = 0,
        addr: str = _ALL_INTERFACES,
        registry: CollectorRegistry | None = None,
    ) -> None:
        served = prometheus_client.REGISTRY if registry is None else registry
        self._server, self._thread = prometheus_client.start_http_server(port, addr, served)
        self.addr = addr
        #: The port it listens on.
        self.port: int = self._server.server_port

    @property
    def url(self) -> str:
        """Where to scrape it from this host."""
        host = "127.0.0.1" if self.addr in (_ALL_INTERFACES, "") else self.addr
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@contextmanager
def serve_worker_metrics(port: int, addr: str = _ALL_INTERFACES) -> Iterator[MetricsServer]:
    """What ``myrq worker --metrics-port`` does: see :func:`myrq.contrib.worker_metrics`."""
    hooks = PrometheusHooks()
    try:
        server = MetricsServer(port, addr, hooks.registry)
    except (OSError, OverflowError) as exc:
        hooks.unregister()
        raise ConfigurationError(f"--metrics-port {port}: cannot listen there: {exc}") from exc
    lifecycle.install(hooks)
    logger.info("serving Prometheus metrics on http://%s:%d/metrics", addr, server.port)
    try:
        yield server
    finally:
        lifecycle.uninstall(hooks)
        server.close()
        hooks.unregister()
