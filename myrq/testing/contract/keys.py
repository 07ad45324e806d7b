"""Concurrency keys: at most ``climit`` jobs of one ``ckey`` run at once, across workers."""

from __future__ import annotations

import time

from myrq.backends.base import Broker
from myrq.backends.values import FinishRequest
from myrq.ids import key_tag
from myrq.testing.contract.kit import BrokerHooks, W, put

DONE = {"status": b"finished"}


def keyed(broker: Broker, name: str, key: bytes = b"k", limit: bytes | None = None) -> None:
    """A job of concurrency key ``key``, its id ending with the key's tag as myrq makes it
    (the sharded layout keeps a key's jobs on one shard by it)."""
    job_id = f"{name}{{{key_tag(key.decode())}}}"
    if limit is None:
        put(broker, job_id, ckey=key)
    else:
        put(broker, job_id, ckey=key, climit=limit)


def short(job_id: str) -> str:
    return job_id.partition("{")[0]


def ids(broker: Broker, count: int = 10, lease: float = 30) -> list[str]:
    got = broker.dequeue(["q"], W, lease, count=count)
    return [short(d.job_id) for d in got if d.claimed]


def queued(broker: Broker) -> list[str]:
    return [short(i) for i in broker.queued_ids("q")]


def jid(name: str, key: str = "k") -> str:
    return f"{name}{{{key_tag(key)}}}"


class ConcurrencyKeyContract(BrokerHooks):
    """Jobs of a full key wait off their queue without holding up others, and come back first."""

    def test_one_job_of_a_key_runs_at_a_time_and_others_pass(self, broker: Broker) -> None:
        keyed(broker, "a1")
        keyed(broker, "a2")
        put(broker, "free")
        keyed(broker, "b1", b"other")
        assert sorted(ids(broker)) == ["a1", "b1", "free"]
        assert broker.queued_ids("q") == []  # a2 waits for its key, off the queue
        rec = broker.get(jid("a2"))
        assert rec is not None and rec["status"] == b"pending"

    def test_the_next_job_of_a_key_comes_back_first_when_a_run_ends(self, broker: Broker) -> None:
        keyed(broker, "a1")
        keyed(broker, "a2")
        keyed(broker, "a3")
        [d] = broker.dequeue(["q"], W, 30, count=5)
        assert broker.finish(d.job_id, d.token or "", DONE, 60)
        assert queued(broker) == ["a2"]  # first of the key's waiting jobs, a3 still waits
        assert ids(broker) == ["a2"]

    def test_a_limit_lets_that_many_run(self, broker: Broker) -> None:
        for n in range(4):
            keyed(broker, f"j{n}", limit=b"2")
        assert ids(broker) == ["j0", "j1"]

    def test_every_end_of_a_run_frees_the_key(self, broker: Broker) -> None:
        for n in range(4):
            keyed(broker, f"j{n}")
        [d0] = broker.dequeue(["q"], W, 30, count=4)
        assert broker.release(d0.job_id, d0.token or "")  # given back: j0 first again
        assert queued(broker)[0] == "j0"
        [d0] = broker.dequeue(["q"], W, 30)
        retry = FinishRequest(d0.job_id, d0.token or "", {"status": b"pending"}, None, "q", 0)
        written, _ = broker.finish_many_and_dequeue(
            [retry], queues=["q"], worker=W, lease=30, count=0
        )
        assert written == [True]
        [d] = broker.dequeue(["q"], W, 0.1)  # the retry frees the key: the next one runs
        time.sleep(0.25)
        [reaped] = broker.reap(max_attempts=5)  # a dead worker's lease frees it too
        assert reaped.job_id == d.job_id
        assert ids(broker, 1) != []

    def test_a_slot_held_by_a_job_that_no_longer_runs_is_taken_back(self, broker: Broker) -> None:
        keyed(broker, "a1")
        keyed(broker, "a2")
        assert ids(broker, 1) == ["a1"]
        self.drop_record_only(broker, jid("a1"))  # its release can never come
        assert ids(broker) == ["a2"]

    def test_a_parked_job_that_was_canceled_is_skipped(self, broker: Broker) -> None:
        keyed(broker, "a1")
        keyed(broker, "a2")
        keyed(broker, "a3")
        [d] = broker.dequeue(["q"], W, 30, count=5)
        assert broker.cancel(jid("a2"), 60, b'{"type":"Canceled"}') == "pending"
        assert broker.finish(d.job_id, d.token or "", DONE, 60)
        assert queued(broker) == ["a3"]

    def test_a_woken_job_canceled_before_it_runs_passes_its_turn_on(self, broker: Broker) -> None:
        keyed(broker, "a1")
        keyed(broker, "a2")
        keyed(broker, "a3")
        [d] = broker.dequeue(["q"], W, 30, count=5)
        assert broker.finish(d.job_id, d.token or "", DONE, 60)
        assert queued(broker) == ["a2"]  # woken: its key is free
        assert broker.cancel(jid("a2"), 60, b'{"type":"Canceled"}') == "pending"
        assert ids(broker) == ["a3"]  # a3 was not left waiting for a run that never comes

    def test_a_woken_job_whose_ttl_passed_passes_its_turn_on(self, broker: Broker) -> None:
        keyed(broker, "a1")
        broker.enqueue("q", jid("a2"), {"queue": b"q", "ckey": b"k"}, ttl=0.1)
        keyed(broker, "a3")
        [d] = broker.dequeue(["q"], W, 30, count=5)
        time.sleep(0.15)
        assert broker.finish(d.job_id, d.token or "", DONE, 60)
        assert queued(broker) == ["a2"]
        got = broker.dequeue(["q"], W, 30, count=5)  # a2 expires at the claim, a3 runs
        assert [short(x.job_id) for x in got if x.claimed] == ["a3"] or ids(broker) == ["a3"]
        rec = broker.get(jid("a2"))
        assert rec is not None and rec["status"] == b"canceled"

    def test_canceling_a_job_of_a_full_key_wakes_nobody(self, broker: Broker) -> None:
        keyed(broker, "a1")
        keyed(broker, "a2")
        keyed(broker, "a3")
        keyed(broker, "a4")
        [d] = broker.dequeue(["q"], W, 30, count=5)  # a1 runs; a2, a3, a4 wait off the queue
        assert broker.cancel(jid("a2"), 60, b'{"type":"Canceled"}') == "pending"
        assert queued(broker) == []  # the key is still full: a3 and a4 keep waiting, in order
        assert broker.finish(d.job_id, d.token or "", DONE, 60)
        assert queued(broker) == ["a3"]
