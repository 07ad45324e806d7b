"""Enqueueing: what is stored, what is refused, what is replaced."""

from __future__ import annotations

import time

import pytest

from myrq.backends.base import Broker, EnqueueRequest
from myrq.exceptions import JobExistsError
from myrq.testing.contract.kit import BrokerHooks, W, claim_one, put, record


class ProducingContract(BrokerHooks):
    """Enqueueing: what is stored, what is refused, what is replaced."""

    def test_enqueue_stores_the_fields_and_queues_the_id(self, broker: Broker) -> None:
        put(broker, "a")
        rec = broker.get("a")
        assert rec is not None
        assert rec["func"] == record()["func"]
        assert rec["status"] == b"pending"
        assert broker.queue_length("q") == 1
        assert broker.queued_ids("q") == ["a"]

    def test_enqueue_sets_pending_when_status_is_absent(self, broker: Broker) -> None:
        fields = record()
        del fields["status"]
        broker.enqueue("q", "a", fields)
        assert broker.get("a") == {**fields, "status": b"pending"}

    def test_queue_is_first_in_first_out(self, broker: Broker) -> None:
        for i in range(5):
            put(broker, f"j{i}")
        assert broker.queued_ids("q") == [f"j{i}" for i in range(5)]
        assert broker.queued_ids("q", 1, 2) == ["j1", "j2"]
        assert [broker.dequeue(["q"], W, 30)[0].job_id for _ in range(5)] == [
            f"j{i}" for i in range(5)
        ]

    def test_binary_field_values_round_trip(self, broker: Broker) -> None:
        blob = bytes(range(256)) * 64
        put(broker, "a", blob=blob)
        rec = broker.get("a")
        assert rec is not None and rec["blob"] == blob

    def test_enqueue_of_a_pending_id_is_refused_and_changes_nothing(self, broker: Broker) -> None:
        put(broker, "a")
        with pytest.raises(JobExistsError):
            broker.enqueue("q", "a", record(7))
        assert broker.get("a") == {**record(), "status": b"pending"}
        assert broker.queued_ids("q") == ["a"]

    def test_enqueue_of_a_running_id_is_refused(self, broker: Broker) -> None:
        put(broker, "a")
        claim_one(broker)
        with pytest.raises(JobExistsError):
            broker.enqueue("q", "a", record(7))
        assert broker.queue_length("q") == 0

    def test_enqueue_replaces_a_finished_job(self, broker: Broker) -> None:
        put(broker, "a")
        _, token = claim_one(broker)
        assert broker.finish("a", token, {"status": b"finished", "result": b"1"}, None)
        broker.enqueue("q", "a", record(2))
        rec = broker.get("a")
        assert rec == {**record(2), "status": b"pending"}  # no stale result/attempts
        assert broker.queued_ids("q") == ["a"]

    def test_enqueue_again_clears_the_old_records_expiry(self, broker: Broker) -> None:
        put(broker, "a")
        _, token = claim_one(broker)
        assert broker.finish("a", token, {"status": b"finished"}, 0.3)
        broker.enqueue("q", "a", record(2))
        time.sleep(0.6)
        rec = broker.get("a")
        assert rec is not None and rec["status"] == b"pending"

    def test_enqueue_many_stores_all_and_reports_refused_ids(self, broker: Broker) -> None:
        put(broker, "taken")
        refused = broker.enqueue_many(
            [EnqueueRequest("q", f"m{i}", record(i)) for i in range(3)]
            + [EnqueueRequest("q", "taken", record(9))]
        )
        assert refused == ["taken"]
        assert broker.queued_ids("q") == ["taken", "m0", "m1", "m2"]

    def test_queue_names_lists_queues_enqueued_to(self, broker: Broker) -> None:
        put(broker, "a", queue="beta")
        put(broker, "b", queue="alpha")
        assert set(broker.queue_names()) >= {"alpha", "beta"}
        assert broker.queue_names() == sorted(broker.queue_names())
