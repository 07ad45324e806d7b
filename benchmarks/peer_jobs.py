"""Job functions for every library in ``benchmarks/compare.py`` and ``benchmarks/io_drain.py``.

Worker processes import this module (run with cwd and PYTHONPATH at the
repository root), so it must stay cheap to import: the plain functions below
(used by myrq, RQ and the bare loop) need nothing but the standard library.
Each peer's app object is built lazily, on first attribute access, through the
module ``__getattr__``; a myrq worker that imports ``noop`` therefore never
imports dramatiq, huey, saq or arq.

The Redis URL comes from ``BENCH_REDIS_URL``, which compare.py sets for itself
and for every worker it starts.

Lazily built attributes:

``dramatiq_broker``            for ``dramatiq benchmarks.peer_jobs:dramatiq_broker``
``dramatiq_noop``, ``dramatiq_stamp``   actors on that broker (queue ``default``)
``huey_app``                   for ``huey_consumer benchmarks.peer_jobs.huey_app``
``huey_noop``, ``huey_stamp``  tasks on that huey
``saq_settings``               for ``saq benchmarks.peer_jobs.saq_settings``
``saq_queue``                  the SAQ queue (``bench``)
``ArqSettings``                for ``arq benchmarks.peer_jobs.ArqSettings``

and for the I/O-bound drains of ``benchmarks/io_drain.py`` (jobs that wait):

``dramatiq_sleep``             an actor that ``time.sleep``s (on ``dramatiq_broker``)
``saq_io_settings``            ``saq benchmarks.peer_jobs.saq_io_settings``: concurrency 100
``ArqIOSettings``              ``arq benchmarks.peer_jobs.ArqIOSettings``: max_jobs 100
``ArqIOPollSettings``          the same with poll_delay 0.05 s (arq's default: 0.5 s)
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

#: Hash where ``stamp(sample)`` records the time a job started (latency runs).
LATENCY_KEY = "bench:latency"
#: Queue name used by myrq, RQ and SAQ (dramatiq, huey and arq use their defaults).
QUEUE = "bench"
#: Jobs one worker process of io_drain.py runs at once (arq max_jobs, SAQ concurrency).
IO_CONCURRENCY = 100
#: arq's poll_delay in ArqIOPollSettings (seconds). An arq worker starts at most
#: max_jobs jobs per poll, then waits poll_delay (default 0.5 s) before it polls again.
ARQ_FAST_POLL = 0.05

_lock = threading.Lock()
_client: Any = None
_lazy: dict[str, Any] = {}


def redis_url() -> str:
    url = os.environ.get("BENCH_REDIS_URL")
    if not url:
        raise RuntimeError("BENCH_REDIS_URL is not set (benchmarks/compare.py sets it)")
    return url


def _redis() -> Any:
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                import redis  # noqa: PLC0415 - only latency jobs need it

                _client = redis.Redis.from_url(redis_url())
    return _client


# -- plain functions: myrq, RQ, the bare loop ---------------------------------


def noop() -> None:
    """The job every drain runs: does nothing, returns None."""


def stamp(sample: int) -> None:
    """Record when this job started, for the idle-latency measurement."""
    _redis().hset(LATENCY_KEY, str(sample), repr(time.time()))


def noop_true() -> bool:
    """huey stores no result for None; returning True gives it a result to count."""
    return True


def stamp_true(sample: int) -> bool:
    stamp(sample)
    return True


def sleep_sync(seconds: float) -> None:
    """An I/O-bound job for threads: waits ``seconds`` without holding the GIL."""
    time.sleep(seconds)


async def sleep_async(seconds: float) -> None:
    """An I/O-bound ``async def`` job: waits ``seconds`` on the event loop."""
    import asyncio  # noqa: PLC0415 - imported by whoever runs it; kept out of no-op workers

    await asyncio.sleep(seconds)


# -- async functions: SAQ and arq (they take a context first) -----------------


async def saq_noop(ctx: Any) -> None:
    return None


async def saq_stamp(ctx: Any, sample: int) -> None:
    stamp(sample)


async def arq_noop(ctx: Any) -> None:
    return None


async def arq_stamp(ctx: Any, sample: int) -> None:
    stamp(sample)


async def saq_sleep(ctx: Any, *, seconds: float) -> None:
    await sleep_async(seconds)


async def arq_sleep(ctx: Any, seconds: float) -> None:
    await sleep_async(seconds)


# -- lazily built peer apps ---------------------------------------------------


def _build_dramatiq() -> None:
    import dramatiq  # noqa: PLC0415
    from dramatiq.brokers.redis import RedisBroker  # noqa: PLC0415

    broker = RedisBroker(url=redis_url())
    dramatiq.set_broker(broker)
    _lazy["dramatiq_broker"] = broker
    _lazy["dramatiq_noop"] = dramatiq.actor(noop, actor_name="noop", broker=broker)
    _lazy["dramatiq_stamp"] = dramatiq.actor(stamp, actor_name="stamp", broker=broker)
    _lazy["dramatiq_sleep"] = dramatiq.actor(sleep_sync, actor_name="sleep", broker=broker)


def _build_huey() -> None:
    from huey import RedisHuey  # noqa: PLC0415

    app = RedisHuey("bench", url=redis_url())
    _lazy["huey_app"] = app
    _lazy["huey_noop"] = app.task(name="noop")(noop_true)
    _lazy["huey_stamp"] = app.task(name="stamp")(stamp_true)


def _build_saq() -> None:
    from saq.queue.redis import RedisQueue  # noqa: PLC0415

    # saq.Queue.from_url accepts only redis:// URLs; RedisQueue.from_url takes unix:// too.
    queue = RedisQueue.from_url(redis_url(), name=QUEUE)
    _lazy["saq_queue"] = queue
    _lazy["saq_settings"] = {"queue": queue, "functions": [saq_noop, saq_stamp]}
    _lazy["saq_io_settings"] = {
        "queue": queue,
        "functions": [saq_sleep],
        "concurrency": IO_CONCURRENCY,
    }


def _build_arq() -> None:
    from arq.connections import RedisSettings  # noqa: PLC0415

    class ArqSettings:
        functions = [arq_noop, arq_stamp]  # noqa: RUF012 - arq reads class attributes
        redis_settings = RedisSettings.from_dsn(redis_url())

    class ArqIOSettings:
        functions = [arq_sleep]  # noqa: RUF012 - arq reads class attributes
        redis_settings = ArqSettings.redis_settings
        max_jobs = IO_CONCURRENCY

    class ArqIOPollSettings:  # not a subclass: arq reads only the class's own __dict__
        functions = [arq_sleep]  # noqa: RUF012 - arq reads class attributes
        redis_settings = ArqSettings.redis_settings
        max_jobs = IO_CONCURRENCY
        poll_delay = ARQ_FAST_POLL

    _lazy["ArqSettings"] = ArqSettings
    _lazy["ArqIOSettings"] = ArqIOSettings
    _lazy["ArqIOPollSettings"] = ArqIOPollSettings
    _lazy["arq_redis_settings"] = ArqSettings.redis_settings


_BUILDERS = {
    "dramatiq_broker": _build_dramatiq,
    "dramatiq_noop": _build_dramatiq,
    "dramatiq_stamp": _build_dramatiq,
    "dramatiq_sleep": _build_dramatiq,
    "huey_app": _build_huey,
    "huey_noop": _build_huey,
    "huey_stamp": _build_huey,
    "saq_queue": _build_saq,
    "saq_settings": _build_saq,
    "saq_io_settings": _build_saq,
    "ArqSettings": _build_arq,
    "ArqIOSettings": _build_arq,
    "ArqIOPollSettings": _build_arq,
    "arq_redis_settings": _build_arq,
}


def __getattr__(name: str) -> Any:
    builder = _BUILDERS.get(name)
    if builder is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _lock:
        if name not in _lazy:
            builder()
    return _lazy[name]
