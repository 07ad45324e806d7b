"""Workflow: dependencies, registries, stop, requeue, empty, set_fields."""

from __future__ import annotations

import time

import pytest

from myrq.backends.base import Broker
from myrq.backends.values import EnqueueRequest
from myrq.exceptions import InvalidArgumentError, InvalidJobError
from myrq.testing.contract.kit import BrokerHooks, W, claim_one, put, record

DONE = {"status": b"finished", "result": b"1"}
FAILED = {"status": b"failed", "error": b'{"type":"ValueError","message":"x","traceback":""}'}


def child(
    broker: Broker,
    job_id: str,
    *parents: str,
    allow_failure: bool = False,
    ttl: float | None = None,
) -> None:
    req = EnqueueRequest(
        "q", job_id, record(), ttl=ttl, depends_on=parents, allow_failure=allow_failure
    )
    assert broker.enqueue_many([req]) == []


def run(broker: Broker, job_id: str, fields: dict[str, bytes], ttl: float | None = 60) -> None:
    """Claim ``job_id`` (first in line) and end it with ``fields``."""
    got, token = claim_one(broker)
    assert got == job_id
    assert broker.finish(job_id, token, fields, ttl)


def status(broker: Broker, job_id: str) -> bytes | None:
    rec = broker.get(job_id)
    return None if rec is None else rec["status"]


class WorkflowContract(BrokerHooks):
    """Dependencies, registries, stop, requeue, empty, set_fields."""

    # -- dependencies ---------------------------------------------------------

    def test_a_job_waits_deferred_until_its_dependency_finishes(self, broker: Broker) -> None:
        put(broker, "parent")
        child(broker, "kid", "parent")
        assert status(broker, "kid") == b"deferred"
        assert broker.queued_ids("q") == ["parent"]
        assert broker.registry("q", "deferred") == ["kid"]
        run(broker, "parent", DONE)
        assert status(broker, "kid") == b"pending"
        assert broker.queued_ids("q") == ["kid"]
        assert broker.registry("q", "deferred") == []

    def test_a_job_with_two_dependencies_waits_for_both(self, broker: Broker) -> None:
        put(broker, "a")
        put(broker, "b")
        child(broker, "kid", "a", "b")
        run(broker, "a", DONE)
        assert status(broker, "kid") == b"deferred"
        run(broker, "b", DONE)
        assert broker.queued_ids("q") == ["kid"]

    def test_a_failed_dependency_cancels_its_dependents_down_the_chain(
        self, broker: Broker
    ) -> None:
        put(broker, "parent")
        child(broker, "kid", "parent")
        child(broker, "grandkid", "kid")
        run(broker, "parent", FAILED)
        for job_id in ("kid", "grandkid"):
            rec = broker.get(job_id)
            assert rec is not None and rec["status"] == b"canceled"
            assert b"DependencyFailed" in rec["error"] and "ended_at" in rec
        assert b"(parent)" in (broker.get("kid") or {})["error"]
        assert sorted(broker.registry("q", "canceled")) == ["grandkid", "kid"]
        assert broker.queued_ids("q") == [] and broker.registry("q", "deferred") == []

    def test_allow_failure_runs_the_dependent_whatever_the_outcome(self, broker: Broker) -> None:
        put(broker, "parent")
        child(broker, "cleanup", "parent", allow_failure=True)
        run(broker, "parent", FAILED)
        assert broker.queued_ids("q") == ["cleanup"]
        rec = broker.get("cleanup")
        assert rec is not None and rec["allow_failure"] == b"1"

    def test_dependencies_that_ended_already_are_counted_at_enqueue(self, broker: Broker) -> None:
        put(broker, "ok")
        run(broker, "ok", DONE)
        put(broker, "bad")
        run(broker, "bad", FAILED)
        child(broker, "after-ok", "ok")
        child(broker, "after-bad", "bad")
        child(broker, "after-both", "ok", "bad", allow_failure=True)
        assert broker.queued_ids("q") == ["after-ok", "after-both"]
        rec = broker.get("after-bad")
        assert rec is not None and rec["status"] == b"canceled"
        assert broker.registry("q", "canceled") == ["after-bad"]

    def test_a_missing_dependency_is_refused_and_the_others_stored(self, broker: Broker) -> None:
        put(broker, "parent")
        batch = [
            EnqueueRequest("q", "fine", record(), depends_on=("parent",)),
            EnqueueRequest("q", "orphan", record(), depends_on=("no-such-job",)),
        ]
        with pytest.raises(InvalidJobError, match="no-such-job"):
            broker.enqueue_many(batch)
        assert broker.get("orphan") is None
        assert status(broker, "fine") == b"deferred"

    def test_canceling_a_dependency_cancels_its_dependents(self, broker: Broker) -> None:
        put(broker, "parent")
        child(broker, "kid", "parent")
        assert broker.cancel("parent", 60, b'{"type":"Canceled"}') == "pending"
        assert status(broker, "kid") == b"canceled"

    def test_a_canceled_dependent_is_not_released_later(self, broker: Broker) -> None:
        put(broker, "parent")
        child(broker, "kid", "parent")
        assert broker.cancel("kid", 60, b'{"type":"Canceled"}') == "deferred"
        assert broker.registry("q", "deferred") == []
        run(broker, "parent", DONE)
        assert status(broker, "kid") == b"canceled" and broker.queued_ids("q") == []

    def test_a_retry_does_not_release_dependents(self, broker: Broker) -> None:
        from myrq.backends.values import FinishRequest  # noqa: PLC0415 - one test uses it

        put(broker, "parent")
        child(broker, "kid", "parent")
        job_id, token = claim_one(broker)
        again = {"status": b"pending", "tries": b"1"}
        retry = FinishRequest(job_id, token, again, None, "q", retry_delay=0)
        written, _ = broker.finish_many_and_dequeue(
            [retry], queues=["q"], worker=W, lease=30, count=0
        )
        assert written == [True] and status(broker, "kid") == b"deferred"
        run(broker, "parent", DONE)
        assert broker.queued_ids("q") == ["kid"]

    def test_a_dependency_abandoned_by_its_workers_cancels_its_dependents(
        self, broker: Broker
    ) -> None:
        put(broker, "parent")
        child(broker, "kid", "parent")
        claim_one(broker, lease=0.1)
        time.sleep(0.25)
        [reaped] = broker.reap(max_attempts=1)
        assert reaped.outcome == "failed" and status(broker, "kid") == b"canceled"
        assert broker.registry("q", "failed") == ["parent"]

    def test_a_dependency_canceled_for_its_ttl_cancels_its_dependents(self, broker: Broker) -> None:
        broker.enqueue("q", "parent", record(), ttl=0.1)
        child(broker, "kid", "parent")
        time.sleep(0.25)
        [d] = broker.dequeue(["q"], W, 30)
        assert d.note == "expired" and status(broker, "kid") == b"canceled"

    def test_a_deferred_jobs_ttl_counts_from_its_release(self, broker: Broker) -> None:
        put(broker, "parent")
        child(broker, "kid", "parent", ttl=0.5)
        time.sleep(0.6)  # longer than its ttl, but it was not runnable yet
        run(broker, "parent", DONE)
        [d] = broker.dequeue(["q"], W, 30)
        assert d.job_id == "kid" and d.claimed

    def test_a_job_may_depend_on_a_job_of_another_queue(self, broker: Broker) -> None:
        put(broker, "parent", queue="other")
        child(broker, "kid", "parent")
        got, token = claim_one(broker, ["other"])
        assert broker.finish(got, token, DONE, 60)
        assert broker.queued_ids("q") == ["kid"]

    # -- registries -------------------------------------------------------------

    def test_ended_jobs_enter_the_registry_of_their_state(self, broker: Broker) -> None:
        for job_id in ("ok", "bad", "slow"):
            put(broker, job_id)
        run(broker, "ok", DONE)
        run(broker, "bad", FAILED)
        run(broker, "slow", {"status": b"timeout"})
        assert broker.registry("q", "finished") == ["ok"]
        assert broker.registry("q", "failed") == ["bad"]
        assert broker.registry("q", "timeout") == ["slow"]
        assert [broker.registry_count("q", s) for s in ("finished", "failed", "running")] == [
            1,
            1,
            0,
        ]

    def test_running_jobs_are_registered_until_they_end_or_go_back(self, broker: Broker) -> None:
        put(broker, "a")
        put(broker, "b")
        put(broker, "c")
        got = broker.dequeue(["q"], W, 0.1, count=3)
        assert sorted(broker.registry("q", "running")) == ["a", "b", "c"]
        assert broker.finish("a", got[0].token or "", DONE, 60)
        assert broker.release("b", got[1].token or "")
        assert broker.registry("q", "running") == ["c"]
        time.sleep(0.25)
        broker.reap(max_attempts=5)
        assert broker.registry_count("q", "running") == 0

    def test_pending_and_scheduled_registries_are_the_queue_and_its_schedule(
        self, broker: Broker
    ) -> None:
        put(broker, "now")
        broker.enqueue("q", "later", record(), delay=60)
        assert broker.registry("q", "pending") == ["now"]
        assert broker.registry("q", "scheduled") == ["later"]
        assert broker.registry_count("q", "pending") == 1
        assert broker.registry_count("q", "scheduled") == 1

    def test_a_registry_pages_from_start_to_stop(self, broker: Broker) -> None:
        for n in range(5):
            put(broker, f"j{n}")
            run(broker, f"j{n}", DONE, ttl=60 + n)  # ordered by when they expire
        assert broker.registry("q", "finished", 1, 2) == ["j1", "j2"]
        assert broker.registry("q", "finished", 3) == ["j3", "j4"]
        assert broker.registry("q", "finished", 2, 1) == []

    def test_registries_leave_out_and_trim_expired_records(self, broker: Broker) -> None:
        put(broker, "brief")
        run(broker, "brief", DONE, ttl=0.1)
        put(broker, "kept")
        run(broker, "kept", DONE, ttl=None)  # forever
        put(broker, "gone")
        run(broker, "gone", DONE, ttl=0)  # deleted at once: never registered
        time.sleep(0.25)
        assert broker.registry("q", "finished") == ["kept"]
        assert broker.registry_count("q", "finished") == 1
        assert broker.trim_registries("q") == 1
        assert broker.trim_registries("q") == 0
        assert broker.registry("q", "finished") == ["kept"]

    def test_an_unknown_registry_state_is_refused(self, broker: Broker) -> None:
        with pytest.raises(InvalidArgumentError, match="done"):
            broker.registry("q", "done")
        with pytest.raises(InvalidArgumentError):
            broker.registry_count("q", "")

    def test_a_new_job_under_an_ended_id_leaves_the_old_registry(self, broker: Broker) -> None:
        put(broker, "same")
        run(broker, "same", FAILED)
        put(broker, "same", created_at=b"1700000001")  # a new job, not a resend
        assert broker.registry("q", "failed") == [] and broker.queued_ids("q") == ["same"]

    def test_delete_leaves_no_trace_in_registries_or_dependencies(self, broker: Broker) -> None:
        put(broker, "ended")
        run(broker, "ended", FAILED)
        put(broker, "parent")
        child(broker, "kid", "parent")
        assert broker.delete("ended") and broker.delete("kid")
        assert broker.registry("q", "failed") == [] and broker.registry("q", "deferred") == []
        run(broker, "parent", DONE)
        assert broker.get("kid") is None and broker.queued_ids("q") == []

    # -- stop, requeue, empty, set_fields -----------------------------------------

    def test_stop_marks_a_running_job_and_its_renewal_reports_it(self, broker: Broker) -> None:
        put(broker, "busy")
        put(broker, "other")
        got = broker.dequeue(["q"], W, 30, count=2)
        assert broker.stop("busy") == "running"
        held = [(d.job_id, d.token or "") for d in got]
        assert broker.renew_many(held, 30) == [2, 1]
        assert broker.renew("busy", got[0].token or "", 30)  # still held: renewed

    def test_stop_leaves_a_job_that_is_not_running_alone(self, broker: Broker) -> None:
        put(broker, "waiting")
        assert broker.stop("waiting") == "pending"
        assert broker.get("waiting") == {**record(), "status": b"pending"}
        assert broker.stop("missing") is None

    def test_requeue_runs_an_ended_job_again(self, broker: Broker) -> None:
        put(broker, "first")
        put(broker, "bad")
        put(broker, "last")
        claim_one(broker)
        run(broker, "bad", FAILED)
        assert broker.requeue("bad")
        rec = broker.get("bad")
        assert rec is not None and rec["status"] == b"pending"
        assert rec["attempts"] == b"0" and "error" not in rec and "ended_at" not in rec
        assert broker.queued_ids("q") == ["last", "bad"]
        assert broker.registry("q", "failed") == []
        [d] = broker.dequeue(["q"], W, 30)
        assert d.job_id == "last"

    def test_requeue_refuses_a_job_that_has_not_ended(self, broker: Broker) -> None:
        put(broker, "waiting")
        assert not broker.requeue("waiting")
        assert not broker.requeue("missing")
        assert broker.queued_ids("q") == ["waiting"]

    def test_a_requeued_job_keeps_its_record_forever_until_it_ends(self, broker: Broker) -> None:
        put(broker, "bad")
        run(broker, "bad", FAILED, ttl=0.3)
        assert broker.requeue("bad")
        time.sleep(0.45)
        assert status(broker, "bad") == b"pending"

    def test_empty_deletes_the_pending_jobs_of_a_queue(self, broker: Broker) -> None:
        for n in range(3):
            put(broker, f"p{n}")
        put(broker, "elsewhere", queue="other")
        broker.enqueue("q", "later", record(), delay=60)
        assert broker.empty("q") == 3
        assert broker.queued_ids("q") == [] and broker.get("p0") is None
        assert status(broker, "later") == b"scheduled"
        assert broker.queued_ids("other") == ["elsewhere"]
        assert broker.empty("q") == 0

    def test_set_fields_writes_an_existing_job_only(self, broker: Broker) -> None:
        put(broker, "j")
        assert broker.set_fields("j", {"meta": b'{"progress":50}'})
        rec = broker.get("j")
        assert rec is not None and rec["meta"] == b'{"progress":50}' and rec["status"] == b"pending"
        assert not broker.set_fields("gone", {"meta": b"{}"})
        assert broker.get("gone") is None

    # -- dependents of jobs that go away ----------------------------------------------

    def test_deleting_a_dependency_cancels_its_dependents(self, broker: Broker) -> None:
        put(broker, "parent")
        child(broker, "kid", "parent")
        assert broker.delete("parent")
        rec = broker.get("kid")
        assert rec is not None and rec["status"] == b"canceled"
        assert b"DependencyFailed" in rec["error"] and broker.registry("q", "deferred") == []

    def test_emptying_a_queue_cancels_the_dependents_of_its_jobs(self, broker: Broker) -> None:
        put(broker, "parent")
        child(broker, "kid", "parent")
        assert broker.empty("q") == 1
        assert status(broker, "kid") == b"canceled"

    def test_dependents_of_a_canceled_job_keep_their_own_lifetime(self, broker: Broker) -> None:
        put(broker, "parent")
        child(broker, "kid", "parent")
        assert broker.cancel("parent", 0, b'{"type":"Canceled"}') == "pending"  # not kept
        assert broker.get("parent") is None
        assert status(broker, "kid") == b"canceled"  # kept by the broker's default

    def test_a_job_canceled_at_enqueue_keeps_its_own_failure_ttl(self, broker: Broker) -> None:
        put(broker, "bad")
        run(broker, "bad", FAILED)
        req = EnqueueRequest(
            "q", "brief", record(failure_ttl=b"0"), depends_on=("bad",)
        )  # not kept at all
        assert broker.enqueue_many([req]) == []
        assert broker.get("brief") is None and broker.registry("q", "canceled") == []
