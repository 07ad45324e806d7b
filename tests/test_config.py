"""Config: explicit > configure() > environment > pyproject.toml > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from myrq import ConfigurationError, Queue, Worker, configure
from myrq.backends import MemoryBroker, RedisBroker, broker_from_url
from myrq.config import get_broker, get_serializer, settings
from myrq.serializers import JSONSerializer, PickleSerializer
from tests.plugins import CountingBroker


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder with a pyproject.toml, as the cwd (run from a subfolder)."""
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "app"\n\n[tool.myrq]\nbroker_url = "memory://from-file"\n'
        'serializer = "pickle"\nkey_prefix = "file:"\n'
    )
    sub = tmp_path / "src" / "app"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    return tmp_path


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = settings()
    assert (s.broker_url, s.serializer, s.key_prefix) == (
        "redis://127.0.0.1:6379/0",
        "json",
        "myrq:",
    )
    assert isinstance(get_serializer(), JSONSerializer)
    assert isinstance(get_broker(), RedisBroker)  # built lazily: no connection made


def test_pyproject_overrides_defaults(project: Path) -> None:
    s = settings()
    assert (s.broker_url, s.serializer, s.key_prefix) == ("memory://from-file", "pickle", "file:")
    assert s.source["broker_url"] == str(project / "pyproject.toml")
    assert isinstance(Queue("x").serializer, PickleSerializer)


def test_environment_overrides_pyproject(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYRQ_BROKER_URL", "memory://from-env")
    monkeypatch.setenv("MYRQ_SERIALIZER", "json")
    s = settings()
    assert (s.broker_url, s.serializer) == ("memory://from-env", "json")
    assert s.source["serializer"] == "MYRQ_SERIALIZER"
    assert get_broker().url == "memory://from-env"


def test_configure_overrides_environment(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYRQ_BROKER_URL", "memory://from-env")
    configure(broker="memory://from-configure", serializer="json")
    assert get_broker().url == "memory://from-configure"
    assert isinstance(get_serializer(), JSONSerializer)


def test_explicit_arguments_override_everything(project: Path) -> None:
    configure(broker="memory://from-configure")
    mine = MemoryBroker()
    q = Queue("x", broker=mine, serializer=JSONSerializer())
    assert q.broker is mine and isinstance(q.serializer, JSONSerializer)
    assert Queue("x", broker="memory://explicit").broker.url == "memory://explicit"


def test_configure_accepts_instances() -> None:
    mine = MemoryBroker()
    ser = PickleSerializer()
    configure(broker=mine, serializer=ser)
    q = Queue("x")
    assert q.broker is mine and q.serializer is ser


def test_memory_url_is_one_shared_broker_per_url() -> None:
    assert get_broker("memory://a") is get_broker("memory://a")
    assert get_broker("memory://a") is not get_broker("memory://b")


def test_broker_selected_by_dotted_class_path() -> None:
    configure(broker="myrq.backends.memory:MemoryBroker")
    assert type(get_broker()) is MemoryBroker


@pytest.mark.parametrize("url", ["redis://h:1/0", "rediss://h:1/0", "unix:///tmp/x.sock"])
def test_redis_url_schemes(url: str) -> None:
    assert isinstance(get_broker(url), RedisBroker)


def test_unknown_key_in_pyproject_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.myrq]\nbroker = "memory://"\n')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match=r"unknown key\(s\) \['broker'\].*broker_url"):
        settings()


def test_empty_key_prefix_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="key_prefix"):
        configure(key_prefix="")


def test_configure_checks_a_dotted_path_without_building_the_broker() -> None:
    CountingBroker.made = 0
    configure(broker="tests.plugins:CountingBroker")
    assert CountingBroker.made == 0
    assert type(get_broker()) is CountingBroker and CountingBroker.made == 1
    with pytest.raises(ConfigurationError, match="not a concrete myrq.backends.Broker subclass"):
        configure(broker="tests.plugins:not_a_broker")


def test_key_prefix_never_replaces_a_configured_broker_class(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MYRQ_KEY_PREFIX", "other:")
    configure(broker="tests.plugins:CountingBroker")
    assert type(get_broker()) is CountingBroker
    assert get_broker("redis://h:1/0").prefix == "other:"  # type: ignore[attr-defined]


def test_fakeredis_url_runs_the_redis_scripts_in_process() -> None:
    """fakeredis:// is the Redis broker (and its Lua) without a server, shared per URL."""
    configure(broker="fakeredis://shared-in-test")
    producer = Queue("default")
    assert isinstance(producer.broker, RedisBroker)
    job = producer.enqueue("tests.jobs.add", 2, 3)
    # A broker built separately from the same URL sees the same fake server.
    other = broker_from_url("fakeredis://shared-in-test")
    assert other.queued_ids("default") == [job.id]
    assert Worker(["default"], broker=other).work(burst=True) == 1
    assert job.get_status().value == "finished" and job.result == 5
    assert broker_from_url("fakeredis://another").queue_length("default") == 0
