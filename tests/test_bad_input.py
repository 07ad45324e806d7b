"""Bad input gets a clear error that names the value, and nothing is written."""

from __future__ import annotations

import datetime
import types

import pytest

from myrq import (
    BrokerConnectionError,
    ConfigurationError,
    InvalidJobError,
    Queue,
    SerializationError,
    Worker,
    configure,
)
from myrq.backends import Broker, MemoryBroker, RedisBroker, broker_from_url
from myrq.serializers import resolve_serializer
from myrq.testing.redis_server import free_port
from tests import jobs


def assert_nothing_written(broker: Broker) -> None:
    assert list(broker.job_ids()) == []
    assert all(broker.queue_length(n) == 0 for n in broker.queue_names())


def test_lambda_is_refused_at_enqueue_time(broker: Broker) -> None:
    with pytest.raises(InvalidJobError, match="lambda"):
        Queue("default", broker=broker).enqueue(lambda: 1)
    assert_nothing_written(broker)


def test_nested_function_is_refused_naming_it(broker: Broker) -> None:
    def inner() -> int:
        return 1

    with pytest.raises(InvalidJobError, match=r"inner.*defined inside another function"):
        Queue("default", broker=broker).enqueue(inner)
    assert_nothing_written(broker)


def test_bound_method_of_a_local_object_is_refused(broker: Broker) -> None:
    obj = jobs.Maths()
    with pytest.raises(InvalidJobError, match=r"Maths.square.*bound to Maths instance"):
        Queue("default", broker=broker).enqueue(obj.square, 3)
    assert_nothing_written(broker)


def test_function_of_main_script_is_refused() -> None:
    fake = types.FunctionType(jobs.add.__code__, {}, "script_func")
    fake.__module__ = "__main__"
    fake.__qualname__ = "script_func"
    with pytest.raises(InvalidJobError, match=r"__main__\.script_func.*importable module"):
        Queue("default", broker=MemoryBroker()).enqueue(fake)


@pytest.mark.parametrize("func", [42, None, "not a path", "bad..name", ""])
def test_non_function_is_refused(func: object) -> None:
    with pytest.raises(InvalidJobError, match="cannot enqueue|not a dotted path"):
        Queue("default", broker=MemoryBroker()).enqueue(func)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("arg", "type_name"),
    [
        (datetime.datetime(2026, 1, 1), "datetime.datetime"),
        ({1, 2}, "builtins.set"),
        (object(), "builtins.object"),
        (b"bytes", "builtins.bytes"),
    ],
)
def test_json_unencodable_argument_names_its_type_and_writes_nothing(
    broker: Broker, arg: object, type_name: str
) -> None:
    q = Queue("default", broker=broker)
    with pytest.raises(SerializationError, match=type_name.replace(".", r"\.")):
        q.enqueue(jobs.echo, 1, arg)
    with pytest.raises(SerializationError, match="pickle serializer"):
        q.enqueue_call(jobs.echo, kwargs={"nested": [{"deep": arg}]})
    assert_nothing_written(broker)


@pytest.mark.parametrize(
    "job_id", ["", "has space", "tab\there", "new\nline", "nul\x00", "x" * 201, 7, "\ud800"]
)
def test_invalid_job_id_is_refused(job_id: object) -> None:
    broker = MemoryBroker()
    with pytest.raises(InvalidJobError, match="invalid job id"):
        Queue("default", broker=broker).enqueue_call(jobs.add, (1, 2), job_id=job_id)  # type: ignore[arg-type]
    assert_nothing_written(broker)


@pytest.mark.parametrize("name", ["", "a:b", "sp ace", "{x}"])
def test_invalid_queue_name_is_refused(name: str) -> None:
    with pytest.raises(InvalidJobError, match="invalid queue name"):
        Queue(name, broker=MemoryBroker())


@pytest.mark.parametrize(
    "timeout", [0, -1, True, 1e10, float("inf"), float("nan"), "soon", "5 minutes", "-3s"]
)
def test_invalid_timeout_is_refused(timeout: object) -> None:
    with pytest.raises(InvalidJobError, match=r"timeout must be .*not"):
        Queue("default", broker=MemoryBroker()).enqueue_call(jobs.add, (1, 2), timeout=timeout)  # type: ignore[arg-type]


@pytest.mark.parametrize("ttl", [-2, "forever", "-5", True])
def test_invalid_ttl_is_refused(ttl: object) -> None:
    with pytest.raises(InvalidJobError, match="result_ttl must be a duration"):
        Queue("default", broker=MemoryBroker()).enqueue_call(jobs.add, (1, 2), result_ttl=ttl)  # type: ignore[arg-type]


def test_args_must_be_a_sequence() -> None:
    with pytest.raises(InvalidJobError, match="args must be a list or tuple, not str"):
        Queue("default", broker=MemoryBroker()).enqueue_call(jobs.add, "12")


def test_unknown_broker_scheme_names_it_and_lists_accepted() -> None:
    with pytest.raises(ConfigurationError) as info:
        broker_from_url("amqp://guest:secret@localhost/")
    msg = str(info.value)
    assert "'amqp'" in msg and "redis://" in msg and "memory://" in msg
    assert "secret" not in msg
    with pytest.raises(ConfigurationError, match="amqp"):
        configure(broker="amqp://localhost/")


def test_unimportable_broker_class_is_named() -> None:
    with pytest.raises(ConfigurationError, match="no_such_pkg"):
        broker_from_url("no_such_pkg.mod:Broker")
    with pytest.raises(ConfigurationError, match="not a concrete myrq.backends.Broker subclass"):
        broker_from_url("tests.jobs:add")


def test_unknown_serializer_names_it_and_lists_accepted() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown serializer 'yaml'.*json, pickle"):
        resolve_serializer("yaml")
    with pytest.raises(ConfigurationError, match="yaml"):
        configure(serializer="yaml")
    with pytest.raises(ConfigurationError, match="not a myrq.serializers.Serializer"):
        resolve_serializer("tests.jobs:add")


def test_unreachable_redis_raises_a_connection_error_naming_the_url() -> None:
    port = free_port()
    broker = RedisBroker.from_url(f"redis://user:hunter2@127.0.0.1:{port}/0")
    with pytest.raises(BrokerConnectionError) as info:
        Queue("default", broker=broker).enqueue(jobs.add, 1, 2)
    msg = str(info.value)
    assert f"127.0.0.1:{port}" in msg and "redis-server" in msg
    assert "hunter2" not in msg and "***" in msg


def test_redis_client_decoding_responses_is_refused() -> None:
    import fakeredis

    with pytest.raises(ConfigurationError, match="decode_responses"):
        RedisBroker(fakeredis.FakeRedis(decode_responses=True))


def test_malformed_redis_url_fails_at_configure_time() -> None:
    with pytest.raises(ConfigurationError, match=r"invalid Redis URL.*notaport"):
        configure(broker="redis://host:notaport/0")


def test_description_must_be_text() -> None:
    with pytest.raises(InvalidJobError, match="description must be a str, not int"):
        Queue("default", broker=MemoryBroker()).enqueue(jobs.add, 1, 2, job_description=5)


def test_keyword_names_must_be_strings(broker: Broker) -> None:
    with pytest.raises(InvalidJobError, match="keyword argument names must be strings, not 1"):
        Queue("default", broker=broker).enqueue_call(jobs.echo, kwargs={1: 1})  # type: ignore[dict-item]
    assert_nothing_written(broker)


def test_broker_class_that_cannot_be_built_gets_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="not a concrete"):
        broker_from_url("myrq.backends:Broker")
    with pytest.raises(ConfigurationError, match="not a concrete"):
        configure(broker="myrq.backends.base:Broker")
    with pytest.raises(ConfigurationError, match="could not be built with no arguments"):
        broker_from_url("tests.plugins:NeedsArguments")


def test_redis_url_database_must_be_a_number() -> None:
    with pytest.raises(ConfigurationError, match="database number"):
        configure(broker="redis://127.0.0.1:6379/abc")


def test_an_option_that_shadows_a_parameter_of_the_function_is_refused() -> None:
    """jobs.delete_myself takes a job_id: enqueue() cannot tell which one is meant."""
    with pytest.raises(InvalidJobError, match=r"parameter 'job_id'.*enqueue_call"):
        Queue("default", broker=MemoryBroker()).enqueue(jobs.delete_myself, job_id="x")


@pytest.mark.parametrize(
    ("args", "kwargs", "needle"),
    [
        ((1,), {}, r"add\(\) cannot take these arguments: missing a required argument: 'b'"),
        ((1, 2), {"nope": 1}, "unexpected keyword argument 'nope'"),
        ((1, 2, 3), {}, "too many positional arguments"),
        ((1, 2), {"at_front": "yes"}, "at_front must be True or False"),
        ((1, 2), {"pipeline": object()}, "does not enqueue through a redis-py pipeline"),
    ],
)
def test_a_call_the_function_cannot_take_is_refused_at_enqueue(
    args: tuple[object, ...], kwargs: dict[str, object], needle: str
) -> None:
    broker = MemoryBroker()
    with pytest.raises(InvalidJobError, match=needle):
        Queue("default", broker=broker).enqueue(jobs.add, *args, **kwargs)
    assert broker.queue_length("default") == 0


def test_a_call_that_bound_before_does_not_let_another_shape_through() -> None:
    """Binding is remembered per call shape: other counts or names are still checked."""
    q = Queue("default", broker=MemoryBroker())
    q.enqueue(jobs.add, 1, 2)
    q.enqueue(jobs.add, 1, b=2)
    for args, kwargs in [((1,), {}), ((1, 2, 3), {}), ((1,), {"c": 2}), ((), {"b": 2})]:
        with pytest.raises(InvalidJobError, match="cannot take these arguments"):
            q.enqueue_call(jobs.add, args=args, kwargs=kwargs)
    assert q.count == 2


def test_rq_option_names_are_options_never_arguments() -> None:
    """retry=3 or at_front=True must not reach the function (they did once)."""
    broker = MemoryBroker()
    q = Queue("default", broker=broker)
    q.enqueue(jobs.add, 0, 0)
    job = q.enqueue(jobs.add, 1, 2, retry=3, at_front=True, job_timeout="5m", ttl="1h")
    assert job.kwargs == {} and job.args == [1, 2]
    assert job.retry is not None and job.retry.max == 3 and job.timeout == 300
    assert q.job_ids[0] == job.id  # at the front


@pytest.mark.parametrize("ttl", [10**400, 1e300, float("inf")])
def test_a_huge_ttl_is_cut_to_ten_years(ttl: object) -> None:
    job = Queue("default", broker=MemoryBroker()).enqueue_call(
        jobs.add, (1, 2), failure_ttl=ttl, result_ttl=ttl
    )
    assert job.failure_ttl == job.result_ttl == 10 * 365 * 24 * 3600


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("result_ttl", "an hour"),
        ("failure_ttl", "x"),
        ("result_ttl", -5),
        ("max_payload_size", "x"),
        ("max_payload_size", -1),
        ("default_timeout", 1e300),
    ],
)
def test_worker_settings_are_checked_when_the_worker_is_made(option: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=option):
        Worker(["default"], broker=MemoryBroker(), **{option: value})  # type: ignore[arg-type]
