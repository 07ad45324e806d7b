"""Property tests: whatever bytes are stored, myrq's readers fail only in documented ways.

A record can be written by anyone who reaches the broker (another client, an
older version, a corrupted disk), so decoding it must never raise anything
but myrq's own errors, and a worker must never die of it.

Pickle is tested only with well-formed pickles of plain data, never with
arbitrary bytes: unpickling attacker-chosen bytes can run arbitrary code
(that is pickle's documented danger, and why it is opt-in), so fuzzing
``pickle.loads`` would run whatever callables Hypothesis happened to name.
"""

from __future__ import annotations

import contextlib
import json
import pickle
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from myrq.backends import Delivery, MemoryBroker
from myrq.codec import ErrorInfo, decode_payload, encode_payload
from myrq.exceptions import DeserializationError, MyrqError
from myrq.job import Job
from myrq.serializers import JSONSerializer, PickleSerializer
from myrq.status import JobStatus
from myrq.worker import Worker

SETTINGS = settings(max_examples=200, deadline=None)
JSON = JSONSerializer()
PICKLE = PickleSerializer()

DEEP = b"[" * 100_000
#: Byte values that look numeric or textual but break naive parsing.
NASTY = [b"", b"inf", b"-inf", b"nan", b"1e309", b"1e20", b"-1e15", b"1e-300", b"-0", b"0",
         b"1.5", b"\xff\xfe", b"\xed\xa0\x80", b"99999999999999999999999", b"1_000", b" 7 ",
         b"pending", b"running", b"finished", b"failed", b"timeout", b"null", b"{}", DEEP]  # fmt: skip

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
plain_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.frozensets(st.integers() | st.text(), max_size=4)
        | st.dictionaries(st.integers() | st.text() | st.none(), inner, max_size=4)
    ),
    max_leaves=12,
)
#: Things shaped more or less like a payload, so the shape checks are reached too.
payload_like = st.fixed_dictionaries(
    {},
    optional={
        "func_name": st.text() | json_values,
        "args": json_values,
        "kwargs": json_values,
    },
)


# -- decode_payload --------------------------------------------------------------


@SETTINGS
@given(st.binary() | json_values.map(lambda v: json.dumps(v).encode()) | payload_like.map(
    lambda v: json.dumps(v).encode()))  # fmt: skip
@example(DEEP)
@example(b"1" * 5000)  # more digits than int() accepts
@example(b"\xef\xbb\xbf{}")
@example(b'"\\ud800"')
@example(b'{"func_name": "a.b", "args": {"x": 1}}')
def test_decode_payload_json_raises_only_deserialization_error(raw: bytes) -> None:
    try:
        func_name, args, kwargs = decode_payload(JSON, raw)
    except DeserializationError:
        return
    assert isinstance(func_name, str) and func_name
    assert isinstance(args, list)
    assert isinstance(kwargs, dict) and all(isinstance(k, str) for k in kwargs)


@SETTINGS
@given(plain_values | payload_like | st.fixed_dictionaries(
    {"func_name": st.text(), "args": plain_values, "kwargs": plain_values}),
    st.integers(min_value=0, max_value=pickle.HIGHEST_PROTOCOL))  # fmt: skip
def test_decode_payload_pickle_of_plain_data_raises_only_deserialization_error(
    value: Any, protocol: int
) -> None:
    # Well-formed pickles only (see the module docstring).
    raw = pickle.dumps(value, protocol=protocol)
    try:
        func_name, args, kwargs = decode_payload(PICKLE, raw)
    except DeserializationError:
        return
    assert isinstance(func_name, str) and func_name
    assert isinstance(args, list)
    assert isinstance(kwargs, dict) and all(isinstance(k, str) for k in kwargs)


@SETTINGS
@given(st.text(min_size=1), st.lists(json_values, max_size=4),
       st.dictionaries(st.text(), json_values, max_size=4))  # fmt: skip
def test_payload_round_trips_through_both_serializers(
    func_name: str, args: list[Any], kwargs: dict[str, Any]
) -> None:
    for serializer in (JSON, PICKLE):
        got = decode_payload(serializer, encode_payload(serializer, func_name, args, kwargs))
        assert json.dumps(got, sort_keys=True) == json.dumps(
            (func_name, args, kwargs), sort_keys=True
        )


# -- ErrorInfo --------------------------------------------------------------------

error_like = st.fixed_dictionaries(
    {}, optional={"type": json_values, "message": json_values, "traceback": json_values}
)


@SETTINGS
@given(st.binary() | error_like.map(lambda v: json.dumps(v).encode())
       | json_values.map(lambda v: json.dumps(v).encode()))  # fmt: skip
@example(DEEP)
@example(b"\xff\xfe\x00")
@example(b'{"type": "X", "message": "\\ud800"}')
def test_job_error_from_bytes_never_raises(raw: bytes) -> None:
    err = ErrorInfo.from_bytes(raw)
    assert isinstance(err.type, str) and isinstance(err.message, str)
    assert isinstance(err.traceback, str)
    str(err)


any_text = st.text(alphabet=st.characters(exclude_categories=()))  # surrogates included


@SETTINGS
@given(any_text, any_text, any_text)
@example("ValueError", "half a pair: \ud800", "")
def test_job_error_round_trips_any_text(kind: str, message: str, tb: str) -> None:
    err = ErrorInfo(kind, message, tb)
    assert ErrorInfo.from_bytes(err.to_bytes()) == err


# -- Job -------------------------------------------------------------------------

FIELD_NAMES = ["func", "status", "timeout", "created_at", "result", "result_ttl", "description",
               "queue", "attempts", "started_at", "worker", "lease", "error", "ended_at",
               "failure_ttl", "signature"]  # fmt: skip
field_values = st.binary(max_size=64) | st.sampled_from(NASTY) | st.floats().map(
    lambda f: repr(f).encode())  # fmt: skip
records = st.dictionaries(
    st.sampled_from(FIELD_NAMES) | st.text(max_size=8), field_values, max_size=10
)

PROPERTIES = ["status", "fields", "result", "error", "func_name", "args", "kwargs", "origin",
              "timeout", "result_ttl", "failure_ttl", "description", "attempts", "worker_name",
              "created_at", "started_at", "ended_at", "lease_token", "is_finished", "is_failed"]  # fmt: skip
_BROKER = MemoryBroker()


@pytest.mark.parametrize("name", PROPERTIES)
@settings(max_examples=100, deadline=None)
@given(record=records)
@example(record=dict.fromkeys(FIELD_NAMES, b"inf"))
@example(record=dict.fromkeys(FIELD_NAMES, b"nan"))
@example(record=dict.fromkeys(FIELD_NAMES, b"1e20"))
@example(record=dict.fromkeys(FIELD_NAMES, b"\xff\xfe"))
@example(record=dict.fromkeys(FIELD_NAMES, DEEP))
def test_job_properties_raise_only_myrq_errors(name: str, record: dict[str, bytes]) -> None:
    """Job.result uses JSON here: arbitrary bytes must never reach pickle.loads."""
    job = Job("some-id", record, broker=_BROKER, serializer=JSON)
    with contextlib.suppress(MyrqError):
        getattr(job, name)
    repr(job)
    with contextlib.suppress(DeserializationError):
        job.get_status(refresh=False)


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [(p, f, v) for p, f in [("result_ttl", "result_ttl"), ("failure_ttl", "failure_ttl"),
                           ("attempts", "attempts"), ("created_at", "created_at"),
                           ("started_at", "started_at"), ("ended_at", "ended_at")]
     for v in (b"inf", b"nan", b"1e20", b"-1e15")]
    + [("lease_token", "lease", b"\xff\xfe"), ("error", "error", DEEP)],
)  # fmt: skip
def test_job_property_on_a_nasty_value(name: str, field: str, value: bytes) -> None:
    """The minimal cases the property test above finds, one per property, for a clear report."""
    job = Job("some-id", {field: value}, broker=_BROKER, serializer=JSON)
    with contextlib.suppress(MyrqError):
        getattr(job, name)


# -- Worker.process --------------------------------------------------------------

SAFE_FUNCS = ["tests.poisonjobs.ok", "tests.poisonjobs.echo", "tests.poisonjobs.fail",
              "tests.poisonjobs.return_set", "tests.poisonjobs.no_such_function",
              "no_such_module_xyz.func", "tests.poisonjobs"]  # fmt: skip
func_fields = st.binary(max_size=64) | st.fixed_dictionaries(
    {"func_name": st.sampled_from(SAFE_FUNCS), "args": st.lists(json_values, max_size=3),
     "kwargs": st.dictionaries(st.text(max_size=5), json_values, max_size=3)}
).map(lambda v: json.dumps(v).encode())  # fmt: skip
worker_records = st.fixed_dictionaries(
    {"func": func_fields},
    optional={name: field_values for name in FIELD_NAMES if name != "func"},
)
FINAL = {JobStatus.FINISHED.value, JobStatus.FAILED.value, JobStatus.TIMEOUT.value}


@SETTINGS
@given(record=worker_records)
@example(record={"func": b'{"func_name":"tests.poisonjobs.ok","args":[],"kwargs":{"\\ud800":1}}'})
@example(record={"func": b'{"func_name":"tests.poisonjobs.fail","args":["\\ud800"],"kwargs":{}}'})
def test_worker_process_never_raises_and_ends_every_claimed_job(record: dict[str, bytes]) -> None:
    broker = MemoryBroker()
    broker.enqueue("default", "fuzzed", record)
    worker = Worker(["default"], broker=broker, default_timeout=5)
    deliveries = broker.dequeue(["default"], worker.name, 30)
    assert len(deliveries) == 1
    [delivery] = deliveries
    status = worker.process(delivery)
    stored = broker.get("fuzzed")
    if delivery.claimed:
        assert status is not None and status.value in FINAL
        # Kept with its final status, or gone at once because its TTL field said so.
        assert stored is None or stored["status"].decode() == status.value
        assert broker.leased_ids() == []
    else:
        assert status is None and worker.stats.skipped == 1
        assert stored == record  # an unclaimed record is left exactly as it was


@SETTINGS
@given(record=worker_records, token=st.none() | st.text(max_size=10))
def test_worker_process_of_a_stray_delivery_never_raises(
    record: dict[str, bytes], token: str | None
) -> None:
    """A Delivery the broker never handed out: its outcome is fenced off, nothing written."""
    broker = MemoryBroker()
    worker = Worker(["default"], broker=broker, default_timeout=5)
    status = worker.process(Delivery("stray", "default", token, dict(record)))
    assert status is None
    assert broker.get("stray") is None
    assert worker.stats.skipped + worker.stats.lost_leases == 1
