"""Security: the function allow-list, signed payloads, payload size limits."""

from __future__ import annotations

import os
import pickle
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import myrq
from myrq import (
    ConfigurationError,
    FunctionNotAllowed,
    JobStatus,
    PayloadTooLargeError,
    Queue,
    Worker,
    config,
)
from myrq.backends import Broker, MemoryBroker
from myrq.registry import AllowList, FunctionRegistry
from myrq.schema import F_PAYLOAD, F_SIGNATURE
from myrq.testing.contract import BrokerContract
from tests import jobs


@pytest.fixture(autouse=True)
def _clean_config() -> Iterator[None]:
    config.reset()
    yield
    config.reset()


@pytest.fixture
def outside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory on sys.path, outside the allowed ``tests`` package."""
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def write_module(folder: Path, name: str, body: str) -> None:
    (folder / f"{name}.py").write_text(textwrap.dedent(body))
    sys.modules.pop(name, None)


def run(broker: Broker, **kw: object) -> Worker:
    w = Worker(["default"], broker=broker, **kw)  # type: ignore[arg-type]
    w.work(burst=True)
    return w


# -- allow-list ---------------------------------------------------------------------


def test_a_name_outside_the_allow_list_fails_and_imports_nothing(
    broker: Broker, outside: Path
) -> None:
    marker = outside / "imported"
    write_module(
        outside,
        "evil_mod_xyz",
        f"""
        open({str(marker)!r}, "w").close()
        def run():
            return "ran"
        """,
    )
    q = Queue("default", broker=broker)
    job = q.enqueue("evil_mod_xyz.run")
    good = q.enqueue(jobs.add, 1, 2)
    w = run(broker)
    assert job.get_status() is JobStatus.FAILED
    assert job.error is not None and job.error.type == "FunctionNotAllowed"
    assert "evil_mod_xyz.run" in job.error.message and "MYRQ_ALLOW" in job.error.message
    assert not marker.exists() and "evil_mod_xyz" not in sys.modules
    assert good.get_status() is JobStatus.FINISHED and w.stats.finished == 1


def test_os_system_named_in_a_record_never_runs(broker: Broker, tmp_path: Path) -> None:
    # The original design imported any dotted name: whoever could write to Redis
    # ran shell commands on every worker.
    target = tmp_path / "pwned"
    q = Queue("default", broker=broker)
    direct = q.enqueue("os.system", f"touch {target}")
    re_exported = q.enqueue("tests.jobs.system", f"touch {target}")  # from os import system
    through_module = q.enqueue("tests.jobs.os.system", f"touch {target}")
    run(broker)
    for job in (direct, re_exported, through_module):
        assert job.get_status() is JobStatus.FAILED, job
        assert job.error is not None and job.error.type == "FunctionNotAllowed", job.error
    assert not target.exists()


def test_allowed_module_prefix_stops_at_a_dot_boundary(outside: Path) -> None:
    allow = AllowList(["tests.jobs"], FunctionRegistry())
    assert allow.allows_module("tests.jobs") and allow.allows_module("tests.jobs.sub")
    assert not allow.allows_module("tests.jobsx") and not allow.allows_module("tests")
    write_module(outside, "tests_jobs_evil", "def run(): return 1\n")
    with pytest.raises(FunctionNotAllowed):
        allow.resolve("tests_jobs_evil.run")
    assert allow.resolve("tests.jobs.add")(2, 3) == 5


def test_registered_task_runs_without_its_module_being_allowed(
    broker: Broker, outside: Path
) -> None:
    write_module(
        outside,
        "task_mod_xyz",
        """
        import myrq

        @myrq.task
        def double(x):
            return 2 * x

        def not_registered(x):
            return x
        """,
    )
    import task_mod_xyz  # type: ignore[import-not-found]

    q = Queue("default", broker=broker)
    ok = q.enqueue(task_mod_xyz.double, 21)
    refused = q.enqueue(task_mod_xyz.not_registered, 1)
    run(broker)
    assert ok.get_status() is JobStatus.FINISHED and ok.result == 42
    assert refused.get_status() is JobStatus.FAILED
    assert refused.error is not None and refused.error.type == "FunctionNotAllowed"


def test_task_refuses_what_a_worker_could_not_name() -> None:
    with pytest.raises(myrq.InvalidJobError, match="lambda"):
        myrq.task(lambda: None)

    def nested() -> None: ...

    with pytest.raises(myrq.InvalidJobError, match="inside another function"):
        myrq.task(nested)


def test_worker_allow_adds_to_the_configured_prefixes(
    broker: Broker, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_module(outside, "extra_mod_xyz", "def three():\n    return 3\n")
    monkeypatch.setenv("MYRQ_ALLOW", "tests, extra_mod_xyz")
    assert config.allowed_modules() == ("tests", "extra_mod_xyz")
    job = Queue("default", broker=broker).enqueue("extra_mod_xyz.three")
    w = run(broker, allow=["somewhere.else"])
    assert w.allow.modules == ("tests", "extra_mod_xyz", "somewhere.else")
    assert job.get_status() is JobStatus.FINISHED and job.result == 3


def test_bad_allow_entries_are_refused_with_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="'os system'"):
        myrq.configure(allow=["os system"])
    monkeypatch.setenv("MYRQ_ALLOW", "good,bad-name")
    with pytest.raises(ConfigurationError, match="'bad-name'.*MYRQ_ALLOW"):
        config.allowed_modules()
    monkeypatch.setenv("MYRQ_ALLOW", "tests")
    with pytest.raises(ConfigurationError, match="'1x'"):
        Worker(["default"], broker="memory://", allow=["1x"])


def test_allow_list_from_pyproject(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MYRQ_ALLOW")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.myrq]\nallow = ["app.tasks", "app.more"]\nmax_payload_size = 2048\n'
    )
    monkeypatch.chdir(tmp_path)
    assert config.allowed_modules() == ("app.tasks", "app.more")
    assert config.max_payload_size() == 2048
    (tmp_path / "pyproject.toml").write_text('[tool.myrq]\nsecret_key = "hunter2"\n')
    with pytest.raises(ConfigurationError, match="MYRQ_SECRET_KEY") as err:
        config.secret_key()
    assert "hunter2" not in str(err.value)


# -- signed payloads ------------------------------------------------------------------


class _Bomb:
    """Unpickling this creates a file: proof that a payload was decoded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))


def test_signed_jobs_run_and_tampered_ones_fail_before_decoding(
    broker: Broker, hooks: BrokerContract, tmp_path: Path
) -> None:
    myrq.configure(secret_key="s3cret")
    q = Queue("default", broker=broker, serializer="pickle")
    good = q.enqueue(jobs.add, 1, 2)
    assert good.fields[F_SIGNATURE]
    tampered = q.enqueue(jobs.add, 1, 2)
    unsigned = q.enqueue(jobs.add, 1, 2)
    moved = q.enqueue(jobs.add, 5, 5)
    bomb_path = tmp_path / "decoded"
    payload = pickle.dumps(
        {"func_name": "tests.jobs.echo", "args": [_Bomb(str(bomb_path))], "kwargs": {}}
    )
    # Someone with write access to the broker but without the key:
    broker_fields = broker.get(tampered.id)
    assert broker_fields is not None
    hooks.write_fields(broker, tampered.id, {F_PAYLOAD: payload})
    hooks.write_fields(broker, unsigned.id, {F_PAYLOAD: payload, F_SIGNATURE: b""})
    other = broker.get(good.id)
    assert other is not None
    hooks.write_fields(
        broker, moved.id, {F_SIGNATURE: other[F_SIGNATURE]}
    )  # a valid sig, wrong job
    w = run(broker, serializer="pickle")
    assert good.get_status() is JobStatus.FINISHED and good.result == 3
    for job, needle in ((tampered, "wrong"), (unsigned, "has no signature"), (moved, "wrong")):
        assert job.get_status() is JobStatus.FAILED
        assert job.error is not None and job.error.type == "SignatureError"
        assert needle in job.error.message
    assert not bomb_path.exists()
    assert w.stats.failed == 3


def test_a_worker_without_a_key_runs_signed_jobs_and_a_keyed_one_refuses_others(
    broker: Broker,
) -> None:
    signed = Queue("default", broker=broker, secret_key=b"k1").enqueue(jobs.add, 2, 2)
    run(broker, secret_key=b"")
    assert signed.get_status() is JobStatus.FINISHED
    other_key = Queue("default", broker=broker, secret_key=b"k2").enqueue(jobs.add, 2, 2)
    run(broker, secret_key=b"k1")
    assert other_key.get_status() is JobStatus.FAILED
    assert other_key.error is not None and other_key.error.type == "SignatureError"


# -- payload size -------------------------------------------------------------------


def test_payload_above_the_limit_is_refused_at_enqueue_and_nothing_is_stored() -> None:
    broker = MemoryBroker()
    q = Queue("default", broker=broker, max_payload_size=1000)
    with pytest.raises(PayloadTooLargeError) as err:
        q.enqueue(jobs.echo, "x" * 2000)
    message = str(err.value)
    assert "1,000" in message and "max_payload_size" in message and "tests.jobs.echo" in message
    assert broker.queue_length("default") == 0 and list(broker.job_ids()) == []
    assert isinstance(err.value, myrq.InvalidJobError)
    assert Queue("default", broker=broker, max_payload_size=0).enqueue(jobs.echo, "x" * 2000)


def test_default_limit_is_one_mebibyte_and_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    broker = MemoryBroker()
    with pytest.raises(PayloadTooLargeError):
        Queue("default", broker=broker).enqueue(jobs.echo, "x" * (1024 * 1024))
    monkeypatch.setenv("MYRQ_MAX_PAYLOAD_SIZE", "2000000")
    Queue("default", broker=broker).enqueue(jobs.echo, "x" * (1024 * 1024))
    monkeypatch.setenv("MYRQ_MAX_PAYLOAD_SIZE", "lots")
    with pytest.raises(ConfigurationError, match="MYRQ_MAX_PAYLOAD_SIZE.*'lots'"):
        Queue("default", broker=broker)


def test_worker_fails_an_oversized_record_without_decoding_it(broker: Broker) -> None:
    big = Queue("default", broker=broker, max_payload_size=0).enqueue(jobs.echo, "y" * 5000)
    small = Queue("default", broker=broker).enqueue(jobs.add, 1, 1)
    w = run(broker, max_payload_size=4096)
    assert big.get_status() is JobStatus.FAILED
    assert big.error is not None and big.error.type == "PayloadTooLargeError"
    assert "4,096" in big.error.message
    assert small.get_status() is JobStatus.FINISHED and w.stats.finished == 1


# -- exceptions that cannot describe themselves ----------------------------------------


def test_an_exception_whose_str_and_repr_raise_still_fails_the_job(broker: Broker) -> None:
    q = Queue("default", broker=broker)
    bad = q.enqueue(jobs.raise_unprintable)
    after = q.enqueue(jobs.add, 2, 3)
    w = run(broker)
    assert bad.get_status() is JobStatus.FAILED
    assert bad.error is not None and bad.error.type == "tests.jobs.UnprintableError"
    assert "str() raised" in bad.error.message
    assert after.get_status() is JobStatus.FINISHED and w.stats.failed == 1


def test_env_is_not_leaking_the_key_in_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYRQ_SECRET_KEY", "topsecret-value")
    assert config.secret_key() == b"topsecret-value"
    assert "topsecret-value" not in repr(config.settings())
    assert os.environ["MYRQ_SECRET_KEY"] == "topsecret-value"


# -- what a signature covers, key rotation, a worker without a key --------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [("timeout", b"86400"), ("result_ttl", b"-1"), ("failure_ttl", b"0")],
)
def test_a_signature_covers_the_timeout_and_ttls(
    broker: Broker, hooks: BrokerContract, field: str, value: bytes
) -> None:
    """Someone without the key cannot give a job a longer timeout or keep it forever."""
    myrq.configure(secret_key="s3cret")
    job = Queue("default", broker=broker).enqueue_call(jobs.add, args=(1, 2), timeout=10)
    hooks.write_fields(broker, job.id, {field: value})
    run(broker)
    assert job.get_status() is JobStatus.FAILED
    assert job.error is not None and job.error.type == "SignatureError"


def test_a_signature_does_not_cover_fields_it_does_not_need(
    broker: Broker, hooks: BrokerContract
) -> None:
    myrq.configure(secret_key="s3cret")
    job = Queue("default", broker=broker).enqueue_call(jobs.add, args=(1, 2), description="a")
    hooks.write_fields(broker, job.id, {"description": b"changed by an operator"})
    run(broker)
    assert job.get_status() is JobStatus.FINISHED and job.result == 3


def test_keys_rotate_sign_with_the_first_accept_any(broker: Broker) -> None:
    old = Queue("default", broker=broker, secret_key="old").enqueue(jobs.add, 1, 1)
    new = Queue("default", broker=broker, secret_key=["new", "old"]).enqueue(jobs.add, 2, 2)
    other = Queue("default", broker=broker, secret_key="other").enqueue(jobs.add, 3, 3)
    Worker(["default"], broker=broker, secret_key="new,old").work(burst=True)
    assert old.get_status() is JobStatus.FINISHED and new.get_status() is JobStatus.FINISHED
    assert other.get_status() is JobStatus.FAILED
    # Signed with "new", the first of the producer's keys: a worker with only "old" refuses it.
    again = Queue("default", broker=broker, secret_key=["new", "old"]).enqueue(jobs.add, 4, 4)
    Worker(["default"], broker=broker, secret_key="old").work(burst=True)
    assert again.get_status() is JobStatus.FAILED


def test_keys_from_the_environment_rotate_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYRQ_SECRET_KEY", "new,old")
    assert config.secret_keys() == (b"new", b"old") and config.secret_key() == b"new"
    with pytest.raises(ConfigurationError, match="commas and no key"):
        myrq.configure(secret_key=",,")
    # A bytes key is one key, commas and all (one in nine random 32-byte keys has one).
    myrq.configure(secret_key=b"\x07,\x01\x02")
    assert config.secret_keys() == (b"\x07,\x01\x02",)
    myrq.configure(secret_key=[b"a,b", "c,d"])
    assert config.secret_keys() == (b"a,b", b"c,d")


def test_a_worker_without_a_key_warns_once_about_signed_jobs(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    q = Queue("default", broker=broker, secret_key="s3cret")
    for i in range(3):
        q.enqueue(jobs.add, i, i)
    Worker(["default"], broker=broker, secret_key=b"").work(burst=True)
    assert caplog.text.count("is signed, but this worker has no secret key") == 1
