"""Job errors to Sentry, built on :mod:`myrq.hooks` (``pip install 'myrq[sentry]'``).

Turn it on where ``sentry_sdk.init`` is called, in the worker's process::

    import sentry_sdk
    from myrq.contrib.sentry import MyrqIntegration

    sentry_sdk.init(dsn=..., integrations=[MyrqIntegration()])

(``myrq worker --import myapp.sentry_setup`` imports such a module at start.)
Or, without the integration, add :class:`SentryHooks` to a worker:
``Worker(..., hooks=[SentryHooks()])`` or ``myrq.hooks.install(SentryHooks())``.

What is reported: each run that ends ``failed`` or ``timeout`` and will not
run again, once, as an event with the job's live exception (handled=False,
mechanism ``myrq``), or, for an isolated job whose exception stayed in its
child process, as a message with the recorded error and traceback. Its tags:
``myrq.job_id``, ``myrq.function``, ``myrq.queue`` and ``myrq.attempt`` (the
failed run's number: 1 for the first run, 2 for the first retry...); the
``myrq`` context adds the status, the error type and whether it will retry;
the event's transaction is the function's name. A failed run that will be
retried is not reported, so a job that fails twice and then succeeds sends
nothing: ``report_retries=True`` reports every failed run instead. Jobs
stopped on request (``job.stop()``) are not errors and are not reported.

The worker logs a failed run at INFO, below Sentry's logging integration's
event level, so the same failure is not sent twice through the logs.
"""

from __future__ import annotations

from typing import Any

try:
    import sentry_sdk
    from sentry_sdk.integrations import Integration
    from sentry_sdk.utils import event_from_exception
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("myrq.contrib.sentry needs sentry-sdk: pip install 'myrq[sentry]'") from exc

from myrq import hooks as lifecycle
from myrq.hooks import Hooks, JobOutcome
from myrq.job import Job
from myrq.status import JobStatus

__all__ = ["MyrqIntegration", "SentryHooks"]

_REPORTED = (JobStatus.FAILED, JobStatus.TIMEOUT)


class SentryHooks(Hooks):
    """Reports failed runs to the current Sentry client (see the module docstring).

    Args:
        report_retries: also report failed runs after which the job runs again.
    """

    def __init__(self, *, report_retries: bool = False) -> None:
        self.report_retries = report_retries

    def after_job(self, job: Job[Any], outcome: JobOutcome) -> None:
        if outcome.status not in _REPORTED or (outcome.will_retry and not self.wants_retries()):
            return
        report(job, outcome)

    def wants_retries(self) -> bool:
        return self.report_retries


def report(job: Job[Any], outcome: JobOutcome) -> None:
    """Send one failed run of ``job`` to Sentry, with its tags."""
    function = _safe(lambda: job.func_name, "<unknown>")
    attempt = _safe(lambda: str(job.tries or 1), "?")
    error = outcome.error
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("myrq.job_id", job.id)
        scope.set_tag("myrq.function", function)
        scope.set_tag("myrq.queue", _safe(lambda: job.origin, "?"))
        scope.set_tag("myrq.attempt", attempt)
        scope.set_transaction_name(function)
        scope.set_context(
            "myrq",
            {
                "job_id": job.id,
                "status": outcome.status.value,
                "error_type": error.type if error is not None else None,
                "will_retry": outcome.will_retry,
                "elapsed": round(outcome.elapsed, 6),
            },
        )
        if outcome.exception is not None:
            client = sentry_sdk.get_client()
            event, hint = event_from_exception(
                outcome.exception,
                client_options=client.options,
                mechanism={"type": "myrq", "handled": False},
            )
            sentry_sdk.capture_event(event, hint=hint)
        else:  # an isolated job: its exception stayed in the child
            if error is not None:
                scope.set_extra("traceback", error.traceback)
            message = f"{error.type}: {error.message}" if error is not None else outcome.status
            sentry_sdk.capture_message(f"myrq job {job.id} {outcome.status}: {message}", "error")


def _safe(read: Any, default: str) -> str:
    """A field of a record that may be partial or foreign: never fail the report for it."""
    try:
        return str(read())
    except Exception:
        return default


class MyrqIntegration(Integration):
    """``sentry_sdk.init(integrations=[MyrqIntegration()])``: report failed runs of this process.

    Installs one :class:`SentryHooks` for every worker of the process (once);
    it reports only while the current Sentry client has this integration.
    """

    identifier = "myrq"

    def __init__(self, *, report_retries: bool = False) -> None:
        self.report_retries = report_retries

    @staticmethod
    def setup_once() -> None:
        lifecycle.install(_IntegrationHooks())


class _IntegrationHooks(SentryHooks):
    """The integration's hooks: its options are those of the current client's integration."""

    def after_job(self, job: Job[Any], outcome: JobOutcome) -> None:
        if sentry_sdk.get_client().get_integration(MyrqIntegration) is not None:
            super().after_job(job, outcome)

    def wants_retries(self) -> bool:
        integration = sentry_sdk.get_client().get_integration(MyrqIntegration)
        return isinstance(integration, MyrqIntegration) and integration.report_retries
