"""Finishing in batches and the batch rule for brokers with batch_claims."""

from __future__ import annotations

import time

import pytest

from myrq.backends.base import Broker, FinishRequest
from myrq.testing.contract.kit import BrokerHooks, W, put


class BatchContract(BrokerHooks):
    """Finishing in batches and the batch rule for brokers with batch_claims."""

    def test_finish_many_and_dequeue_writes_each_then_claims(self, broker: Broker) -> None:
        for name in ("a", "b", "c", "d"):
            put(broker, name)
        first = broker.dequeue(["q"], W, 30)
        second = broker.dequeue(["q"], W, 30)
        finishes = [
            FinishRequest(d.job_id, d.token or "", {"status": b"finished", "result": b"1"}, None)
            for d in (*first, *second)
        ] + [FinishRequest("a", "stale-token", {"status": b"failed"}, None)]
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
            put(broker, name)
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
        put(broker, "a")
        put(broker, "s", solo=b"1")
        put(broker, "b")
        first = broker.dequeue(["q"], W, 30, count=3)
        assert [d.job_id for d in first] == ["a"]  # stops before the solo job
        assert broker.queued_ids("q") == ["s", "b"]
        second = broker.dequeue(["q"], W, 30, count=3)
        assert [d.job_id for d in second] == ["s"]  # and takes it alone
        assert broker.queued_ids("q") == ["b"]
