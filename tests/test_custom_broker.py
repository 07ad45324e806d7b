"""A broker written outside myrq (examples/sqlite_broker.py), selected by config.

Shows the "Writing a broker" path end to end: a Broker subclass named by a
dotted path (or a registered URL scheme) in config passes the shared contract
suite and runs jobs through Queue and Worker.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import myrq.backends.selection
from examples.sqlite_broker import SQLiteBroker
from myrq import Queue, Worker, config, configure
from myrq.backends import Broker, register_scheme
from myrq.testing.brokers import StoreBrokerContract
from myrq.testing.contract import BrokerContract

SPEC = "examples.sqlite_broker:SQLiteBroker"


@pytest.fixture
def sqlite_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register ``sqlite://`` for one test (a private copy of the scheme table)."""
    monkeypatch.setattr(myrq.backends.selection, "_SCHEMES", dict(myrq.backends.selection._SCHEMES))
    register_scheme("sqlite", SQLiteBroker.from_url)


# -- selection by config -------------------------------------------------------


def test_configure_with_a_dotted_path_selects_the_class() -> None:
    configure(broker=SPEC)
    b = config.get_broker()
    try:
        assert isinstance(b, SQLiteBroker)
        assert b.path == ":memory:"
        assert config.get_broker() is b  # cached: Queues and Workers built from config share it
    finally:
        b.close()


def test_environment_variable_selects_the_class(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYRQ_BROKER_URL", SPEC)
    b = config.get_broker()
    try:
        assert isinstance(b, SQLiteBroker)
        assert config.settings().source["broker_url"] == "MYRQ_BROKER_URL"
    finally:
        b.close()


def test_pyproject_selects_the_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text(f'[tool.myrq]\nbroker_url = "{SPEC}"\n')
    monkeypatch.chdir(tmp_path)
    b = config.get_broker()
    try:
        assert isinstance(b, SQLiteBroker)
        assert config.settings().source["broker_url"] == str(tmp_path / "pyproject.toml")
    finally:
        b.close()


@pytest.mark.usefixtures("sqlite_scheme")
def test_registered_scheme_selects_a_file_database(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    configure(broker=f"sqlite://{path}")
    b = config.get_broker()
    try:
        assert isinstance(b, SQLiteBroker)
        assert b.path == str(path)
        assert b.url == f"sqlite://{path}"
    finally:
        b.close()


# -- the shared contract suite ---------------------------------------------------


class TestSQLiteBrokerContract(StoreBrokerContract):
    """Every contract test, on an in-memory database and on a file, both built from config."""

    @pytest.fixture(params=["memory", "file"])
    def broker(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broker]:
        config.reset()  # so get_broker() builds a fresh one instead of a cached one
        if request.param == "memory":
            configure(broker=SPEC)
        else:
            request.getfixturevalue("sqlite_scheme")
            configure(broker=f"sqlite://{tmp_path / 'contract.db'}")
        b = config.get_broker()
        assert isinstance(b, SQLiteBroker)
        yield b
        b.close()


# -- end to end and across instances --------------------------------------------


def test_queue_and_worker_run_a_job_on_the_configured_broker() -> None:
    configure(broker=SPEC)
    b = config.get_broker()
    try:
        job = Queue("default", broker=b).enqueue("tests.jobs.add", 1, 2)
        assert Worker(["default"], broker=b).work(burst=True) == 1
        job.refresh()
        assert job.result == 3
        # Built without a broker argument, Queue and Worker find the same one in config.
        job2 = Queue("default").enqueue("tests.jobs.add", 40, 2)
        assert Worker(["default"]).work(burst=True) == 1
        job2.refresh()
        assert job2.result == 42
    finally:
        b.close()


def test_two_instances_on_one_file_share_jobs_and_wake_by_polling(tmp_path: Path) -> None:
    """Like two processes: no in-process wake-up, so the waiter finds the job by polling."""
    path = str(tmp_path / "shared.db")
    producer, consumer = SQLiteBroker(path), SQLiteBroker(path)
    try:

        def later() -> None:
            time.sleep(0.3)
            producer.enqueue("q", "j1", {"queue": b"q", "func": b"x"})

        t = threading.Thread(target=later)
        started = time.monotonic()
        t.start()
        got = consumer.dequeue(["q"], "w", 30, timeout=10)
        waited = time.monotonic() - started
        t.join()
        assert [(d.job_id, d.claimed) for d in got] == [("j1", True)]
        assert 0.25 < waited < 5
        rec = producer.get("j1")
        assert rec is not None and rec["status"] == b"running"
    finally:
        producer.close()
        consumer.close()


# -- the contract kit itself -----------------------------------------------------


def test_a_missing_hook_fails_with_its_name() -> None:
    """A user's broker gets every test; one needing an unwritten hook says which to write."""

    class TestMyBroker(BrokerContract):
        def make_broker(self) -> Broker:
            return SQLiteBroker()

    with pytest.raises(pytest.fail.Exception, match=r"contract hook drop_record_only\(\)"):
        TestMyBroker().drop_record_only(SQLiteBroker(), "a")
    with pytest.raises(pytest.fail.Exception, match=r"contract hook make_broker\(\)"):
        BrokerContract().make_broker()


def test_the_kit_says_to_install_pytest_when_it_is_missing() -> None:
    code = (
        "import sys; sys.modules['pytest'] = None\n"
        "try:\n"
        "    import myrq.testing.contract\n"
        "except ImportError as exc:\n"
        "    assert \"pip install 'myrq[testing]'\" in str(exc), exc\n"
        "else:\n"
        "    raise SystemExit('imported without pytest')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
