"""The public names are pinned: removing or adding one is a deliberate change."""

import subprocess
import sys

import myrq
import myrq.backends
import myrq.serializers
import myrq.worker


def test_top_level_exports() -> None:
    assert set(myrq.__all__) == {
        "Backoff", "BrokerConnectionError", "BrokerError", "BrokerFullError", "Callback",
        "ConfigurationError", "Dependency", "DeserializationError", "Eager",
        "ErrorInfo", "FunctionLookupError", "FunctionNotAllowed", "Group", "Hooks", "InvalidArgumentError", "InvalidJobError", "Job", "JobError",
        "JobExistsError", "JobFailedError", "JobOutcome", "JobStatus", "JobStopped", "JobTimeout", "MyrqError", "NoRetry", "NoSuchJobError",
        "PayloadTooLargeError", "Queue", "Registry", "Retry", "RetryLater", "SerializationError", "SignatureError", "Task", "WaitTimeout", "Worker",
        "__version__", "configure", "defer_until_commit", "get_current_job", "task",
    }  # fmt: skip
    for name in myrq.__all__:
        assert hasattr(myrq, name)


def test_backend_and_serializer_exports() -> None:
    assert set(myrq.backends.__all__) == {
        "Broker", "BrokerFactory", "CronEntry", "CronJob", "Delivery", "EnqueueRequest", "Finish", "FinishRequest",
        "MemoryBroker", "MemoryStore", "Reaped", "RedisBroker", "Store", "StoreBroker", "Txn",
        "broker_from_url", "check_broker_spec", "register_scheme",
    }  # fmt: skip
    for name in myrq.backends.__all__:
        assert getattr(myrq.backends, name) is not None
    assert set(myrq.worker.__all__) == {
        "RestartPolicy", "Worker", "WorkerPool", "WorkerSettings", "WorkerStats",
    }  # fmt: skip
    assert set(myrq.serializers.__all__) == {
        "JSONSerializer", "PickleSerializer", "Serializer", "resolve_serializer",
    }  # fmt: skip


def test_every_error_is_a_myrq_error() -> None:
    errors = [
        getattr(myrq, n)
        for n in myrq.__all__
        if (n.endswith("Error") and n not in ("JobError", "ErrorInfo"))
        or n in ("FunctionNotAllowed", "WaitTimeout")
    ]
    assert all(issubclass(e, myrq.MyrqError) for e in errors)
    assert not issubclass(myrq.JobTimeout, Exception)


def test_package_docstring_example_runs() -> None:
    import doctest

    result = doctest.testmod(myrq, verbose=False)
    assert result.attempted >= 4 and result.failed == 0


def test_former_names_still_import() -> None:
    assert myrq.JobError is myrq.ErrorInfo
    assert myrq.backends.Finish is myrq.backends.FinishRequest


def test_importing_myrq_imports_no_backend_library() -> None:
    """The memory broker and custom brokers must not pay for redis-py's import."""
    code = (
        "import sys, myrq, myrq.backends, myrq.worker\n"
        "assert 'redis' not in sys.modules and 'fakeredis' not in sys.modules, 'eager import'\n"
        "from myrq.backends import RedisBroker\n"
        "assert 'redis' in sys.modules and RedisBroker.__name__ == 'RedisBroker'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
