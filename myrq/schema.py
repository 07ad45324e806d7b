"""The stored job record: every field name, the status bytes, number encoding.

A job is stored as a flat mapping of field name to bytes (a Redis hash, SQL
rows, a dict). This module is the one place those names and encodings are
written in Python; the Lua scripts in ``myrq/backends/lua/`` keep their own
copy, and the broker contract suite holds both to the same behaviour.

Fields the broker itself reads or writes (all others it stores opaquely):

``status``      ``pending`` on enqueue, ``running`` on claim, set by the caller on finish
``queue``       name of the queue the job is on; set on claim, read when a lease expires
``attempts``    incremented by one each time the job is claimed
``started_at``  set on claim: seconds since the epoch, as decimal text
``worker``      set on claim: the claiming worker's name
``lease``       the fencing token of the current claim; removed on release (may stay on finish)
``batch``       ``1`` when claimed by a ``dequeue`` of ``count > 1`` (brokers with batch_claims)
``solo``        ``1`` once a batch claim was reaped: the job is only claimed alone from then on
``failure_ttl`` read when a reap fails an abandoned job: seconds to keep it (-1 forever, 0 none)
``ended_at``    set when a reap fails an abandoned job
``error``       set when a reap fails an abandoned job (see :func:`abandoned_error`)

Fields written and read above the broker: ``func`` (the encoded payload),
``sig``, ``timeout``, ``created_at``, ``result``, ``result_ttl``,
``description``.
"""

from __future__ import annotations

import functools
import math
import re

from myrq.status import JobStatus

# -- field names ---------------------------------------------------------------
# The first four are the original design's (see docs/redis-keys.md).

#: The encoded payload ``{"func_name", "args", "kwargs"}`` (the original design
#: named the field ``func``; it holds the whole call, not just the function).
F_PAYLOAD = "func"
F_STATUS = "status"
F_TIMEOUT = "timeout"
F_CREATED_AT = "created_at"
F_QUEUE = "queue"
F_ATTEMPTS = "attempts"
F_STARTED_AT = "started_at"
F_WORKER = "worker"
F_LEASE = "lease"
F_BATCH = "batch"
F_SOLO = "solo"
F_ENDED_AT = "ended_at"
F_ERROR = "error"
F_RESULT = "result"
F_RESULT_TTL = "result_ttl"
F_FAILURE_TTL = "failure_ttl"
F_DESCRIPTION = "description"
#: HMAC of the id and the signed fields (see :mod:`myrq.signing`).
F_SIGNATURE = "sig"
#: The retry policy (JSON, see :class:`myrq.retry.Retry`).
F_RETRY = "retry"
#: Failed runs so far (the function raised or timed out), and their errors (JSON list).
F_TRIES = "tries"
F_ERRORS = "errors"
#: Written by the broker at enqueue when the job has a ``ttl``: the job is not
#: started after this moment (ms since the epoch, broker clock); removed at claim.
F_EXPIRES_AT = "expires_at"
#: ``1`` when a scheduled job goes to the front of its queue once due.
F_AT_FRONT = "at_front"
#: ``1`` while a client waits for the job to end (see ``Broker.wait_for_end``).
F_WAITERS = "waiters"
#: Dependencies: the ids a job waits for (JSON list), how many have not ended,
#: whether it runs when one fails; on a parent, ``1`` once a job waits for it.
F_DEPENDS_ON = "depends_on"
F_PENDING_DEPS = "pending_deps"
F_ALLOW_FAILURE = "allow_failure"
F_HAS_DEPENDENTS = "has_dependents"
#: A deferred job's ttl (ms), applied from when its dependencies are met.
F_TTL_MS = "ttl_ms"
#: ``1`` once someone asked the worker running the job to stop it.
F_STOP = "stop"
#: The job's meta (the serializer's encoding of a dict); see ``Job.meta``.
F_META = "meta"
#: Callbacks run by the worker after the outcome is recorded (function names),
#: and the error a callback raised.
F_ON_SUCCESS = "on_success"
F_ON_FAILURE = "on_failure"
F_ON_STOPPED = "on_stopped"
F_CALLBACK_ERROR = "callback_error"
#: Concurrency keys: at most ``climit`` (default 1) jobs of one ``ckey`` run at once.
F_CKEY = "ckey"
F_CLIMIT = "climit"
#: On a job made by a periodic schedule: the schedule's name and version.
F_CRON = "cron"
F_CRON_VERSION = "cron_version"

#: Fields a signature covers (see :mod:`myrq.signing`): whatever decides what
#: runs and how. A field added here must be one that older records may lack.
SIGNED_FIELDS = (
    F_PAYLOAD,
    F_TIMEOUT,
    F_RESULT_TTL,
    F_FAILURE_TTL,
    F_RETRY,
    F_ON_SUCCESS,
    F_ON_FAILURE,
    F_ON_STOPPED,
    F_CKEY,
    F_CLIMIT,
)

# -- statuses as stored ----------------------------------------------------------

S_SCHEDULED = JobStatus.SCHEDULED.value.encode()
S_PENDING = JobStatus.PENDING.value.encode()
S_RUNNING = JobStatus.RUNNING.value.encode()
S_FINISHED = JobStatus.FINISHED.value.encode()
S_FAILED = JobStatus.FAILED.value.encode()
S_TIMEOUT = JobStatus.TIMEOUT.value.encode()
S_CANCELED = JobStatus.CANCELED.value.encode()
S_DEFERRED = JobStatus.DEFERRED.value.encode()
S_STOPPED = JobStatus.STOPPED.value.encode()

#: Statuses an enqueue of the same id refuses to replace.
LIVE = frozenset({S_SCHEDULED, S_DEFERRED, S_PENDING, S_RUNNING})
#: Statuses in which a job has ended: waiters are told; each has a registry.
ENDED = frozenset({S_FINISHED, S_FAILED, S_TIMEOUT, S_CANCELED, S_STOPPED})
#: Statuses a claim skips: the id is dropped from the queue and reported.
UNCLAIMABLE = frozenset({S_SCHEDULED, S_DEFERRED, S_RUNNING} | ENDED)

# -- numbers -------------------------------------------------------------------


def parse_number(raw: bytes | None) -> float | None:
    """A finite number from a field, or None (absent, garbled, inf or nan)."""
    if raw is None or raw == b"":
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


_COUNT = re.compile(rb"-?[0-9]+")
_DECIMAL = re.compile(rb"-?[0-9]+\.?[0-9]*|-?\.[0-9]+")
#: Ten years in milliseconds: the longest lifetime a broker step sets.
MAX_TTL_MS = 315_360_000_000


def parse_count(raw: bytes | None) -> int:
    """A counter field (``attempts``): decimal digits with an optional ``-``.

    Anything else counts as 0; the value is clamped to 0 .. 10**9. The Lua
    scripts apply the same rule (``count_of`` in ``lua/_lib.lua``).
    """
    if raw is None or not _COUNT.fullmatch(raw):
        return 0
    return max(0, min(int(raw), 10**9))


def parse_ttl_ms(raw: bytes | None) -> int | None:
    """A lifetime field in seconds (``failure_ttl``) as milliseconds for a broker step.

    None when absent or not a plain decimal number; -1 when negative (keep
    forever); else the seconds rounded up to whole milliseconds, at most ten
    years. The Lua scripts apply the same rule (``ttl_ms_of``).
    """
    if raw is None or not _DECIMAL.fullmatch(raw):
        return None
    seconds = float(raw)  # hundreds of digits read as inf: cut to the maximum below
    if seconds < 0:
        return -1
    return MAX_TTL_MS if not math.isfinite(seconds) else min(math.ceil(seconds * 1000), MAX_TTL_MS)


def format_number(value: float) -> bytes:
    """Numbers as the shortest decimal text that round-trips (``60``, ``1.5``)."""
    if float(value).is_integer():
        return str(int(value)).encode()
    return repr(float(value)).encode()


@functools.lru_cache(maxsize=64)
def format_timeout(value: float) -> bytes:
    """:func:`format_number` for timeouts, which repeat (a queue's default, mostly)."""
    return format_number(value)


def format_time(seconds: float) -> bytes:
    """A point in time (seconds since the epoch) as stored: ``repr`` of the float."""
    return repr(seconds).encode()


# -- the reap rule's error -------------------------------------------------------

#: The ``error`` field a reap writes when it gives up on a job (``%d``: attempts).
#: reap.lua formats the same template, passed to it as an argument.
ABANDONED_ERROR_TEMPLATE = (
    '{"type":"AbandonedJob","message":"abandoned %d times: its worker stopped '
    'renewing the lease (killed, hung or cut off) on every attempt","traceback":""}'
)


def abandoned_error(attempts: int) -> bytes:
    """The ``error`` field for a job abandoned ``attempts`` times."""
    return (ABANDONED_ERROR_TEMPLATE % attempts).encode()


#: The ``error`` field of a job not started within its ``ttl`` (claim scripts write it).
EXPIRED_ERROR = (
    b'{"type":"JobExpired","message":"not started within its ttl: it was not run","traceback":""}'
)
#: The ``error`` field of a job canceled by ``Job.cancel``.
CANCELED_ERROR = b'{"type":"JobCanceled","message":"canceled before it ran","traceback":""}'
