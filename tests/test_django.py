"""The Django integration, on the real project in tests/djangoproject (SQLite, real processes).

Two parts. The end-to-end tests run the project as a user would, in
subprocesses: ``manage.py migrate``, a view called from ``manage.py shell``,
``manage.py myrq_worker --burst`` against a real redis-server. The tests of
the commit rules run in this process on the same project's settings, on an
in-memory SQLite database and a memory broker.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django
import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.test.utils import override_settings

from myrq import JobStatus, Queue, config
from myrq.backends import Broker, RedisBroker
from myrq.contrib.django import db as django_db
from myrq.contrib.django import get_queue
from myrq.contrib.django.management.commands.myrq_worker import worker_arguments
from myrq.job import Job
from myrq.testing.redis_server import RedisServer
from myrq.transaction import add_holder, defer_until_commit, remove_holder
from tests import eagerjobs

PROJECT = Path(__file__).resolve().parent / "djangoproject"
ROOT = PROJECT.parents[1]


# -- in this process: the commit rules ---------------------------------------------------------


@pytest.fixture(scope="module")
def project() -> Iterator[None]:
    """The test project's settings in this process, with a memory broker."""
    if not settings.configured:
        sys.path.insert(0, str(PROJECT))
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
        django.setup()  # MyrqConfig.ready() adds the holder
    else:
        add_holder(django_db.hold_until_commit)
    yield
    remove_holder(django_db.hold_until_commit)


@pytest.fixture
def queue(project: None) -> Iterator[Queue]:
    with override_settings(MYRQ={**settings.MYRQ, "broker_url": "memory://django-tests"}):
        q = get_queue("default")
        q.empty()
        yield q
    config.reset()


def test_an_enqueue_inside_atomic_waits_for_the_commit(queue: Queue) -> None:
    with transaction.atomic():
        job = queue.enqueue(eagerjobs.add, 1, 1)
        assert job.id and queue.count == 0
    assert queue.job_ids == [job.id]


def test_a_rollback_enqueues_nothing(queue: Queue) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        job = queue.enqueue(eagerjobs.add, 1, 1)
        raise RuntimeError
    assert queue.count == 0 and queue.broker.get(job.id) is None


def test_outside_a_transaction_it_is_sent_at_once(queue: Queue) -> None:
    job = queue.enqueue(eagerjobs.add, 1, 1)
    assert queue.job_ids == [job.id]


def test_a_savepoint_rolled_back_drops_its_own_jobs_only(queue: Queue) -> None:
    with transaction.atomic():
        first = queue.enqueue(eagerjobs.add, 1, 1)
        with pytest.raises(ValueError), transaction.atomic():
            dropped = queue.enqueue(eagerjobs.add, 2, 2)
            raise ValueError
        with transaction.atomic():
            inner = queue.enqueue(eagerjobs.add, 3, 3)
        last = queue.enqueue(eagerjobs.add, 4, 4)
    assert queue.job_ids == [first.id, inner.id, last.id]
    assert queue.broker.get(dropped.id) is None


def test_jobs_of_one_transaction_go_in_one_round_trip(queue: Queue, monkeypatch: Any) -> None:
    calls: list[int] = []
    original = type(queue.broker).enqueue_many

    def counting(self: Broker, requests: Any) -> list[str]:
        calls.append(len(requests))
        return original(self, requests)

    monkeypatch.setattr(type(queue.broker), "enqueue_many", counting)
    with transaction.atomic():
        for n in range(5):
            queue.enqueue(eagerjobs.add, n, n)
    assert calls == [5]


def test_the_order_with_other_on_commit_callbacks_is_kept(queue: Queue) -> None:
    order: list[str] = []
    with transaction.atomic():
        queue.enqueue(eagerjobs.add, 1, 1)
        transaction.on_commit(lambda: order.append(f"callback sees {queue.count}"))
        queue.enqueue(eagerjobs.add, 2, 2)
    assert order == ["callback sees 1"]  # the first job went before the callback, the second after
    assert queue.count == 2


def test_enqueue_on_commit_off_sends_at_once(project: None) -> None:
    values = {**settings.MYRQ, "broker_url": "memory://django-off", "enqueue_on_commit": False}
    with override_settings(MYRQ=values):
        q = get_queue()
        with transaction.atomic():
            job = q.enqueue(eagerjobs.add, 1, 1)
            assert q.job_ids == [job.id]
    config.reset()


def test_a_defer_block_inside_atomic_waits_for_the_database_commit(queue: Queue) -> None:
    with transaction.atomic():
        with defer_until_commit():
            job = queue.enqueue(eagerjobs.add, 1, 1)
        assert queue.count == 0
    assert queue.job_ids == [job.id]


def test_eager_settings_run_jobs_at_the_commit(project: None) -> None:
    values = {**settings.MYRQ, "broker_url": "memory://django-eager", "eager": True}
    values["allow"] = ["shop.tasks", "tests"]
    with override_settings(MYRQ=values):
        q = get_queue()
        with transaction.atomic():
            job = q.enqueue(eagerjobs.add, 20, 22, job_id="eager-at-commit")
            assert q.broker.get(job.id) is None
        assert Job.fetch(job.id, broker=q.broker).result == 42
    config.reset()


def test_settings_are_checked(project: None) -> None:
    for bad, match in (
        ({"brokr_url": "x"}, "brokr_url"),
        ({"queues": {"default": {"timeout": 1}}}, "timeout"),
        ({"broker_url": "nosuch://x"}, "nosuch"),
    ):
        with pytest.raises(ImproperlyConfigured, match=match), override_settings(MYRQ=bad):
            pass
    with override_settings(MYRQ={"queues": ["default"]}), pytest.raises(ImproperlyConfigured):
        get_queue("mail")
    config.reset()


def test_get_queue_takes_the_queue_options(project: None) -> None:
    with override_settings(MYRQ={**settings.MYRQ, "broker_url": "memory://django-options"}):
        assert get_queue("mail").default_timeout == 60
        assert get_queue("mail", default_timeout=5).default_timeout == 5
    config.reset()


def test_the_command_takes_every_option_of_myrq_worker() -> None:
    from myrq.cli import build_parser  # the CLI's own parser, whatever it holds today

    worker = build_parser()._subparsers._group_actions[0].choices["worker"]  # type: ignore[union-attr]
    cli = {s for a in worker._actions for s in a.option_strings} - {"-h", "--help"}
    assert cli and {s for a in worker_arguments() for s in a.option_strings} == cli


# -- the project as a user runs it: subprocesses, a real redis-server ---------------------------


def _env(tmp_path: Path, redis_server: RedisServer, on_commit: bool = True) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "PYTHONPATH": os.pathsep.join([str(PROJECT), str(ROOT)]),
        "MYRQ_TEST_DB": str(tmp_path / "db.sqlite3"),
        "MYRQ_TEST_BROKER": redis_server.url,
        "MYRQ_TEST_ON_COMMIT": "1" if on_commit else "0",
    }


def _manage(env: dict[str, str], *args: str, timeout: float = 60) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"manage.py {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


_POST = """
import json
from django.test import Client
response = Client(raise_request_exception=False).post("/orders/", {post})
print("RESULT", response.status_code, response.content.decode() or "{{}}")
"""


def _post(env: dict[str, str], **data: str) -> tuple[int, dict[str, Any]]:
    out = _manage(env, "shell", "-c", _POST.format(post=repr(data)))
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    _, status, body = line.split(" ", 2)
    return int(status), json.loads(body) if status == "200" else {}


def _orders(tmp_path: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        return db.execute("SELECT name, shipped FROM shop_order ORDER BY id").fetchall()


@pytest.mark.slow
def test_a_view_enqueues_on_commit_and_the_worker_command_ships_it(
    tmp_path: Path, redis_server: RedisServer, redis_client: Any
) -> None:
    env = _env(tmp_path, redis_server)
    _manage(env, "migrate", "--run-syncdb", "-v", "0")

    status, body = _post(env, name="ada")
    assert status == 200 and body["waiting_inside"] == 0  # not sent inside the transaction
    status, _ = _post(env, name="bob", fail="1")
    assert status == 500  # rolled back: no row, no job
    broker = RedisBroker.from_url(redis_server.url)
    assert broker.queued_ids("default") == [body["job"]]

    _manage(env, "myrq_worker", "--burst")

    job = Job.fetch(body["job"], broker=broker)
    assert job.status is JobStatus.FINISHED and job.result == "shipped ada"
    assert _orders(tmp_path) == [("ada", 1)]
    assert broker.queue_length("default") == 0


@pytest.mark.slow
@pytest.mark.parametrize("on_commit", [True, False])
def test_a_running_worker_reads_the_committed_row_only_with_enqueue_on_commit(
    tmp_path: Path, redis_server: RedisServer, redis_client: Any, on_commit: bool
) -> None:
    env = _env(tmp_path, redis_server, on_commit)
    _manage(env, "migrate", "--run-syncdb", "-v", "0")
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "myrq_worker", "--max-jobs", "1", "--lease-ttl", "5"],
        cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        broker = RedisBroker.from_url(redis_server.url)
        deadline = time.monotonic() + 30
        while not broker.workers() and time.monotonic() < deadline:
            time.sleep(0.05)  # the worker is waiting for jobs
        # The view holds its transaction open for a second after the enqueue.
        status, body = _post(env, name="cy", pause="1")
        assert status == 200
        output, _ = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    job = Job.fetch(body["job"], broker=broker)
    if on_commit:
        assert job.status is JobStatus.FINISHED, output
        assert _orders(tmp_path) == [("cy", 1)]
    else:  # sent at once: the worker ran it before the row was committed
        assert job.status is JobStatus.FAILED and job.error is not None, output
        assert job.error.type.endswith("DoesNotExist")
