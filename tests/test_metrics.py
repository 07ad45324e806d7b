"""Prometheus metrics (myrq.contrib.prometheus), read by scraping the HTTP endpoint."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from myrq import Hooks, Job, JobStatus, Queue, Retry, Worker
from myrq import hooks as lifecycle
from myrq.backends import Broker, MemoryBroker, RedisBroker
from myrq.cli import main
from myrq.contrib import prometheus as contrib_prometheus
from myrq.contrib.prometheus import MetricsServer, PrometheusHooks, QueueCollector
from myrq.exceptions import ConfigurationError
from myrq.testing.redis_server import RedisServer, free_port
from tests import jobs, timejobs, workflowjobs

ROOT = Path(__file__).resolve().parent.parent


# -- helpers ---------------------------------------------------------------------------


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as reply:
        assert reply.status == 200
        return str(reply.read().decode("utf-8"))


def value(text: str, name: str, **labels: str) -> float | None:
    """The sample ``name{labels}`` of a scrape, or None when it is not there."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def server(registry: CollectorRegistry) -> Iterator[MetricsServer]:
    with MetricsServer(0, "127.0.0.1", registry) as served:
        yield served


def burst(broker: Broker, *hooked: Hooks, **options: Any) -> Worker:
    worker = Worker(["default"], broker=broker, allow=["tests"], hooks=list(hooked), **options)
    worker.work(burst=True)
    return worker


# -- what the hooks count --------------------------------------------------------------


def test_a_scrape_counts_runs_by_function_and_outcome(
    broker: Broker, registry: CollectorRegistry, server: MetricsServer, tmp_path: Path
) -> None:
    metrics = PrometheusHooks(registry=registry)
    q = Queue(broker=broker, hooks=[metrics])
    q.enqueue(jobs.add, 1, 2)
    q.enqueue(jobs.add, 3, 4)
    q.enqueue(jobs.fail, "no")
    q.enqueue(jobs.nap, 5, job_timeout=0.2)
    q.enqueue(timejobs.flaky, str(tmp_path / "m"), 1, retry=Retry(max=1, interval=0))
    burst(broker, metrics)

    text = scrape(server.url)
    runs = "myrq_job_runs_total"
    assert value(text, runs, queue="default", function="tests.jobs.add", outcome="finished") == 2
    assert value(text, runs, queue="default", function="tests.jobs.fail", outcome="failed") == 1
    assert value(text, runs, queue="default", function="tests.jobs.nap", outcome="timeout") == 1
    flaky = "tests.timejobs.flaky"
    assert value(text, runs, queue="default", function=flaky, outcome="retried") == 1
    assert value(text, runs, queue="default", function=flaky, outcome="finished") == 1
    assert value(text, runs, queue="default", function=flaky, outcome="failed") is None
    assert 'myrq_jobs_enqueued_total{function="tests.jobs.add",queue="default"} 2.0' in text
    # The histogram saw every run; the timed-out one ran for its 0.2 s.
    count = "myrq_job_duration_seconds_count"
    assert value(text, count, queue="default", function=flaky) == 2
    assert value(text, "myrq_job_duration_seconds_bucket", queue="default",
                 function="tests.jobs.nap", le="0.1") == 0  # fmt: skip
    assert value(text, "myrq_job_duration_seconds_bucket", queue="default",
                 function="tests.jobs.nap", le="0.5") == 1  # fmt: skip
    # Read from the broker at this scrape: what the queue holds now.
    assert 'myrq_queue_jobs{queue="default",state="pending"} 0.0' in text
    assert value(text, "myrq_queue_jobs", queue="default", state="finished") == 3
    assert value(text, "myrq_queue_jobs", queue="default", state="failed") == 1
    assert value(text, "myrq_queue_jobs", queue="default", state="timeout") == 1
    assert 'myrq_queue_oldest_job_age_seconds{queue="default"} 0.0' in text
    assert "myrq_broker_up 1.0" in text


def test_a_stopped_run_is_counted_stopped(registry: CollectorRegistry, tmp_path: Path) -> None:
    broker = MemoryBroker()
    metrics = PrometheusHooks(registry=registry)
    pid_file = tmp_path / "pid"
    job = Queue(broker=broker).enqueue(workflowjobs.sleep_then, str(pid_file), 30)

    def stop_when_started() -> None:
        deadline = time.monotonic() + 10
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        job.stop()

    stopper = threading.Thread(target=stop_when_started, daemon=True)
    stopper.start()
    burst(broker, metrics, lease_ttl=1)
    stopper.join(10)
    with MetricsServer(0, "127.0.0.1", registry) as served:
        text = scrape(served.url)
    assert job.get_status() is JobStatus.STOPPED
    func = "tests.workflowjobs.sleep_then"
    assert value(text, "myrq_job_runs_total", queue="default", function=func,
                 outcome="stopped") == 1  # fmt: skip
    assert value(text, "myrq_queue_jobs", queue="default", state="stopped") == 1


def test_a_job_refused_before_it_ran_counts_under_an_unknown_function(
    registry: CollectorRegistry, server: MetricsServer
) -> None:
    broker = MemoryBroker()
    metrics = PrometheusHooks(registry=registry)
    Queue(broker=broker).enqueue(jobs.echo, "x" * 200)
    burst(broker, metrics, max_payload_size=100)  # refused: the payload is not decoded
    text = scrape(server.url)
    assert value(text, "myrq_job_runs_total", queue="default", function="<unknown>",
                 outcome="failed") == 1  # fmt: skip
    assert "myrq_job_duration_seconds_count" not in text  # it did not run


def test_queue_depth_and_the_oldest_jobs_age_are_read_at_each_scrape(
    broker: Broker, registry: CollectorRegistry, server: MetricsServer
) -> None:
    q = Queue(broker=broker)
    first = q.enqueue(jobs.add, 1, 1)
    second = q.enqueue(jobs.add, 2, 2)
    q.enqueue(jobs.add, 3, 3)
    q.enqueue_in(3600, jobs.add, 4, 4)
    assert first.created_at is not None and second.created_at is not None
    now = first.created_at.timestamp() + 42.0
    registry.register(QueueCollector(broker, ["default", "empty"], clock=lambda: now))

    text = scrape(server.url)
    assert value(text, "myrq_queue_jobs", queue="default", state="pending") == 3
    assert value(text, "myrq_queue_jobs", queue="default", state="scheduled") == 1
    assert value(text, "myrq_queue_oldest_job_age_seconds", queue="default") == pytest.approx(42)
    assert value(text, "myrq_queue_jobs", queue="empty", state="pending") == 0
    assert value(text, "myrq_queue_oldest_job_age_seconds", queue="empty") == 0

    Worker(["default"], broker=broker, allow=["tests"]).work(burst=True, max_jobs=1)
    text = scrape(server.url)  # no hook ran: the collector read the broker again
    assert value(text, "myrq_queue_jobs", queue="default", state="pending") == 2
    assert value(text, "myrq_queue_jobs", queue="default", state="finished") == 1
    expected = now - second.created_at.timestamp()
    assert value(text, "myrq_queue_oldest_job_age_seconds", queue="default") == pytest.approx(
        expected
    )


def test_a_collector_without_queues_reads_every_queue_of_the_broker(
    registry: CollectorRegistry, server: MetricsServer
) -> None:
    broker = MemoryBroker()
    Queue("mail", broker=broker).enqueue(jobs.add, 1, 1)
    Queue("pdf", broker=broker).enqueue(jobs.add, 1, 1)
    registry.register(QueueCollector(broker))
    text = scrape(server.url)
    assert value(text, "myrq_queue_jobs", queue="mail", state="pending") == 1
    assert value(text, "myrq_queue_jobs", queue="pdf", state="pending") == 1


def test_an_unreachable_broker_is_broker_up_0_and_the_rest_still_answers(
    registry: CollectorRegistry, server: MetricsServer
) -> None:
    metrics = PrometheusHooks(registry=registry, queue_metrics=False)
    dead = RedisBroker.from_url(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    registry.register(QueueCollector(dead, ["default"]))
    Queue(broker=MemoryBroker(), hooks=[metrics]).enqueue(jobs.add, 1, 1)
    text = scrape(server.url)
    assert "myrq_broker_up 0.0" in text
    assert "myrq_queue_jobs{" not in text
    assert 'myrq_jobs_enqueued_total{function="tests.jobs.add",queue="default"} 1.0' in text
    dead.close()


def test_the_hooks_export_the_queues_of_the_workers_that_use_them(
    registry: CollectorRegistry, server: MetricsServer
) -> None:
    broker = MemoryBroker()
    metrics = PrometheusHooks(registry=registry)
    assert "myrq_queue_jobs{" not in scrape(server.url)  # no worker yet: nothing to read
    Queue("other", broker=broker).enqueue(jobs.add, 1, 1)
    burst(broker, metrics)  # serves "default" only
    text = scrape(server.url)
    assert value(text, "myrq_queue_jobs", queue="default", state="pending") == 0
    assert value(text, "myrq_queue_jobs", queue="other", state="pending") is None


def test_one_registry_takes_one_prometheus_hooks(registry: CollectorRegistry) -> None:
    PrometheusHooks(registry=registry)
    with pytest.raises(ConfigurationError, match="share one PrometheusHooks"):
        PrometheusHooks(registry=registry)


def test_unregister_frees_the_registry(registry: CollectorRegistry) -> None:
    PrometheusHooks(registry=registry).unregister()
    PrometheusHooks(registry=registry)  # no duplicate


# -- myrq worker --metrics-port --------------------------------------------------------


class _ScrapeAtStop(Hooks):
    """Scrapes the worker's endpoint when the worker stops (it still serves then)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.text = ""

    def worker_stopped(self, worker: Worker) -> None:
        self.text = scrape(self.url)


def test_worker_metrics_port_serves_while_the_worker_runs_and_stops_after() -> None:
    url = "memory://metrics-cli"
    q = Queue(broker=url)
    q.enqueue(jobs.add, 1, 2)
    q.enqueue(jobs.fail, "no")
    port = free_port()
    scraper = _ScrapeAtStop(f"http://127.0.0.1:{port}/metrics")
    lifecycle.install(scraper)
    try:
        code = main(
            ["worker", "--burst", "--broker", url, "--allow", "tests", "--metrics-port", str(port)]
        )
    finally:
        lifecycle.uninstall(scraper)
    assert code == 0
    text = scraper.text
    assert value(text, "myrq_job_runs_total", queue="default", function="tests.jobs.add",
                 outcome="finished") == 1  # fmt: skip
    assert value(text, "myrq_job_runs_total", queue="default", function="tests.jobs.fail",
                 outcome="failed") == 1  # fmt: skip
    assert value(text, "myrq_queue_jobs", queue="default", state="finished") == 1
    assert "python_info" in text  # prometheus_client's default registry, with its collectors
    # Afterwards: the port is free, the hooks gone, the default registry clean.
    with pytest.raises(urllib.error.URLError):
        scrape(scraper.url)
    assert not any(isinstance(h, PrometheusHooks) for h in lifecycle.active([]))
    PrometheusHooks(registry=REGISTRY).unregister()


def test_worker_metrics_port_without_prometheus_client_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "myrq.contrib.prometheus")
    code = main(["worker", "--burst", "--broker", "memory://no-prom", "--metrics-port", "0"])
    assert code == 1
    assert "pip install 'myrq[prometheus]'" in capsys.readouterr().err


def test_importing_the_module_without_prometheus_client_names_the_extra() -> None:
    code = "import sys; sys.modules['prometheus_client'] = None; import myrq.contrib.prometheus"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert "ImportError: myrq.contrib.prometheus needs prometheus-client: pip install " \
        "'myrq[prometheus]'" in done.stderr  # fmt: skip


def test_a_port_in_use_is_a_clear_error(registry: CollectorRegistry) -> None:
    with MetricsServer(0, "127.0.0.1", registry) as taken:
        message = f"--metrics-port {taken.port}: cannot listen"
        with (
            pytest.raises(ConfigurationError, match=message),
            contrib_prometheus.serve_worker_metrics(taken.port, "127.0.0.1"),
        ):
            pass
    PrometheusHooks(registry=REGISTRY).unregister()  # nothing was left registered


@pytest.mark.slow
def test_a_worker_process_serves_metrics_on_the_port_it_logs(
    redis_server: RedisServer, redis_client: object
) -> None:
    url = redis_server.url
    q = Queue(broker=RedisBroker.from_url(url))
    done = q.enqueue(jobs.add, 1, 2)
    slow = q.enqueue(jobs.nap, 1.5, "slept")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "myrq", "worker", "--burst", "--broker", url, "--allow", "tests",
         "--metrics-port", "0"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(worker, lines))
    reader.start()
    try:
        port = _logged_port(lines, deadline=time.monotonic() + 20)
        added = {"queue": "default", "function": "tests.jobs.add", "outcome": "finished"}
        text = ""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # until add has run and the slow job runs
            text = scrape(f"http://127.0.0.1:{port}/metrics")
            if (
                value(text, "myrq_job_runs_total", **added) == 1
                and value(text, "myrq_queue_jobs", queue="default", state="running") == 1
            ):
                break
            time.sleep(0.05)
        assert value(text, "myrq_job_runs_total", **added) == 1
        assert value(text, "myrq_queue_jobs", queue="default", state="running") == 1
        assert "process_resident_memory_bytes" in text  # the process collector is served
        assert worker.wait(timeout=30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
        reader.join(10)
        if worker.stderr is not None:
            worker.stderr.close()
    assert done.get_status() is JobStatus.FINISHED
    assert Job.fetch(slow.id, broker=q.broker).result == "slept"


def _read_lines(process: subprocess.Popen[str], into: queue.Queue[str]) -> None:
    for line in process.stderr or []:
        into.put(line)


def _logged_port(lines: queue.Queue[str], deadline: float) -> int:
    seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        seen.append(line)
        found = re.search(r"serving Prometheus metrics on http://0\.0\.0\.0:(\d+)/metrics", line)
        if found:
            return int(found.group(1))
    raise AssertionError("the worker never logged its metrics port:\n" + "".join(seen))


def test_public_names() -> None:
    assert set(contrib_prometheus.__all__) == {
        "BUCKETS", "MetricsServer", "PrometheusHooks", "QueueCollector",
    }  # fmt: skip
