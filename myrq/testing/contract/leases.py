"""Leases: renew, finish, release and reap, each fenced by the lease token."""

from __future__ import annotations

import time

import pytest

from myrq.backends.base import Broker
from myrq.testing.contract.kit import BrokerHooks, W, claim_one, put, record


class LeaseContract(BrokerHooks):
    """Leases: renew, finish, release and reap, each fenced by the lease token."""

    def test_renew_extends_only_the_holders_lease(self, broker: Broker) -> None:
        put(broker, "a")
        _, token = claim_one(broker, lease=0.4)
        assert broker.renew("a", token, 30)
        assert not broker.renew("a", token + "x", 30)
        time.sleep(0.6)
        assert broker.reap(max_attempts=0) == []  # renewed: not expired
        assert broker.leased_ids() == ["a"]

    def test_finish_records_the_outcome_and_ends_the_lease(self, broker: Broker) -> None:
        put(broker, "a")
        _, token = claim_one(broker)
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
        put(broker, "a")
        _, token = claim_one(broker)
        assert broker.finish("a", token, {"status": b"finished"}, 0.8)
        assert broker.get("a") is not None
        time.sleep(1.1)
        assert broker.get("a") is None

    def test_finish_with_ttl_zero_deletes_the_record(self, broker: Broker) -> None:
        put(broker, "a")
        _, token = claim_one(broker)
        assert broker.finish("a", token, {"status": b"finished"}, 0)
        assert broker.get("a") is None

    def test_finish_with_a_stale_token_writes_nothing(self, broker: Broker) -> None:
        put(broker, "a")
        _, token = claim_one(broker)
        assert not broker.finish("a", "not-" + token, {"status": b"failed"}, None)
        rec = broker.get("a")
        assert rec is not None and rec["status"] == b"running"

    def test_finish_after_delete_does_not_recreate_the_job(self, broker: Broker) -> None:
        put(broker, "a")
        _, token = claim_one(broker)
        assert broker.delete("a")
        assert not broker.finish("a", token, {"status": b"finished"}, None)
        assert broker.get("a") is None

    def test_release_puts_the_job_back_first_and_uncounted(self, broker: Broker) -> None:
        put(broker, "a")
        put(broker, "b")
        _, token = claim_one(broker)
        assert broker.release("a", token)
        rec = broker.get("a")
        assert rec is not None
        assert rec["status"] == b"pending" and rec.get("attempts", b"0") == b"0"
        assert "lease" not in rec
        assert broker.queued_ids("q") == ["a", "b"]
        assert broker.leased_ids() == []
        assert not broker.release("a", token)

    def test_expired_lease_is_requeued_by_reap(self, broker: Broker) -> None:
        put(broker, "a")
        _, token = claim_one(broker, lease=0.8)
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
        put(broker, "a", failure_ttl=b"100")
        for _ in range(2):
            claim_one(broker, lease=0.1)
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
        fields = record()
        if record_ttl is not None:
            fields["failure_ttl"] = record_ttl
        broker.enqueue("q", "a", fields)
        claim_one(broker, lease=0.1)
        time.sleep(0.3)
        [r] = broker.reap(max_attempts=1, failure_ttl=default_ttl)
        assert r.outcome == "failed"
        if record_ttl != b"0":
            rec = broker.get("a")
            assert rec is not None and rec["status"] == b"failed"
        time.sleep(1.1)
        assert (broker.get("a") is not None) is kept_after

    def test_reap_of_a_deleted_job_recreates_nothing(self, broker: Broker) -> None:
        put(broker, "a")
        claim_one(broker, lease=0.1)
        self.drop_record_only(broker, "a")
        time.sleep(0.3)
        assert [r.outcome for r in broker.reap(max_attempts=0)] == ["missing"]
        assert broker.get("a") is None
        assert broker.queue_length("q") == 0
