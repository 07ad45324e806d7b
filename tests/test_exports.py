"""The public names are pinned: removing or adding one is a deliberate change."""

import myrq
import myrq.backends
import myrq.serializers


def test_top_level_exports() -> None:
    assert set(myrq.__all__) == {
        "BrokerConnectionError", "BrokerError", "ConfigurationError", "DeserializationError",
        "FunctionLookupError", "FunctionNotAllowed", "InvalidJobError", "Job", "JobError",
        "JobExistsError", "JobStatus", "JobTimeout", "MyrqError", "NoSuchJobError",
        "PayloadTooLargeError", "Queue", "SerializationError", "SignatureError", "Worker",
        "__version__", "configure", "task",
    }  # fmt: skip
    for name in myrq.__all__:
        assert hasattr(myrq, name)


def test_backend_and_serializer_exports() -> None:
    assert set(myrq.backends.__all__) == {
        "Broker", "Delivery", "EnqueueRequest", "Finish", "MemoryBroker", "Reaped", "RedisBroker",
        "broker_from_url", "register_scheme",
    }  # fmt: skip
    assert set(myrq.serializers.__all__) == {
        "JSONSerializer", "PickleSerializer", "Serializer", "resolve_serializer",
    }  # fmt: skip


def test_every_error_is_a_myrq_error() -> None:
    errors = [
        getattr(myrq, n)
        for n in myrq.__all__
        if (n.endswith("Error") and n != "JobError") or n == "FunctionNotAllowed"
    ]
    assert all(issubclass(e, myrq.MyrqError) for e in errors)
    assert not issubclass(myrq.JobTimeout, Exception)


def test_package_docstring_example_runs() -> None:
    import doctest

    result = doctest.testmod(myrq, verbose=False)
    assert result.attempted >= 4 and result.failed == 0
