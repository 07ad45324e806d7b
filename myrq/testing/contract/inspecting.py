"""Reading and deleting: get, delete, job_ids, status_counts."""

from __future__ import annotations

from myrq.backends.base import Broker
from myrq.testing.contract.kit import BrokerHooks, claim_one, put


class InspectingContract(BrokerHooks):
    """Reading and deleting: get, delete, job_ids, status_counts."""

    def test_delete_removes_record_queue_entry_and_lease(self, broker: Broker) -> None:
        put(broker, "a")
        put(broker, "b")
        put(broker, "c")
        claim_one(broker)
        assert broker.delete("a") and broker.delete("b")
        assert not broker.delete("never")
        assert broker.get("a") is None and broker.get("b") is None
        assert broker.queued_ids("q") == ["c"]
        assert broker.leased_ids() == []

    def test_delete_removes_the_id_from_every_queue(self, broker: Broker) -> None:
        put(broker, "a", queue="one")
        put(broker, "b", queue="two")
        self.push_id_only(broker, "one", "a")
        self.push_id_only(broker, "two", "a")
        assert broker.delete("a")
        assert broker.queued_ids("one") == [] and broker.queued_ids("two") == ["b"]

    def test_job_ids_and_status_counts(self, broker: Broker) -> None:
        for i in range(3):
            put(broker, f"s{i}")
        claim_one(broker)
        assert sorted(broker.job_ids()) == ["s0", "s1", "s2"]
        assert broker.status_counts() == {"pending": 2, "running": 1}
