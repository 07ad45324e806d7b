"""Poison input: records, payloads, results and exceptions that must not hurt a worker.

Each case runs on every broker (memory, fakeredis, real redis-server) unless
noted, and is followed by a good job that must finish: one bad job never stops
the worker.

===========================================  ===========================================================
Bad input                                    Outcome
===========================================  ===========================================================
``func`` is garbage bytes                    ``failed``, ``InvalidPayload``: "payload could not be decoded"
``func`` is truncated JSON                   ``failed``, ``InvalidPayload`` ("not valid JSON")
``func`` is JSON of the wrong shape          ``failed``, ``InvalidPayload`` (names what is wrong)
``func`` is a pickle, worker uses JSON       ``failed``, ``InvalidPayload``; nothing is unpickled
``func`` names no importable function        ``failed``, ``FunctionLookupError`` naming it
record has no ``func`` field                 ``failed``, ``InvalidPayload``
record has no ``status`` field               claimed like ``pending``: runs, ``finished``
record has no / a garbled ``timeout``        the worker's ``default_timeout`` applies (``timeout`` past it)
record has a garbled ``attempts`` field      run or ``failed``, never lost (Redis: currently lost, a bug)
id queued, its record gone                   dropped, ``stats.skipped`` += 1, no key re-created
result the serializer cannot encode          ``failed``, ``ResultSerializationError`` (never stays ``running``)
exception that cannot be pickled             ``failed`` with its type and message (only text is stored)
exception whose ``__str__`` raises (even     ``failed``, its type recorded, the message a placeholder;
  ``SystemExit``) or returns a non-str,        the worker goes on
  or whose ``__repr__`` raises
exception message with a lone surrogate      ``failed``, the message stored escaped
job raises ``SystemExit``,                   ``failed`` with that type; the worker goes on
  ``KeyboardInterrupt``, ``GeneratorExit``
re-enqueue of a ``pending``/``running`` id    ``JobExistsError`` naming the id; record and queue unchanged
re-enqueue of a ``finished``/``failed``/      allowed: the old record (result, error, attempts, TTL) is
  ``timeout`` id                               replaced by a fresh ``pending`` one, which runs
64 threads enqueue one id at once            exactly one job and one queue entry; 63 ``JobExistsError``
===========================================  ===========================================================
"""

from __future__ import annotations

import json
import pickle
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import fakeredis
import pytest
import redis

from myrq import Job, JobExistsError, JobStatus, Queue, Worker
from myrq.backends import Broker, MemoryBroker, RedisBroker
from myrq.serializers import PickleSerializer
from myrq.testing.contract import BrokerContract
from myrq.testing.redis_server import RedisServer
from tests import poisonjobs

GOOD = "tests.poisonjobs.ok"


def payload(func_name: str, *args: object, **kwargs: object) -> bytes:
    return json.dumps({"func_name": func_name, "args": list(args), "kwargs": kwargs}).encode()


def put(broker: Broker, job_id: str, **fields: bytes) -> None:
    """Store a record exactly as given (a foreign or corrupted writer) and queue its id."""
    broker.enqueue("default", job_id, {"queue": b"default", **fields})


def run_with_good_job_after(broker: Broker, **worker_kw: object) -> Worker:
    """Queue a good job behind whatever is queued, run a burst worker, check the good job ran."""
    good = Queue("default", broker=broker, serializer=worker_kw.get("serializer")).enqueue(  # type: ignore[arg-type]
        GOOD, "after"
    )
    w = Worker(["default"], broker=broker, lease_ttl=30, **worker_kw)  # type: ignore[arg-type]
    try:
        w.work(burst=True)
    except BaseException as exc:  # the worker itself must never die of a job
        pytest.fail(f"the worker died: {type(exc).__name__}: {exc}")
    assert good.get_status() is JobStatus.FINISHED, "the worker did not go on to the next job"
    assert good.result == "after"
    return w


def final(broker: Broker, job_id: str, serializer: object = None) -> Job:
    return Job.fetch(job_id, broker=broker, serializer=serializer)  # type: ignore[arg-type]


def assert_failed(job: Job, error_type: str, *needles: str) -> None:
    assert job.status is JobStatus.FAILED, f"job {job.id} is {job.status.value}, not failed"
    assert job.error is not None
    assert job.error.type == error_type
    for needle in needles:
        assert needle in job.error.message, (needle, job.error.message)
    assert job.id not in job.broker.leased_ids()


# -- payloads ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"\x00\xff\xfe garbage \x80\x81", "not valid JSON"),
        (payload(GOOD, 1, 2)[:-7], "not valid JSON"),  # truncated
        (b"", "not valid JSON"),
        (b"[1, 2, 3]", "decodes to a list"),
        (b'{"func_name": 5}', "no usable func_name"),
        (b'{"func_name": "tests.poisonjobs.ok", "args": "abc"}', "args must be a list"),
        (b'{"func_name": "tests.poisonjobs.ok", "kwargs": [1]}', "kwargs must be a mapping"),
    ],
    ids=["garbage", "truncated", "empty", "list", "bad-func-name", "args-str", "kwargs-list"],
)
def test_undecodable_payload_fails_the_job(broker: Broker, raw: bytes, needle: str) -> None:
    put(broker, "poison", func=raw, timeout=b"10")
    w = run_with_good_job_after(broker)
    job = final(broker, "poison")
    assert_failed(job, "InvalidPayload", "payload could not be decoded", needle)
    assert w.stats.failed == 1 and w.stats.finished == 1


def test_pickle_payload_is_never_unpickled_by_a_json_worker(broker: Broker, tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    raw = pickle.dumps(
        {"func_name": GOOD, "args": [poisonjobs.MarkerOnUnpickle(str(marker))], "kwargs": {}}
    )
    put(broker, "pickled", func=raw, timeout=b"10")
    run_with_good_job_after(broker)  # JSON worker (the default)
    job = final(broker, "pickled")
    assert_failed(job, "InvalidPayload", "not valid JSON")
    with pytest.raises(Exception, match="not valid JSON"):
        _ = job.args  # reading it back through Job (JSON) does not unpickle either
    assert not marker.exists(), "the JSON worker unpickled the payload and ran its code"
    # The same bytes do run code when unpickled: the check above is not vacuous.
    PickleSerializer().loads(raw)
    assert marker.read_text() == "unpickled"


def test_unimportable_function_fails_the_job(broker: Broker) -> None:
    put(broker, "nofunc", func=payload("tests.poisonjobs.no_such_function"), timeout=b"10")
    run_with_good_job_after(broker)
    assert_failed(final(broker, "nofunc"), "FunctionLookupError", "no_such_function")


# -- records with fields missing or garbled -------------------------------------


def test_record_without_func_fails_the_job(broker: Broker, hooks: BrokerContract) -> None:
    put(broker, "nofield", func=payload(GOOD), timeout=b"10")
    hooks.remove_fields(broker, "nofield", "func")
    run_with_good_job_after(broker)
    assert_failed(final(broker, "nofield"), "InvalidPayload", "payload could not be decoded")


def test_record_without_status_is_run_like_a_pending_one(
    broker: Broker, hooks: BrokerContract
) -> None:
    put(broker, "nostatus", func=payload(GOOD, "ran"), timeout=b"10")
    hooks.remove_fields(broker, "nostatus", "status")
    assert "status" not in (broker.get("nostatus") or {})
    w = run_with_good_job_after(broker)
    job = final(broker, "nostatus")
    assert job.status is JobStatus.FINISHED and job.result == "ran"
    assert w.stats.finished == 2 and job.attempts == 1


@pytest.mark.parametrize("timeout", [None, b"", b"abc", b"0", b"-5", b"nan"])
def test_record_without_a_usable_timeout_gets_the_workers_default(
    broker: Broker, timeout: bytes | None
) -> None:
    fields = {"func": payload("tests.poisonjobs.nap_then", 5, "slept")}
    if timeout is not None:
        fields["timeout"] = timeout
    put(broker, "notimeout", **fields)
    w = run_with_good_job_after(broker, default_timeout=0.3)
    job = final(broker, "notimeout")
    assert job.status is JobStatus.TIMEOUT, "no usable timeout must not mean 'no limit'"
    assert job.error is not None and "0.3s" in job.error.message
    assert w.stats.timed_out == 1


@pytest.mark.parametrize("attempts", [b"abc", b"1.5", b"99999999999999999999999"])
def test_record_with_garbled_attempts_is_not_lost(broker: Broker, attempts: bytes) -> None:
    put(broker, "badcount", func=payload(GOOD, "ran"), timeout=b"10", attempts=attempts)
    run_with_good_job_after(broker)
    job = final(broker, "badcount")
    # Run (attempts counted afresh) or failed with a reason, but never left
    # "pending" on no queue, where nothing would ever run it again.
    assert job.status in (JobStatus.FINISHED, JobStatus.FAILED), (
        f"job is {job.status.value}, on queue: {'badcount' in broker.queued_ids('default')}"
    )


def test_id_whose_record_is_gone_is_skipped_and_nothing_is_recreated(
    broker: Broker, hooks: BrokerContract
) -> None:
    put(broker, "ghost", func=payload(GOOD), timeout=b"10")
    hooks.drop_record_only(broker, "ghost")
    w = run_with_good_job_after(broker)
    assert w.stats.skipped == 1 and w.stats.finished == 1 and w.stats.failed == 0
    assert broker.get("ghost") is None
    assert "ghost" not in broker.leased_ids() and broker.queue_length("default") == 0
    if isinstance(broker, RedisBroker):
        assert broker.client.exists(broker.job_key("ghost")) == 0


# -- results and exceptions ----------------------------------------------------


@pytest.mark.parametrize(
    ("func", "needle"),
    [("return_set", "set"), ("return_surrogate", "str"), ("return_lock", "lock")],
)
def test_result_that_cannot_be_serialized_fails_the_job(
    broker: Broker, func: str, needle: str
) -> None:
    put(broker, "badresult", func=payload(f"tests.poisonjobs.{func}"), timeout=b"10")
    run_with_good_job_after(broker)
    job = final(broker, "badresult")
    assert_failed(job, "ResultSerializationError", needle, "json serializer")
    assert "result" not in job.fields


def test_result_that_cannot_be_pickled_fails_the_job(broker: Broker) -> None:
    pickler = PickleSerializer()
    job = Queue("default", broker=broker, serializer=pickler).enqueue(poisonjobs.return_lock)
    run_with_good_job_after(broker, serializer=pickler)
    assert_failed(final(broker, job.id, pickler), "ResultSerializationError", "pickle serializer")


@pytest.mark.parametrize("serializer", ["json", "pickle"])
def test_exception_that_cannot_be_pickled_fails_the_job(broker: Broker, serializer: str) -> None:
    job = Queue("default", broker=broker, serializer=serializer).enqueue(
        poisonjobs.raise_unpicklable
    )
    run_with_good_job_after(broker, serializer=serializer)
    assert_failed(
        final(broker, job.id, serializer), "tests.poisonjobs.CarriesALock", "holds a lock"
    )


@pytest.mark.parametrize(
    ("func", "error_type"),
    [
        ("raise_str_raises", "tests.poisonjobs.StrRaises"),
        ("raise_str_and_repr_raise", "tests.poisonjobs.StrAndReprRaise"),
        ("raise_str_returns_non_str", "tests.poisonjobs.StrReturnsNonStr"),
        ("raise_str_raises_system_exit", "tests.poisonjobs.StrRaisesSystemExit"),
    ],
)
def test_exception_that_cannot_be_printed_still_fails_the_job(
    broker: Broker, func: str, error_type: str
) -> None:
    put(broker, "unprintable", func=payload(f"tests.poisonjobs.{func}"), timeout=b"10")
    w = run_with_good_job_after(broker)
    job = final(broker, "unprintable")
    assert_failed(job, error_type)
    assert w.stats.failed == 1


def test_exception_message_with_a_lone_surrogate_fails_the_job(broker: Broker) -> None:
    put(broker, "surrogate", func=payload("tests.poisonjobs.raise_surrogate_message"),
        timeout=b"10")  # fmt: skip
    run_with_good_job_after(broker)
    assert_failed(final(broker, "surrogate"), "ValueError", "half a pair")


@pytest.mark.parametrize(
    ("func", "error_type"),
    [
        ("raise_system_exit", "SystemExit"),
        ("raise_keyboard_interrupt", "KeyboardInterrupt"),
        ("raise_generator_exit", "GeneratorExit"),
    ],
)
def test_base_exception_from_a_job_fails_only_the_job(
    broker: Broker, func: str, error_type: str
) -> None:
    put(broker, "base", func=payload(f"tests.poisonjobs.{func}"), timeout=b"10")
    w = run_with_good_job_after(broker)
    job = final(broker, "base")
    assert_failed(job, error_type)
    assert job.error is not None and error_type in job.error.traceback
    assert w.stats.failed == 1 and w.stats.finished == 1


# -- re-enqueueing an id -------------------------------------------------------


def test_reenqueue_of_a_pending_id_changes_nothing(broker: Broker) -> None:
    q = Queue("default", broker=broker)
    q.enqueue_call(poisonjobs.ok, args=("first",), job_id="same", description="first")
    before = broker.get("same")
    with pytest.raises(
        JobExistsError, match="'same' is already used by a pending or running job"
    ) as info:
        q.enqueue_call(poisonjobs.ok, args=("second",), job_id="same", timeout=5)
    assert info.value.job_ids == ["same"]
    assert broker.get("same") == before
    assert broker.queued_ids("default") == ["same"]


def test_reenqueue_of_a_running_id_changes_nothing(broker: Broker) -> None:
    q = Queue("default", broker=broker)
    q.enqueue_call(poisonjobs.ok, args=("first",), job_id="same")
    [delivery] = broker.dequeue(["default"], "w1", 30)
    assert delivery.claimed
    before = broker.get("same")
    assert before is not None and before["status"] == b"running"
    with pytest.raises(JobExistsError, match="same"):
        q.enqueue_call(poisonjobs.ok, args=("second",), job_id="same")
    assert broker.get("same") == before  # lease token, attempts, worker all intact
    assert broker.queue_length("default") == 0 and broker.leased_ids() == ["same"]
    # The running job's owner can still record its outcome: it was not disturbed.
    assert delivery.token is not None
    assert broker.finish("same", delivery.token, {"status": b"finished"}, None)


@pytest.mark.parametrize("first", ["finished", "failed", "timeout"])
def test_reenqueue_of_an_ended_id_replaces_the_old_record(broker: Broker, first: str) -> None:
    q = Queue("default", broker=broker, result_ttl=500, failure_ttl=500)
    func, args = {
        "finished": ("tests.poisonjobs.ok", ("old",)),
        "failed": ("tests.poisonjobs.fail", ("old",)),
        "timeout": ("tests.poisonjobs.nap_then", (5,)),
    }[first]
    q.enqueue_call(func, args=args, job_id="again", timeout=0.2 if first == "timeout" else 10)
    Worker(["default"], broker=broker).work(burst=True)
    old = broker.get("again")
    assert old is not None and old["status"] == first.encode()
    if isinstance(broker, RedisBroker):
        assert broker.client.ttl(broker.job_key("again")) > 0

    job = q.enqueue_call(poisonjobs.ok, args=("new",), job_id="again", result_ttl=-1)
    record = broker.get("again")
    assert record is not None and record["status"] == b"pending"
    for gone in ("result", "error", "ended_at", "started_at", "worker", "attempts"):
        assert gone not in record, f"old field {gone!r} survived the re-enqueue"
    assert broker.queued_ids("default") == ["again"]
    if isinstance(broker, RedisBroker):
        assert broker.client.ttl(broker.job_key("again")) == -1  # a queued job never expires
    run_with_good_job_after(broker)
    assert job.get_status() is JobStatus.FINISHED and job.result == "new" and job.attempts == 1


# -- concurrent enqueues of one id -----------------------------------------------


@pytest.fixture(params=["memory", "fakeredis", "redis"])
def broker_factory(request: pytest.FixtureRequest) -> Iterator[Callable[[], Broker]]:
    """Makes one broker per thread, all on the same storage (each with its own client)."""
    made: list[Broker] = []
    if request.param == "memory":
        shared = MemoryBroker()
        yield lambda: shared
        return
    if request.param == "fakeredis":
        server = fakeredis.FakeServer()

        def make() -> Broker:
            b = RedisBroker(fakeredis.FakeRedis(server=server))
            made.append(b)
            return b
    else:
        real: RedisServer = request.getfixturevalue("redis_server")
        request.getfixturevalue("redis_client")  # flushes the database before and after

        def make() -> Broker:
            b = RedisBroker(redis.Redis.from_url(real.url), url=real.url)
            made.append(b)
            return b

    yield make
    for b in made:
        b.close()


def test_concurrent_enqueues_of_one_id_make_exactly_one_job(
    broker_factory: Callable[[], Broker],
) -> None:
    n = 64
    brokers = [broker_factory() for _ in range(n)]
    barrier = threading.Barrier(n)
    outcomes: list[str] = []
    lock = threading.Lock()

    def enqueue(i: int) -> None:
        q = Queue("default", broker=brokers[i])
        barrier.wait(timeout=30)
        try:
            q.enqueue_call(poisonjobs.ok, args=(i,), job_id="contended")
            outcome = f"ok:{i}"
        except JobExistsError as exc:
            outcome = "exists" if exc.job_ids == ["contended"] else f"bad: {exc!r}"
        except Exception as exc:
            outcome = f"error: {exc!r}"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=enqueue, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(outcomes) == n
    winners = [o for o in outcomes if o.startswith("ok:")]
    assert len(winners) == 1, outcomes
    assert outcomes.count("exists") == n - 1, outcomes
    b = brokers[0]
    assert list(b.job_ids()) == ["contended"]
    assert b.queued_ids("default") == ["contended"]
    winner = int(winners[0].removeprefix("ok:"))
    assert Job.fetch("contended", broker=b).args == [winner]  # the winner's record, untouched
