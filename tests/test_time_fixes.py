"""Fixes to the time features found by the docs review: options, names, ids, self-healing schedules."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis

from myrq import InvalidJobError, Job, JobStatus, Queue, Worker
from myrq.backends import Broker, RedisBroker
from myrq.cron import ensure_next_runs
from myrq.exceptions import ConfigurationError
from myrq.testing.redis_server import RedisServer
from tests import jobs


def test_job_timeout_is_not_read_as_a_parameter_named_timeout(broker: Broker) -> None:
    job = Queue(broker=broker).enqueue(jobs.fetch, "u", job_timeout=60)
    assert job.timeout == 60 and job.kwargs == {}
    with pytest.raises(InvalidJobError, match="parameter 'job_timeout'"):
        Queue(broker=broker).enqueue(jobs.takes_job_timeout, job_timeout=5)


def test_enqueue_call_and_prepare_check_the_call_too(broker: Broker) -> None:
    q = Queue(broker=broker)
    with pytest.raises(InvalidJobError, match="cannot take these arguments"):
        q.enqueue_call(jobs.add, (1,))
    with pytest.raises(InvalidJobError, match="cannot take these arguments"):
        q.prepare(jobs.add, (1, 2, 3))
    with pytest.raises(InvalidJobError, match="unknown job option 'job_timeout'"):
        q.prepare(jobs.add, (1, 2), job_timeout=5)
    assert broker.queue_names() == []


def test_invisible_characters_are_refused_in_job_ids(broker: Broker) -> None:
    q = Queue(broker=broker)
    for bad in ("a\u200bb", "x\u202ey", "\ufeffid", "a\x80b"):
        with pytest.raises(InvalidJobError, match="invisible or formatting"):
            q.enqueue(jobs.add, 1, 2, job_id=bad)
    assert q.enqueue(jobs.add, 1, 2, job_id="café-1").id == "café-1"


def test_worker_settings_take_durations_as_text() -> None:
    w = Worker(["q"], broker="memory://", lease_ttl="30s", idle_wait="500ms", result_ttl="1h")
    assert (w.settings.lease_ttl, w.settings.idle_wait, w.settings.result_ttl) == (30, 0.5, 3600)
    with pytest.raises(ConfigurationError, match="lease_ttl"):
        Worker(["q"], broker="memory://", lease_ttl="soon")


# -- periodic schedules ----------------------------------------------------------------------


def test_schedule_names_with_a_colon_are_refused(broker: Broker) -> None:
    with pytest.raises(InvalidJobError, match="no ':'"):
        Queue(broker=broker).cron(60, jobs.add, args=[1, 2], name="backup:next")


@pytest.mark.parametrize("option", ["ttl", "at_front", "job_id", "delay"])
def test_options_a_schedule_cannot_honour_are_refused(broker: Broker, option: str) -> None:
    value = {"ttl": 5, "at_front": True, "job_id": "x", "delay": 5}[option]
    with pytest.raises(InvalidJobError, match=f"cannot take {option}"):
        Queue(broker=broker).cron(60, jobs.add, args=[1, 2], **{option: value})


def test_a_schedule_takes_rqs_option_names(broker: Broker) -> None:
    s = Queue(broker=broker).cron(60, jobs.add, args=[1, 2], job_timeout=7, name="t")
    assert s.next_job_id is not None
    assert Job.fetch(s.next_job_id, broker=broker).timeout == 7


def test_a_schedule_that_lost_its_next_run_heals(broker: Broker) -> None:
    q = Queue(broker=broker)
    first = q.cron(3600, jobs.add, args=[1, 2], name="hourly")
    assert first.next_job_id is not None
    assert Job.fetch(first.next_job_id, broker=broker).run_now()  # ran early...
    again = q.cron(3600, jobs.add, args=[1, 2], name="hourly")  # ...and registered again
    Worker(["default"], broker=broker, allow=["tests"]).work(burst=True)
    entry = broker.crons("default")["hourly"]
    assert entry.next_id is None or entry.next_id == again.next_job_id
    assert ensure_next_runs(broker, "default", None) == ["hourly"]
    [schedule] = q.cron_jobs()
    assert schedule.next_job_id is not None
    assert Job.fetch(schedule.next_job_id, broker=broker).status is JobStatus.SCHEDULED
    assert ensure_next_runs(broker, "default", None) == []  # nothing to heal now


# -- waiting on a full Redis -------------------------------------------------------------------


@pytest.fixture
def rbroker(redis_client: redis.Redis, redis_server: RedisServer) -> Iterator[RedisBroker]:
    b = RedisBroker(redis_client, url=redis_server.url)
    yield b
    b.close()


def test_wait_on_a_full_redis_falls_back_to_reading_the_record(
    rbroker: RedisBroker, redis_client: redis.Redis
) -> None:
    q = Queue(broker=rbroker)
    job = q.enqueue(jobs.add, 2, 3)
    redis_client.config_set("maxmemory", 1)
    try:
        t = threading.Thread(
            target=lambda: (time.sleep(0.3), Worker(["default"], broker=rbroker).work(burst=True))
        )
        t.start()
        assert job.wait(timeout=10) == 5
        t.join(10)
    finally:
        redis_client.config_set("maxmemory", 0)
