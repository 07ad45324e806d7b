"""The behavioural contract every Broker must pass.

Use it from pytest::

    from myrq.testing.contract import BrokerContract

    class TestMyBroker(BrokerContract):
        @pytest.fixture
        def broker(self):
            b = MyBroker(...)      # fresh and empty
            yield b
            b.close()

Two tests need to corrupt storage in ways the contract offers no method for
(a queue entry whose record is gone; an id pushed twice). For brokers other
than the memory and Redis ones, implement ``drop_record_only(job_id)`` and
``push_id_only(queue, job_id)`` on the broker (test hooks only), or those
tests are skipped.

Times used here are short (leases of a few hundred ms) but each check allows
generous slack, so the suite is not flaky on a loaded machine.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from myrq.backends.base import Broker, EnqueueRequest, Finish
from myrq.exceptions import JobExistsError

W = "worker-1"


def _fields(n: int = 0, /, **extra: bytes) -> dict[str, bytes]:
    base = {
        "func": b'{"func_name":"m.f","args":[%d],"kwargs":{}}' % n,
        "status": b"pending",
        "timeout": b"60",
        "created_at": b"1700000000",
        "queue": b"q",
    }
    base.update(extra)
    return base


def _put(broker: Broker, job_id: str, queue: str = "q", **extra: bytes) -> None:
    fields = _fields(**extra)
    fields["queue"] = queue.encode()
    broker.enqueue(queue, job_id, fields)


def _claim(broker: Broker, queues: list[str] | None = None, lease: float = 30.0) -> tuple[str, str]:
    out = broker.dequeue(queues or ["q"], W, lease)
    assert len(out) == 1 and out[0].token is not None, out
    return out[0].job_id, out[0].token


class BrokerContract:
    """Subclass and provide a ``broker`` fixture yielding a fresh, empty broker."""

    # -- enqueue -----------------------------------------------------------

    def test_enqueue_stores_the_fields_and_queues_the_id(self, broker: Broker) -> None:
        _put(broker, "a")
        rec = broker.get("a")
        assert rec is not None
        assert rec["func"] == _fields()["func"]
        assert rec["status"] == b"pending"
        assert broker.queue_length("q") == 1
        assert broker.queued_ids("q") == ["a"]

    def test_enqueue_sets_pending_when_status_is_absent(self, broker: Broker) -> None:
        fields = _fields()
        del fields["status"]
        broker.enqueue("q", "a", fields)
        assert broker.get("a") == {**fields, "status": b"pending"}

    def test_queue_is_first_in_first_out(self, broker: Broker) -> None:
        for i in range(5):
            _put(broker, f"j{i}")
        assert broker.queued_ids("q") == [f"j{i}" for i in range(5)]
        assert broker.queued_ids("q", 1, 2) == ["j1", "j2"]
        assert [broker.dequeue(["q"], W, 30)[0].job_id for _ in range(5)] == [
            f"j{i}" for i in range(5)
        ]

    def test_binary_field_values_round_trip(self, broker: Broker) -> None:
        blob = bytes(range(256)) * 64
        _put(broker, "a", blob=blob)
        rec = broker.get("a")
        assert rec is not None and rec["blob"] == blob

    def test_enqueue_of_a_pending_id_is_refused_and_changes_nothing(self, broker: Broker) -> None:
        _put(broker, "a")
        with pytest.raises(JobExistsError):
            broker.enqueue("q", "a", _fields(7))
        assert broker.get("a") == {**_fields(), "status": b"pending"}
        assert broker.queued_ids("q") == ["a"]

    def test_enqueue_of_a_running_id_is_refused(self, broker: Broker) -> None:
        _put(broker, "a")
        _claim(broker)
        with pytest.raises(JobExistsError):
            broker.enqueue("q", "a", _fields(7))
        assert broker.queue_length("q") == 0

    def test_enqueue_replaces_a_finished_job(self, broker: Broker) -> None:
        _put(broker, "a")
        _, token = _claim(broker)
        assert broker.finish("a", token, {"status": b"finished", "result": b"1"}, None)
        broker.enqueue("q", "a", _fields(2))
        rec = broker.get("a")
        assert rec == {**_fields(2), "status": b"pending"}  # no stale result/attempts
        assert broker.queued_ids("q") == ["a"]

    def test_enqueue_again_clears_the_old_records_expiry(self, broker: Broker) -> None:
        _put(broker, "a")
        _, token = _claim(broker)
        assert broker.finish("a", token, {"status": b"finished"}, 0.3)
        broker.enqueue("q", "a", _fields(2))
        time.sleep(0.6)
        rec = broker.get("a")
        assert rec is not None and rec["status"] == b"pending"

    def test_enqueue_many_stores_all_and_reports_refused_ids(self, broker: Broker) -> None:
        _put(broker, "taken")
        refused = broker.enqueue_many(
            [EnqueueRequest("q", f"m{i}", _fields(i)) for i in range(3)]
            + [EnqueueRequest("q", "taken", _fields(9))]
        )
        assert refused == ["taken"]
        assert broker.queued_ids("q") == ["taken", "m0", "m1", "m2"]

    def test_queue_names_lists_queues_enqueued_to(self, broker: Broker) -> None:
        _put(broker, "a", queue="beta")
        _put(broker, "b", queue="alpha")
        assert set(broker.queue_names()) >= {"alpha", "beta"}
        assert broker.queue_names() == sorted(broker.queue_names())

    # -- dequeue -----------------------------------------------------------

    def test_dequeue_claims_the_job(self, broker: Broker) -> None:
        _put(broker, "a")
        [d] = broker.dequeue(["q"], W, 30)
        assert (d.job_id, d.queue, d.claimed) == ("a", "q", True)
        assert d.fields is not None and d.fields["func"] == _fields()["func"]
        rec = broker.get("a")
        assert rec is not None
        assert rec["status"] == b"running"
        assert rec["attempts"] == b"1"
        assert rec["worker"] == W.encode()
        assert rec["lease"] == str(d.token).encode()
        assert abs(float(rec["started_at"]) - time.time()) < 60
        assert broker.queue_length("q") == 0
        assert broker.leased_ids() == ["a"]

    def test_claim_records_the_queue_the_id_came_from(self, broker: Broker) -> None:
        fields = _fields()
        del fields["queue"]  # a foreign client may not write it
        broker.enqueue("other", "a", fields)
        [d] = broker.dequeue(["other"], W, 0.1)
        assert d.fields is not None and d.fields["queue"] == b"other"
        time.sleep(0.3)
        assert [(r.queue, r.outcome) for r in broker.reap(max_attempts=0)] == [
            ("other", "requeued")
        ]
        assert broker.queued_ids("other") == ["a"]

    def test_dequeue_returns_nothing_at_once_when_empty(self, broker: Broker) -> None:
        started = time.monotonic()
        assert broker.dequeue(["q", "other"], W, 30) == []
        assert time.monotonic() - started < 0.5

    def test_dequeue_takes_queues_in_priority_order(self, broker: Broker) -> None:
        _put(broker, "low1", queue="low")
        _put(broker, "high1", queue="high")
        _put(broker, "low2", queue="low")
        order = [broker.dequeue(["high", "low"], W, 30)[0].job_id for _ in range(3)]
        assert order == ["high1", "low1", "low2"]

    def test_dequeue_count_takes_a_batch_across_queues(self, broker: Broker) -> None:
        _put(broker, "h", queue="high")
        for i in range(3):
            _put(broker, f"l{i}", queue="low")
        got = broker.dequeue(["high", "low"], W, 30, count=3)
        assert [d.job_id for d in got] == ["h", "l0", "l1"]
        assert all(d.claimed for d in got)
        assert broker.queued_ids("low") == ["l2"]

    def test_dequeue_waits_for_a_job_enqueued_meanwhile(self, broker: Broker) -> None:
        def later() -> None:
            time.sleep(0.3)
            _put(broker, "late")

        t = threading.Thread(target=later)
        started = time.monotonic()
        t.start()
        got = broker.dequeue(["q"], W, 30, timeout=10)
        waited = time.monotonic() - started
        t.join()
        assert [d.job_id for d in got] == ["late"]
        assert 0.25 < waited < 5  # woke on the enqueue, not at the end of the timeout

    def test_dequeue_gives_up_after_its_timeout(self, broker: Broker) -> None:
        started = time.monotonic()
        assert broker.dequeue(["q"], W, 30, timeout=0.3) == []
        assert 0.25 < time.monotonic() - started < 5

    def test_id_without_record_is_dropped_unclaimed_and_not_recreated(self, broker: Broker) -> None:
        _put(broker, "gone")
        _put(broker, "next")
        # Delete just the record, leaving the id queued (what an expiring hash did).
        _drop_record_only(broker, "gone")
        got = broker.dequeue(["q"], W, 30)
        assert [(d.job_id, d.claimed, d.fields) for d in got] == [("gone", False, None)]
        assert broker.get("gone") is None
        assert "gone" not in broker.leased_ids()
        assert broker.dequeue(["q"], W, 30)[0].job_id == "next"

    def test_id_of_a_finished_job_is_dropped_unclaimed(self, broker: Broker) -> None:
        _put(broker, "a")
        _, token = _claim(broker)
        broker.finish("a", token, {"status": b"finished"}, None)
        _push_id_only(broker, "q", "a")
        [d] = broker.dequeue(["q"], W, 30)
        assert (d.job_id, d.claimed) == ("a", False)
        assert d.fields is not None and d.fields["status"] == b"finished"
        rec = broker.get("a")
        assert rec is not None and rec["status"] == b"finished" and rec["attempts"] == b"1"

    def test_each_job_is_delivered_once_to_concurrent_consumers(self, broker: Broker) -> None:
        n = 200
        broker.enqueue_many([EnqueueRequest("q", f"c{i}", _fields(i)) for i in range(n)])
        seen: list[str] = []
        lock = threading.Lock()

        def consume(name: str) -> None:
            while True:
                got = broker.dequeue(["q"], name, 30, count=3)
                if not got:
                    return
                with lock:
                    seen.extend(d.job_id for d in got if d.claimed)

        threads = [threading.Thread(target=consume, args=(f"w{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert Counter(seen) == Counter(f"c{i}" for i in range(n))

    # -- leases ------------------------------------------------------------

    def test_renew_extends_only_the_holders_lease(self, broker: Broker) -> None:
        _put(broker, "a")
        _, token = _claim(broker, lease=0.4)
        assert broker.renew("a", token, 30)
        assert not broker.renew("a", token + "x", 30)
        time.sleep(0.6)
        assert broker.reap(max_attempts=0) == []  # renewed: not expired
        assert broker.leased_ids() == ["a"]

    def test_finish_records_the_outcome_and_ends_the_lease(self, broker: Broker) -> None:
        _put(broker, "a")
        _, token = _claim(broker)
        assert broker.finish("a", token, {"status": b"finished", "result": b"42"}, None)
        rec = broker.get("a")
        assert rec is not None
        assert rec["status"] == b"finished" and rec["result"] == b"42"
        # The lease field may stay (a Redis command saved per job): with a final
        # status it holds nothing, as the next assertions show.
        assert broker.leased_ids() == []
        assert not broker.renew("a", token, 30)
        assert not broker.release("a", token)
        assert not broker.finish("a", token, {"status": b"failed"}, None)  # only once

    def test_finish_with_ttl_expires_the_record(self, broker: Broker) -> None:
        _put(broker, "a")
        _, token = _claim(broker)
        assert broker.finish("a", token, {"status": b"finished"}, 0.8)
        assert broker.get("a") is not None
        time.sleep(1.1)
        assert broker.get("a") is None

    def test_finish_with_ttl_zero_deletes_the_record(self, broker: Broker) -> None:
        _put(broker, "a")
        _, token = _claim(broker)
        assert broker.finish("a", token, {"status": b"finished"}, 0)
        assert broker.get("a") is None

    def test_finish_with_a_stale_token_writes_nothing(self, broker: Broker) -> None:
        _put(broker, "a")
        _, token = _claim(broker)
        assert not broker.finish("a", "not-" + token, {"status": b"failed"}, None)
        rec = broker.get("a")
        assert rec is not None and rec["status"] == b"running"

    def test_finish_after_delete_does_not_recreate_the_job(self, broker: Broker) -> None:
        _put(broker, "a")
        _, token = _claim(broker)
        assert broker.delete("a")
        assert not broker.finish("a", token, {"status": b"finished"}, None)
        assert broker.get("a") is None

    def test_release_puts_the_job_back_first_and_uncounted(self, broker: Broker) -> None:
        _put(broker, "a")
        _put(broker, "b")
        _, token = _claim(broker)
        assert broker.release("a", token)
        rec = broker.get("a")
        assert rec is not None
        assert rec["status"] == b"pending" and rec.get("attempts", b"0") == b"0"
        assert "lease" not in rec
        assert broker.queued_ids("q") == ["a", "b"]
        assert broker.leased_ids() == []
        assert not broker.release("a", token)

    def test_expired_lease_is_requeued_by_reap(self, broker: Broker) -> None:
        _put(broker, "a")
        _, token = _claim(broker, lease=0.8)
        assert broker.reap(max_attempts=0) == []  # not yet expired
        time.sleep(1.1)
        [r] = broker.reap(max_attempts=0)
        assert (r.job_id, r.queue, r.outcome, r.attempts) == ("a", "q", "requeued", 1)
        rec = broker.get("a")
        assert rec is not None and rec["status"] == b"pending" and "lease" not in rec
        assert broker.queued_ids("q") == ["a"]
        # Fencing: the worker that lost the lease can no longer write.
        assert not broker.finish("a", token, {"status": b"finished"}, None)
        assert not broker.renew("a", token, 30)
        # The next claim counts a second attempt.
        [d] = broker.dequeue(["q"], W, 30)
        assert d.fields is not None and d.fields["attempts"] == b"2"

    def test_reap_fails_a_job_abandoned_max_attempts_times(self, broker: Broker) -> None:
        _put(broker, "a", failure_ttl=b"100")
        for _ in range(2):
            _claim(broker, lease=0.1)
            time.sleep(0.3)
            outcomes = [r.outcome for r in broker.reap(max_attempts=2)]
        assert outcomes == ["failed"]
        rec = broker.get("a")
        assert rec is not None and rec["status"] == b"failed"
        assert b"abandoned 2 times" in rec["error"]
        assert "ended_at" in rec
        assert broker.queue_length("q") == 0 and broker.leased_ids() == []

    @pytest.mark.parametrize(
        ("record_ttl", "default_ttl", "kept_after"),
        [(b"0", None, False), (b"-1", 0.8, True), (None, 0.8, False), (None, None, True)],
    )
    def test_reap_keeps_an_abandoned_job_for_its_failure_ttl(
        self, broker: Broker, record_ttl: bytes | None, default_ttl: float | None,
        kept_after: bool,
    ) -> None:  # fmt: skip
        fields = _fields()
        if record_ttl is not None:
            fields["failure_ttl"] = record_ttl
        broker.enqueue("q", "a", fields)
        _claim(broker, lease=0.1)
        time.sleep(0.3)
        [r] = broker.reap(max_attempts=1, failure_ttl=default_ttl)
        assert r.outcome == "failed"
        if record_ttl != b"0":
            rec = broker.get("a")
            assert rec is not None and rec["status"] == b"failed"
        time.sleep(1.1)
        assert (broker.get("a") is not None) is kept_after

    def test_reap_of_a_deleted_job_recreates_nothing(self, broker: Broker) -> None:
        _put(broker, "a")
        _claim(broker, lease=0.1)
        _drop_record_only(broker, "a")
        time.sleep(0.3)
        assert [r.outcome for r in broker.reap(max_attempts=0)] == ["missing"]
        assert broker.get("a") is None
        assert broker.queue_length("q") == 0

    # -- finishing in batches and batch claims ----------------------------

    def test_finish_many_and_dequeue_writes_each_then_claims(self, broker: Broker) -> None:
        for name in ("a", "b", "c", "d"):
            _put(broker, name)
        first = broker.dequeue(["q"], W, 30)
        second = broker.dequeue(["q"], W, 30)
        finishes = [
            Finish(d.job_id, d.token or "", {"status": b"finished", "result": b"1"}, None)
            for d in (*first, *second)
        ] + [Finish("a", "stale-token", {"status": b"failed"}, None)]
        written, claimed = broker.finish_many_and_dequeue(
            finishes, queues=["q"], worker=W, lease=30, count=1
        )
        assert written == [True, True, False]
        assert [d.job_id for d in claimed] == ["c"] and claimed[0].claimed
        for name in ("a", "b"):
            rec = broker.get(name)
            assert rec is not None and rec["status"] == b"finished" and rec["result"] == b"1"
        assert broker.leased_ids() == ["c"]
        written, claimed = broker.finish_many_and_dequeue(
            [], queues=["q"], worker=W, lease=30, count=0
        )
        assert (written, claimed) == ([], []) and broker.queued_ids("q") == ["d"]

    def test_batch_claim_is_reaped_uncounted_then_runs_solo(self, broker: Broker) -> None:
        if not broker.batch_claims:
            pytest.skip(f"{type(broker).__name__} does not offer batch claims")
        for name in ("a", "b", "c"):
            _put(broker, name)
        got = broker.dequeue(["q"], W, 0.5, count=3)
        assert [d.job_id for d in got] == ["a", "b", "c"]
        for d in got:
            rec = broker.get(d.job_id)
            assert rec is not None and rec["batch"] == b"1" and rec["attempts"] == b"1"
            assert d.fields is not None and d.fields["batch"] == b"1"
        time.sleep(0.8)
        reaped = broker.reap(max_attempts=1)
        # The worker died holding the batch; which job had started is unknown, so
        # none is counted (max_attempts=1 would otherwise fail them all).
        assert sorted((r.job_id, r.outcome, r.attempts) for r in reaped) == [
            ("a", "requeued", 0), ("b", "requeued", 0), ("c", "requeued", 0)
        ]  # fmt: skip
        for name in ("a", "b", "c"):
            rec = broker.get(name)
            assert rec is not None and rec["status"] == b"pending"
            assert rec["solo"] == b"1" and rec["attempts"] == b"0"
        # Solo jobs are claimed alone, and are counted again.
        one = broker.dequeue(["q"], W, 0.5, count=3)
        assert [d.job_id for d in one] == ["a"] and broker.queued_ids("q") == ["b", "c"]
        assert one[0].fields is not None and one[0].fields["batch"] == b"0"
        time.sleep(0.8)
        [r] = broker.reap(max_attempts=1)
        assert (r.job_id, r.outcome, r.attempts) == (one[0].job_id, "failed", 1)

    def test_a_solo_job_is_never_claimed_with_others(self, broker: Broker) -> None:
        if not broker.batch_claims:
            pytest.skip(f"{type(broker).__name__} does not offer batch claims")
        _put(broker, "a")
        _put(broker, "s", solo=b"1")
        _put(broker, "b")
        first = broker.dequeue(["q"], W, 30, count=3)
        assert [d.job_id for d in first] == ["a"]  # stops before the solo job
        assert broker.queued_ids("q") == ["s", "b"]
        second = broker.dequeue(["q"], W, 30, count=3)
        assert [d.job_id for d in second] == ["s"]  # and takes it alone
        assert broker.queued_ids("q") == ["b"]

    # -- inspecting --------------------------------------------------------

    def test_delete_removes_record_queue_entry_and_lease(self, broker: Broker) -> None:
        _put(broker, "a")
        _put(broker, "b")
        _put(broker, "c")
        _claim(broker)
        assert broker.delete("a") and broker.delete("b")
        assert not broker.delete("never")
        assert broker.get("a") is None and broker.get("b") is None
        assert broker.queued_ids("q") == ["c"]
        assert broker.leased_ids() == []

    def test_delete_removes_the_id_from_every_queue(self, broker: Broker) -> None:
        _put(broker, "a", queue="one")
        _put(broker, "b", queue="two")
        _push_id_only(broker, "one", "a")
        _push_id_only(broker, "two", "a")
        assert broker.delete("a")
        assert broker.queued_ids("one") == [] and broker.queued_ids("two") == ["b"]

    def test_job_ids_and_status_counts(self, broker: Broker) -> None:
        for i in range(3):
            _put(broker, f"s{i}")
        _claim(broker)
        assert sorted(broker.job_ids()) == ["s0", "s1", "s2"]
        assert broker.status_counts() == {"pending": 2, "running": 1}


def _drop_record_only(broker: Broker, job_id: str) -> None:
    """Remove a record but leave its queue entry and lease (as a crash or expiry could)."""
    from myrq.backends.memory import MemoryBroker  # noqa: PLC0415
    from myrq.backends.redis import RedisBroker  # noqa: PLC0415

    if isinstance(broker, RedisBroker):
        broker.client.delete(broker.job_key(job_id))
    elif isinstance(broker, MemoryBroker):
        with broker._lock:
            broker._records.pop(job_id, None)
    else:
        drop = getattr(broker, "drop_record_only", None)
        if drop is None:
            pytest.skip(f"{type(broker).__name__} has no drop_record_only() test hook")
        drop(job_id)


def _push_id_only(broker: Broker, queue: str, job_id: str) -> None:
    """Push an id onto a queue without touching its record (a duplicate push)."""
    from myrq.backends.memory import MemoryBroker  # noqa: PLC0415
    from myrq.backends.redis import RedisBroker  # noqa: PLC0415

    if isinstance(broker, RedisBroker):
        broker.client.rpush(broker.queue_key(queue), job_id)
    elif isinstance(broker, MemoryBroker):
        with broker._lock:
            broker._queue(queue).append(job_id)
    else:
        push = getattr(broker, "push_id_only", None)
        if push is None:
            pytest.skip(f"{type(broker).__name__} has no push_id_only() test hook")
        push(queue, job_id)
