"""Enqueue after commit: held until the block (or the framework) commits, dropped on rollback."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

import myrq
from myrq import Eager, Hooks, JobExistsError, JobFailedError, JobStatus, Queue, defer_until_commit
from myrq.backends import Broker, EnqueueRequest, MemoryBroker
from myrq.exceptions import BrokerConnectionError, NoSuchJobError
from myrq.job import Job
from myrq.transaction import PendingJobs, add_holder, hold, remove_holder
from tests import eagerjobs


class CountingBroker(MemoryBroker):
    """A memory broker that counts the calls that store jobs."""

    def __init__(self) -> None:
        super().__init__()
        self.stores: list[int] = []  # jobs per call

    def enqueue(self, *args: Any, **kwargs: Any) -> None:
        self.stores.append(1)
        super().enqueue(*args, **kwargs)

    def enqueue_many(self, requests: Sequence[EnqueueRequest]) -> list[str]:
        self.stores.append(len(requests))
        return super().enqueue_many(requests)


@pytest.fixture(autouse=True)
def _clear_seen() -> Iterator[None]:
    eagerjobs.seen.clear()
    yield
    eagerjobs.seen.clear()


def test_jobs_are_held_until_the_block_ends_then_sent_in_one_round_trip() -> None:
    broker = CountingBroker()
    q = Queue("orders", broker=broker)
    with defer_until_commit() as pending:
        jobs = [q.enqueue(eagerjobs.add, n, n) for n in range(3)]
        assert len({job.id for job in jobs}) == 3  # ids at once
        assert q.count == 0 and broker.stores == [] and len(pending) == 3
        with pytest.raises(NoSuchJobError):
            jobs[0].get_status()
    assert broker.stores == [3]
    assert q.job_ids == [job.id for job in jobs]


def test_an_exception_drops_the_held_jobs_and_goes_on() -> None:
    broker = CountingBroker()
    q = Queue("orders", broker=broker)
    with pytest.raises(RuntimeError, match="rolled back"), defer_until_commit():
        job = q.enqueue(eagerjobs.add, 1, 1)
        raise RuntimeError("rolled back")
    assert broker.stores == [] and broker.get(job.id) is None
    after = q.enqueue(eagerjobs.add, 2, 2)  # no longer holding
    assert q.job_ids == [after.id]


def test_blocks_nest_like_savepoints() -> None:
    q = Queue("orders", broker=MemoryBroker())
    with defer_until_commit():
        outer = q.enqueue(eagerjobs.add, 1, 1)
        with pytest.raises(ValueError), defer_until_commit():
            dropped = q.enqueue(eagerjobs.add, 2, 2)
            raise ValueError
        with defer_until_commit():
            kept = q.enqueue(eagerjobs.add, 3, 3)
        assert q.count == 0  # the inner block handed its job to the outer one
    assert q.job_ids == [outer.id, kept.id]
    assert q.broker.get(dropped.id) is None


def test_enqueue_many_and_scheduled_jobs_are_held_too() -> None:
    q = Queue("orders", broker=MemoryBroker())
    with defer_until_commit():
        group = q.enqueue_many([q.prepare(eagerjobs.add, (n, n)) for n in range(2)])
        later = q.enqueue_in("1h", eagerjobs.add, 9, 9)
        assert q.count == 0 and q.scheduled_jobs() == []
    assert q.job_ids == [job.id for job in group]
    assert later.get_status() is JobStatus.SCHEDULED


def test_a_job_and_its_dependent_in_one_batch() -> None:
    q = Queue("orders", broker=MemoryBroker())
    with defer_until_commit():
        parent = q.enqueue(eagerjobs.add, 1, 1)
        child = q.enqueue(eagerjobs.add, 2, 2, depends_on=parent)
    assert q.job_ids == [parent.id]
    assert child.get_status() is JobStatus.DEFERRED


def test_eager_jobs_run_at_the_commit_not_before() -> None:
    q = Queue("orders", broker=MemoryBroker(), eager=Eager(allow=["tests"]))
    with defer_until_commit():
        job = q.enqueue(eagerjobs.add, 4, 4)
        assert eagerjobs.seen == []
    assert eagerjobs.seen == [("add", 4, 4)]
    assert job.get_status() is JobStatus.FINISHED and job.result == 8


def test_a_failing_eager_job_raises_at_the_commit_after_the_others_ran() -> None:
    q = Queue("orders", broker=MemoryBroker(), eager=Eager(allow=["tests"]))
    with pytest.raises(JobFailedError), defer_until_commit():
        q.enqueue(eagerjobs.divide, 1, 0)
        q.enqueue(eagerjobs.add, 5, 5)
    assert eagerjobs.seen == [("add", 5, 5)]


def test_after_enqueue_hooks_hear_of_the_job_when_it_is_stored() -> None:
    heard: list[tuple[str, bool]] = []

    class Listen(Hooks):
        def before_enqueue(self, job: Job[Any]) -> None:
            heard.append(("before", job.broker.get(job.id) is not None))

        def after_enqueue(self, job: Job[Any]) -> None:
            heard.append(("after", job.broker.get(job.id) is not None))

    q = Queue("orders", broker=MemoryBroker(), hooks=[Listen()])
    with defer_until_commit():
        q.enqueue(eagerjobs.add, 1, 1)
        assert heard == [("before", False)]
    assert heard == [("before", False), ("after", True)]


def test_a_live_id_is_refused_at_the_commit_and_the_others_are_stored() -> None:
    q = Queue("orders", broker=MemoryBroker())
    q.enqueue(eagerjobs.add, 0, 0, job_id="taken")
    with pytest.raises(JobExistsError) as caught, defer_until_commit():
        q.enqueue(eagerjobs.add, 1, 1, job_id="taken")
        other = q.enqueue(eagerjobs.add, 2, 2)
    assert caught.value.job_ids == ["taken"]
    assert other.get_status() is JobStatus.PENDING


def test_a_broker_that_fails_at_the_commit_does_not_stop_the_others() -> None:
    class Down(MemoryBroker):
        def enqueue_many(self, requests: Sequence[EnqueueRequest]) -> list[str]:
            raise BrokerConnectionError("down")

    down, up = Queue("a", broker=Down()), Queue("b", broker=MemoryBroker())
    with pytest.raises(BrokerConnectionError), defer_until_commit():
        down.enqueue(eagerjobs.add, 1, 1)
        kept = up.enqueue(eagerjobs.add, 2, 2)
    assert kept.get_status() is JobStatus.PENDING


def test_another_thread_is_not_held() -> None:
    q = Queue("orders", broker=MemoryBroker())
    with defer_until_commit():
        thread = threading.Thread(target=q.enqueue, args=(eagerjobs.add, 1, 1))
        thread.start()
        thread.join(timeout=10)
        assert q.count == 1


def test_hold_is_the_hook_for_frameworks() -> None:
    q = Queue("orders", broker=MemoryBroker())
    pending = hold()
    held = q.enqueue(eagerjobs.add, 1, 1)
    assert q.count == 0
    pending.commit()
    pending.commit()  # once only
    assert q.job_ids == [held.id]
    now = q.enqueue(eagerjobs.add, 2, 2)  # holding ended with the commit
    assert q.job_ids == [held.id, now.id]

    pending = hold()
    dropped = q.enqueue(eagerjobs.add, 3, 3)
    pending.rollback()
    assert q.broker.get(dropped.id) is None


def test_a_holder_decides_where_enqueues_go() -> None:
    batches: list[PendingJobs] = []

    def holder(queue: Queue) -> PendingJobs | None:
        if queue.name != "held":
            return None
        if not batches or batches[-1].closed:
            batches.append(PendingJobs())
        return batches[-1]

    broker = MemoryBroker()
    add_holder(holder)
    try:
        held = Queue("held", broker=broker).enqueue(eagerjobs.add, 1, 1)
        sent = Queue("sent", broker=broker).enqueue(eagerjobs.add, 2, 2)
        with defer_until_commit():  # a block inside the framework's transaction waits for it
            inner = Queue("held", broker=broker).enqueue(eagerjobs.add, 3, 3)
        assert broker.get(held.id) is None and broker.get(inner.id) is None
        assert broker.get(sent.id) is not None
        batches[-1].commit()
        assert broker.queued_ids("held") == [held.id, inner.id]
    finally:
        remove_holder(holder)


def test_defer_until_commit_is_exported() -> None:
    assert myrq.defer_until_commit is defer_until_commit
    assert isinstance(Queue("q", broker=MemoryBroker()).broker, Broker)
