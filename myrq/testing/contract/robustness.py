"""Bad values, resends and repairs: every broker answers them the same way."""

from __future__ import annotations

import math
import time

import pytest

from myrq.backends.base import Broker, EnqueueRequest, FinishRequest
from myrq.exceptions import InvalidArgumentError
from myrq.testing.contract.kit import BrokerHooks, W, claim_one, put, record


class RobustnessContract(BrokerHooks):
    """Bad values, resends and repairs: every broker answers them the same way."""

    # -- values read from records ---------------------------------------------------

    @pytest.mark.parametrize(
        ("stored", "next_attempt"),
        [
            (b"2", b"3"), (b"1.5", b"1"), (b" 7", b"1"), (b"0x10", b"1"), (b"1e3", b"1"),
            (b"inf", b"1"), (b"nan", b"1"), (b"-3", b"1"), (b"", b"1"), (b"abc", b"1"),
            (b"99999999999999999999", b"1000000001"),
        ],
    )  # fmt: skip
    def test_attempts_are_read_by_one_rule(
        self, broker: Broker, stored: bytes, next_attempt: bytes
    ) -> None:
        """Decimal digits or it counts as 0, clamped to 10**9 (myrq.schema.parse_count)."""
        put(broker, "a", attempts=stored)
        [d] = broker.dequeue(["q"], W, 30)
        assert d.fields is not None and d.fields["attempts"] == next_attempt
        rec = broker.get("a")
        assert rec is not None and rec["attempts"] == next_attempt

    @pytest.mark.parametrize(
        "stored", [b"inf", b"nan", b"1e999", b"-", b"x", b"99999999999999", b"9" * 400]
    )
    def test_a_garbled_or_huge_failure_ttl_never_stops_a_reap(
        self, broker: Broker, stored: bytes
    ) -> None:
        put(broker, "a", failure_ttl=stored)
        claim_one(broker, lease=0.1)
        time.sleep(0.3)
        [r] = broker.reap(max_attempts=1, failure_ttl=None)
        assert r.outcome == "failed"
        rec = broker.get("a")  # unusable: the default (forever); huge: cut to ten years
        assert rec is not None and rec["status"] == b"failed"

    # -- values given to the steps ------------------------------------------------------

    @pytest.mark.parametrize("lease", [math.nan, math.inf, -1.0, 0, "30", None, True])
    def test_a_bad_lease_is_refused_before_anything_changes(
        self, broker: Broker, lease: object
    ) -> None:
        put(broker, "a")
        with pytest.raises(InvalidArgumentError, match="lease"):
            broker.dequeue(["q"], W, lease)  # type: ignore[arg-type]
        assert broker.queued_ids("q") == ["a"] and broker.leased_ids() == []
        _, token = claim_one(broker)
        with pytest.raises(InvalidArgumentError, match="lease"):
            broker.renew("a", token, lease)  # type: ignore[arg-type]
        assert broker.lease_deadline("a") is not None

    @pytest.mark.parametrize("ttl", [math.nan, -1.0, math.inf])
    def test_a_bad_ttl_is_refused_and_the_job_stays_running(
        self, broker: Broker, ttl: float
    ) -> None:
        put(broker, "a")
        _, token = claim_one(broker)
        with pytest.raises(InvalidArgumentError, match="ttl"):
            broker.finish("a", token, {"status": b"finished"}, ttl)
        rec = broker.get("a")
        assert rec is not None and rec["status"] == b"running"

    def test_a_huge_lease_or_ttl_is_cut_to_ten_years(self, broker: Broker) -> None:
        put(broker, "a")
        [d] = broker.dequeue(["q"], W, 1e15)
        deadline = broker.lease_deadline("a")
        assert deadline is not None and deadline - time.time() <= 10 * 366 * 86400
        assert broker.finish("a", d.token or "", {"status": b"finished"}, 1e15)
        assert broker.get("a") is not None

    def test_a_sub_millisecond_ttl_keeps_the_record_for_a_moment_not_zero(
        self, broker: Broker
    ) -> None:
        """TTLs are rounded up to whole milliseconds: 0.4 ms is 1 ms, never 'delete now'."""
        put(broker, "a")
        _, token = claim_one(broker)
        started = time.monotonic()
        assert broker.finish("a", token, {"status": b"finished"}, 0.0004)
        kept = broker.get("a") is not None
        assert kept or time.monotonic() - started > 0.001  # gone only once 1 ms has passed
        time.sleep(0.05)
        assert broker.get("a") is None

    @pytest.mark.parametrize(
        "fields",
        [{"func": 7}, {"func": "text"}, {"func": None}, {7: b"x"}, None],
    )
    def test_record_fields_must_be_str_names_and_bytes_values(
        self, broker: Broker, fields: object
    ) -> None:
        with pytest.raises(InvalidArgumentError, match="fields must"):
            broker.enqueue("q", "a", fields)  # type: ignore[arg-type]
        assert broker.get("a") is None and broker.queued_ids("q") == []
        put(broker, "b")
        _, token = claim_one(broker)
        with pytest.raises(InvalidArgumentError, match="fields must"):
            broker.finish("b", token, fields, None)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="job id"):
            broker.enqueue("q", None, record())  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="limit"):
            broker.reap(max_attempts=3, limit=10**20)

    # -- the lease token after finish -------------------------------------------------

    def test_finish_keeps_the_token_in_the_lease_field(self, broker: Broker) -> None:
        """So a worker whose reply was lost can tell that the outcome written is its own."""
        put(broker, "a")
        _, token = claim_one(broker)
        assert broker.finish("a", token, {"status": b"finished"}, None)
        rec = broker.get("a")
        assert rec is not None and rec["lease"] == token.encode()
        assert broker.lease_deadline("a") is None

    # -- resends ----------------------------------------------------------------------

    def test_a_resent_claim_hands_out_the_same_jobs_and_claims_no_more(
        self, broker: Broker
    ) -> None:
        for name in ("a", "b", "c"):
            put(broker, name)
        first = broker.dequeue(["q"], W, 30, count=2, claim_id="claim-1")
        again = broker.dequeue(["q"], W, 30, count=2, claim_id="claim-1")
        assert [(d.job_id, d.token) for d in again] == [(d.job_id, d.token) for d in first]
        assert [d.job_id for d in first] == ["a", "b"]
        assert broker.queued_ids("q") == ["c"]  # nothing more was claimed
        assert first[0].token == f"{W}:claim-1:1"
        # A job the claim no longer holds is not handed out again.
        assert broker.finish("a", first[0].token or "", {"status": b"finished"}, None)
        assert [d.job_id for d in broker.dequeue(["q"], W, 30, count=2, claim_id="claim-1")] == [
            "b"
        ]

    def test_a_resent_enqueue_is_not_a_duplicate(self, broker: Broker) -> None:
        """Same created_at and payload: the retry of a call whose reply was lost."""
        fields = record(created_at=b"1700000000.123456")
        broker.enqueue("q", "a", fields)
        broker.enqueue("q", "a", fields)  # no JobExistsError
        assert broker.enqueue_many([EnqueueRequest("q", "a", fields)]) == []
        assert broker.queued_ids("q") == ["a"]
        assert broker.enqueue_many([EnqueueRequest("q", "a", record(7))]) == ["a"]
        # Even once the job ran, a late resend does not run it again.
        [d] = broker.dequeue(["q"], W, 30)
        assert broker.finish("a", d.token or "", {"status": b"finished"}, None)
        broker.enqueue("q", "a", fields)
        assert broker.queued_ids("q") == [] and broker.get("a")["status"] == b"finished"  # type: ignore[index]

    # -- renewing many, repairing -------------------------------------------------------

    def test_renew_many_renews_each_held_lease_and_reports_the_others(self, broker: Broker) -> None:
        for name in ("a", "b"):
            put(broker, name)
        ta = claim_one(broker, lease=0.5)[1]
        tb = claim_one(broker, lease=0.5)[1]
        assert broker.renew_many([("a", ta), ("b", tb + "x"), ("gone", "t")], 30) == [
            True,
            False,
            False,
        ]
        time.sleep(0.8)
        assert [r.job_id for r in broker.reap(max_attempts=0)] == ["b"]

    def test_a_renewal_puts_back_a_lease_lost_with_the_lease_set(self, broker: Broker) -> None:
        """So a live worker keeps its job, and a repair finds only the dead workers' jobs."""
        put(broker, "a")
        _, token = claim_one(broker)
        self.drop_lease_only(broker, "a")
        assert broker.renew("a", token, 30)
        assert broker.lease_deadline("a") is not None
        assert broker.repair(["a"], max_attempts=3) == []
        assert broker.finish("a", token, {"status": b"finished"}, None)

    def test_repair_requeues_running_jobs_that_hold_no_lease(self, broker: Broker) -> None:
        for name in ("a", "b", "c"):
            put(broker, name)
        claim_one(broker)
        claim_one(broker)
        self.drop_lease_only(broker, "a")  # the lease set lost its entry
        repaired = broker.repair(["a", "b", "c", "never"], max_attempts=3)
        assert [(r.job_id, r.outcome) for r in repaired] == [("a", "requeued")]
        rec = broker.get("a")
        assert rec is not None and rec["status"] == b"pending"
        assert broker.queued_ids("q") == ["c", "a"]
        b = broker.get("b")
        assert b is not None and b["status"] == b"running"  # it holds its lease: untouched

    # -- workers ------------------------------------------------------------------------

    def test_registered_workers_are_listed_until_their_registration_expires(
        self, broker: Broker
    ) -> None:
        broker.register_worker("w1", {"host": b"h", "pid": b"1"}, 0.4)
        broker.register_worker("w2", {"host": b"h", "pid": b"2"}, 30)
        assert broker.workers() == {
            "w1": {"host": b"h", "pid": b"1"},
            "w2": {"host": b"h", "pid": b"2"},
        }
        broker.register_worker("w2", {"host": b"h", "pid": b"3"}, 30)  # replaced whole
        time.sleep(0.7)
        assert broker.workers() == {"w2": {"host": b"h", "pid": b"3"}}
        broker.unregister_worker("w2")
        assert broker.workers() == {}

    def test_lease_deadline_is_when_the_lease_runs_out(self, broker: Broker) -> None:
        put(broker, "a")
        assert broker.lease_deadline("a") is None
        _, token = claim_one(broker, lease=30)
        deadline = broker.lease_deadline("a")
        assert deadline is not None and 20 < deadline - time.time() < 40
        assert broker.renew("a", token, 300)
        later = broker.lease_deadline("a")
        assert later is not None and later > deadline + 200

    def test_finish_many_with_a_stale_claim_writes_nothing_twice(self, broker: Broker) -> None:
        put(broker, "a")
        _, token = claim_one(broker)
        done = FinishRequest("a", token, {"status": b"finished"}, None)
        assert broker.finish_many_and_dequeue([done], queues=["q"], worker=W, lease=30) == (
            [True],
            [],
        )
        # A resend of the same step: fenced, nothing changes.
        assert broker.finish_many_and_dequeue([done], queues=["q"], worker=W, lease=30) == (
            [False],
            [],
        )
