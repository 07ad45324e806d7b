"""Time: scheduled jobs, retries, ttl, front of the queue, cancel, waiting, periodic schedules."""

from __future__ import annotations

import threading
import time

from myrq.backends.base import Broker
from myrq.backends.values import CronJob, FinishRequest
from myrq.testing.contract.kit import BrokerHooks, W, claim_one, put, record


class TimingContract(BrokerHooks):
    """Scheduled jobs, retries, ttl, front of the queue, cancel, waiting, periodic schedules."""

    # -- scheduled jobs ----------------------------------------------------------

    def test_a_job_due_later_waits_scheduled_off_its_queue(self, broker: Broker) -> None:
        broker.enqueue("q", "later", record(), delay=30)
        rec = broker.get("later")
        assert rec is not None and rec["status"] == b"scheduled"
        assert broker.queued_ids("q") == [] and broker.dequeue(["q"], W, 30) == []
        [(job_id, due)] = broker.scheduled("q")
        assert job_id == "later" and 25 < due - time.time() < 35
        assert "q" in broker.queue_names()

    def test_a_claim_moves_due_jobs_onto_the_queue_once(self, broker: Broker) -> None:
        broker.enqueue("q", "now", record())
        broker.enqueue("q", "soon", record(), delay=0.2)
        broker.enqueue("q", "past", record(), at=time.time() - 60)  # due already: queued at once
        assert broker.queued_ids("q") == ["now", "past"]
        time.sleep(0.35)
        got = broker.dequeue(["q"], W, 30, count=5)
        assert [d.job_id for d in got] == ["now", "past", "soon"]
        assert broker.scheduled("q") == []

    def test_an_idle_dequeue_wakes_when_a_scheduled_job_falls_due(self, broker: Broker) -> None:
        broker.enqueue("q", "soon", record(), delay=0.4)
        started = time.monotonic()
        got = broker.dequeue(["q"], W, 30, timeout=10)
        waited = time.monotonic() - started
        assert [d.job_id for d in got] == ["soon"] and got[0].claimed
        assert 0.35 < waited < 3  # woke when due, not at the end of the timeout

    def test_at_front_puts_the_job_first(self, broker: Broker) -> None:
        put(broker, "a")
        broker.enqueue("q", "urgent", record(), front=True)
        assert broker.queued_ids("q") == ["urgent", "a"]

    def test_run_now_moves_a_scheduled_job_onto_its_queue(self, broker: Broker) -> None:
        broker.enqueue("q", "later", record(), delay=60)
        assert broker.run_now("later")
        assert not broker.run_now("later")  # not scheduled any more
        assert broker.queued_ids("q") == ["later"] and broker.scheduled("q") == []
        rec = broker.get("later")
        assert rec is not None and rec["status"] == b"pending"

    # -- ttl ------------------------------------------------------------------------

    def test_a_job_not_started_within_its_ttl_is_canceled_not_run(self, broker: Broker) -> None:
        broker.enqueue("q", "stale", record(), ttl=0.2)
        broker.enqueue("q", "fresh", record(), ttl=60)
        time.sleep(0.35)
        got = broker.dequeue(["q"], W, 30, count=2)
        assert [(d.job_id, d.claimed, d.note) for d in got] == [
            ("stale", False, "expired"),
            ("fresh", True, None),
        ]
        rec = broker.get("stale")
        assert rec is not None and rec["status"] == b"canceled" and b"JobExpired" in rec["error"]
        fresh = broker.get("fresh")
        assert fresh is not None and "expires_at" not in fresh  # the ttl bounds the first start

    def test_a_scheduled_jobs_ttl_counts_from_when_it_is_due(self, broker: Broker) -> None:
        broker.enqueue("q", "later", record(), delay=0.3, ttl=5)
        time.sleep(0.45)
        [d] = broker.dequeue(["q"], W, 30)
        assert d.claimed

    # -- retries ----------------------------------------------------------------------

    def test_a_retry_puts_the_job_back_counted_apart_from_claims(self, broker: Broker) -> None:
        put(broker, "a")
        _, token = claim_one(broker)
        fields = {"status": b"pending", "tries": b"1", "error": b"{}"}
        done = FinishRequest("a", token, fields, None, queue="q", retry_delay=0)
        assert broker.finish_many_and_dequeue([done], queues=["q"], worker=W, lease=30, count=0)[
            0
        ] == [True]
        rec = broker.get("a")
        assert rec is not None and rec["status"] == b"pending" and rec["tries"] == b"1"
        assert rec["attempts"] == b"0" and broker.leased_ids() == []
        assert broker.queued_ids("q") == ["a"]
        [d] = broker.dequeue(["q"], W, 30)
        assert d.fields is not None and d.fields["attempts"] == b"1"
        assert not broker.finish("a", token, {"status": b"failed"}, None)  # the old token is fenced

    def test_a_retry_after_a_delay_is_scheduled(self, broker: Broker) -> None:
        put(broker, "a")
        _, token = claim_one(broker)
        fields = {"status": b"scheduled", "tries": b"1"}
        done = FinishRequest("a", token, fields, None, queue="q", retry_delay=0.3)
        broker.finish_many_and_dequeue([done], queues=["q"], worker=W, lease=30, count=0)
        assert [i for i, _ in broker.scheduled("q")] == ["a"] and broker.queued_ids("q") == []
        time.sleep(0.45)
        [d] = broker.dequeue(["q"], W, 30)
        assert d.job_id == "a" and d.claimed

    # -- cancel, waiting ----------------------------------------------------------------

    def test_cancel_ends_a_pending_or_scheduled_job_and_nothing_else(self, broker: Broker) -> None:
        put(broker, "pending")
        broker.enqueue("q", "scheduled", record(), delay=60)
        put(broker, "running")
        broker.dequeue(["q"], W, 30)  # claims "pending"...
        err = b'{"type":"JobCanceled","message":"x","traceback":""}'
        assert broker.cancel("pending", None, err) is None  # ...so it is running now
        assert broker.cancel("scheduled", None, err) == "scheduled"
        assert broker.cancel("running", 60, err) == "pending"
        assert broker.cancel("never", None, err) is None
        assert broker.queued_ids("q") == [] and broker.scheduled("q") == []
        rec = broker.get("running")
        assert rec is not None and rec["status"] == b"canceled" and rec["error"] == err

    def test_wait_for_end_returns_when_the_job_ends(self, broker: Broker) -> None:
        put(broker, "a")
        _, token = claim_one(broker)
        assert broker.wait_for_end("a", 0.2) is False

        def finish_later() -> None:
            time.sleep(0.3)
            broker.finish("a", token, {"status": b"finished"}, None)

        t = threading.Thread(target=finish_later)
        started = time.monotonic()
        t.start()
        assert broker.wait_for_end("a", 10) is True
        waited = time.monotonic() - started
        t.join()
        assert 0.25 < waited < 3
        assert broker.wait_for_end("a", 10) is True and broker.wait_for_end("gone", 1) is True

    # -- periodic schedules ---------------------------------------------------------------

    def test_a_schedule_is_stored_with_its_next_job(self, broker: Broker) -> None:
        first = CronJob("cron:q:nightly:1", record(), time.time() + 60)
        broker.cron_set("q", "nightly", b"spec-1", "v1", first)
        [(name, entry)] = broker.crons("q").items()
        assert (name, entry.spec, entry.version, entry.next_id) == (
            "nightly", b"spec-1", "v1", "cron:q:nightly:1"
        )  # fmt: skip
        assert [i for i, _ in broker.scheduled("q")] == ["cron:q:nightly:1"]

    def test_the_next_job_is_scheduled_once_and_only_for_the_current_version(
        self, broker: Broker
    ) -> None:
        broker.cron_set("q", "s", b"spec", "v1", CronJob("cron:q:s:1", record(), time.time() + 60))
        later = CronJob("cron:q:s:2", record(), time.time() + 120)
        assert broker.cron_next("q", "s", "v1", later)
        assert not broker.cron_next("q", "s", "v1", later)  # another worker did it already
        assert not broker.cron_next("q", "s", "old", CronJob("cron:q:s:3", record(), time.time()))
        assert broker.crons("q")["s"].next_id == "cron:q:s:2"

    def test_replacing_a_schedule_drops_its_old_next_job(self, broker: Broker) -> None:
        broker.cron_set("q", "s", b"old", "v1", CronJob("cron:q:s:1", record(), time.time() + 60))
        broker.cron_set("q", "s", b"new", "v2", CronJob("cron:q:s:9", record(), time.time() + 90))
        assert [i for i, _ in broker.scheduled("q")] == ["cron:q:s:9"]
        assert broker.get("cron:q:s:1") is None
        assert broker.crons("q")["s"].spec == b"new"
        assert broker.cron_remove("q", "s") and not broker.cron_remove("q", "s")
        assert broker.crons("q") == {} and broker.scheduled("q") == []
