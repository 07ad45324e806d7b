"""@myrq.task: a Task that calls like its function and .delay()s on its queue with its options."""

from __future__ import annotations

import pytest

import myrq
from myrq import InvalidJobError, Job, JobStatus, Queue, Task, Worker
from myrq.backends import Broker
from tests import asyncjobs


@pytest.fixture
def configured(broker: Broker) -> Broker:
    myrq.configure(broker=broker)
    return broker


def test_a_task_calls_like_its_function() -> None:
    assert isinstance(asyncjobs.plain_task, Task)
    assert asyncjobs.plain_task("hi") == "HI"
    assert asyncjobs.plain_task.__name__ == "plain_task" and asyncjobs.plain_task.__doc__ is None


def test_delay_enqueues_on_the_tasks_queue_with_its_options(configured: Broker) -> None:
    job = asyncjobs.async_task.delay(6, 7)
    assert job.origin == "tasks" and job.timeout == 30 and job.retry is not None
    assert job.retry.max == 2 and job.kwargs == {}
    Worker(["tasks"], broker=configured).work(burst=True)  # registered: no allow-list needed
    assert job.wait(timeout=5) == 42


def test_a_plain_task_delays_to_default_and_runs(configured: Broker) -> None:
    job = asyncjobs.plain_task.delay("abc")
    assert job.origin == "default"
    Worker(["default"], broker=configured).work(burst=True)
    assert job.wait(timeout=5) == "ABC"


def test_a_renamed_task_runs_under_its_registered_name(configured: Broker) -> None:
    job = asyncjobs.renamed_task.delay(1)
    assert job.func_name == "tests.asyncjobs.old_name"
    Worker(["default"], broker=configured).work(burst=True)
    assert job.wait(timeout=5) == 2


def test_a_task_enqueued_by_object_or_by_a_worker_that_imports_it(broker: Broker) -> None:
    q = Queue("tasks", broker=broker)
    job: Job[int] = q.enqueue(asyncjobs.async_task, 2, 3)
    # A worker that allows the module but has not registered it resolves the Task object.
    Worker(
        ["tasks"], broker=broker, allow=["tests"], registry=myrq.registry.FunctionRegistry()
    ).work(burst=True)
    assert job.get_status() is JobStatus.FINISHED and job.result == 6


def test_a_task_cannot_be_decorated_twice() -> None:
    with pytest.raises(InvalidJobError, match="task already"):
        myrq.task(asyncjobs.plain_task)


def test_an_option_given_to_with_options_enqueue_is_refused_with_where_it_goes(
    broker: Broker,
) -> None:
    """Every keyword of with_options(...).enqueue() goes to the function: the error says
    where an option goes instead of listing it as a name the call may take."""
    from tests import jobs

    with pytest.raises(InvalidJobError, match=r"options go in with_options\(\.\.\.\)"):
        Queue(broker=broker).with_options(timeout=5).enqueue(jobs.add, 1, 2, ttl=5)
