"""Sentry: each failed run reported once, with its tags, through sentry-sdk's transport (no network)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.transport import Transport

from myrq import Queue, Retry, Worker
from myrq.backends import MemoryBroker
from myrq.contrib.sentry import MyrqIntegration, SentryHooks
from tests import eagerjobs


class Captured(Transport):
    """sentry-sdk's transport contract, keeping each envelope instead of sending it."""

    def __init__(self) -> None:
        super().__init__()
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def events(self) -> list[dict[str, Any]]:
        return [e.get_event() for e in self.envelopes if e.get_event() is not None]  # type: ignore[misc]


def _init(transport: Captured, *integrations: Any) -> None:
    sentry_sdk.init(
        dsn="https://key@sentry.invalid/1",
        transport=transport,
        default_integrations=False,  # no dedupe: a second report of a run would show
        integrations=[
            LoggingIntegration(level=logging.INFO, event_level=logging.ERROR),
            *integrations,
        ],
    )


@pytest.fixture
def sent() -> Iterator[Captured]:
    transport = Captured()
    yield transport
    sentry_sdk.init()  # no DSN: nothing is sent from here on


def _work(queue: Queue, *hooks: SentryHooks) -> None:
    Worker([queue.name], broker=queue.broker, allow=["tests"], hooks=hooks).work(burst=True)


def test_a_failed_run_is_reported_once_with_its_tags(sent: Captured) -> None:
    _init(sent, MyrqIntegration())
    q = Queue("reports", broker=MemoryBroker())
    job = q.enqueue(eagerjobs.divide, 1, 0)
    _work(q)

    (event,) = sent.events()
    assert event["tags"] == {
        "myrq.job_id": job.id,
        "myrq.function": "tests.eagerjobs.divide",
        "myrq.queue": "reports",
        "myrq.attempt": "1",
    }
    (exception,) = event["exception"]["values"]
    assert exception["type"] == "ZeroDivisionError"
    assert exception["mechanism"] == {"type": "myrq", "handled": False}
    assert event["transaction"] == "tests.eagerjobs.divide"
    assert event["contexts"]["myrq"]["status"] == "failed"


def test_a_retry_that_later_succeeds_sends_nothing(sent: Captured) -> None:
    _init(sent, MyrqIntegration())
    q = Queue("reports", broker=MemoryBroker())
    q.enqueue(eagerjobs.flaky, "sentry-ok", 2, retry=Retry(max=3))
    _work(q)
    assert sent.events() == []


def test_the_last_try_is_reported_with_its_attempt(sent: Captured) -> None:
    _init(sent, MyrqIntegration())
    q = Queue("reports", broker=MemoryBroker())
    q.enqueue(eagerjobs.flaky, "sentry-never", 9, retry=Retry(max=2))
    _work(q)
    (event,) = sent.events()
    assert event["tags"]["myrq.attempt"] == "3"


def test_report_retries_reports_every_failed_run(sent: Captured) -> None:
    _init(sent, MyrqIntegration(report_retries=True))
    q = Queue("reports", broker=MemoryBroker())
    q.enqueue(eagerjobs.flaky, "sentry-each", 2, retry=Retry(max=3))
    _work(q)
    assert [e["tags"]["myrq.attempt"] for e in sent.events()] == ["1", "2"]
    assert all(e["contexts"]["myrq"]["will_retry"] for e in sent.events())


def test_timeouts_are_reported_and_successes_are_not(sent: Captured) -> None:
    _init(sent, MyrqIntegration())
    q = Queue("reports", broker=MemoryBroker())
    q.enqueue(eagerjobs.add, 1, 1)
    q.enqueue(eagerjobs.nap, 5, job_timeout=0.2)
    _work(q)
    (event,) = sent.events()
    assert event["contexts"]["myrq"]["status"] == "timeout"
    assert event["exception"]["values"][0]["type"] == "JobTimeout"


def test_the_hooks_alone_report_without_the_integration(sent: Captured) -> None:
    _init(sent)
    q = Queue("reports", broker=MemoryBroker())
    q.enqueue(eagerjobs.divide, 1, 0)
    _work(q)
    assert sent.events() == []  # the integration is not on

    q.enqueue(eagerjobs.divide, 2, 0)
    _work(q, SentryHooks())
    assert len(sent.events()) == 1


def test_an_isolated_job_is_reported_from_its_recorded_error(sent: Captured) -> None:
    _init(sent, MyrqIntegration())
    q = Queue("reports", broker=MemoryBroker())
    job = q.enqueue(eagerjobs.divide, 1, 0)
    Worker(["reports"], broker=q.broker, allow=["tests"], isolate=True).work(burst=True)
    (event,) = sent.events()
    assert event["tags"]["myrq.job_id"] == job.id
    assert "ZeroDivisionError: division by zero" in event["message"]
