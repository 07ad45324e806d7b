"""Claiming: order, priority, batches, waiting, ids without a claimable record."""

from __future__ import annotations

import threading
import time
from collections import Counter

from myrq.backends.base import Broker, EnqueueRequest
from myrq.testing.contract.kit import BrokerHooks, W, claim_one, put, record


class ConsumingContract(BrokerHooks):
    """Claiming: order, priority, batches, waiting, ids without a claimable record."""

    def test_dequeue_claims_the_job(self, broker: Broker) -> None:
        put(broker, "a")
        [d] = broker.dequeue(["q"], W, 30)
        assert (d.job_id, d.queue, d.claimed) == ("a", "q", True)
        assert d.fields is not None and d.fields["func"] == record()["func"]
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
        fields = record()
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
        put(broker, "low1", queue="low")
        put(broker, "high1", queue="high")
        put(broker, "low2", queue="low")
        order = [broker.dequeue(["high", "low"], W, 30)[0].job_id for _ in range(3)]
        assert order == ["high1", "low1", "low2"]

    def test_dequeue_count_takes_a_batch_across_queues(self, broker: Broker) -> None:
        put(broker, "h", queue="high")
        for i in range(3):
            put(broker, f"l{i}", queue="low")
        got = broker.dequeue(["high", "low"], W, 30, count=3)
        assert [d.job_id for d in got] == ["h", "l0", "l1"]
        assert all(d.claimed for d in got)
        assert broker.queued_ids("low") == ["l2"]

    def test_dequeue_waits_for_a_job_enqueued_meanwhile(self, broker: Broker) -> None:
        def later() -> None:
            time.sleep(0.3)
            put(broker, "late")

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
        put(broker, "gone")
        put(broker, "next")
        # Delete just the record, leaving the id queued (what an expiring hash did).
        self.drop_record_only(broker, "gone")
        got = broker.dequeue(["q"], W, 30)
        assert [(d.job_id, d.claimed, d.fields) for d in got] == [("gone", False, None)]
        assert broker.get("gone") is None
        assert "gone" not in broker.leased_ids()
        assert broker.dequeue(["q"], W, 30)[0].job_id == "next"

    def test_id_of_a_finished_job_is_dropped_unclaimed(self, broker: Broker) -> None:
        put(broker, "a")
        _, token = claim_one(broker)
        broker.finish("a", token, {"status": b"finished"}, None)
        self.push_id_only(broker, "q", "a")
        [d] = broker.dequeue(["q"], W, 30)
        assert (d.job_id, d.claimed) == ("a", False)
        assert d.fields is not None and d.fields["status"] == b"finished"
        rec = broker.get("a")
        assert rec is not None and rec["status"] == b"finished" and rec["attempts"] == b"1"

    def test_each_job_is_delivered_once_to_concurrent_consumers(self, broker: Broker) -> None:
        n = 200
        broker.enqueue_many([EnqueueRequest("q", f"c{i}", record(i)) for i in range(n)])
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
