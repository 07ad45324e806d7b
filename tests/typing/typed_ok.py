"""Type-checks cleanly (mypy --strict): what the typed API promises. Not run, only checked."""

from __future__ import annotations

from typing import Any, assert_type

import myrq
from myrq import Job, Queue


def add(a: int, b: int) -> int:
    return a + b


async def fetch(url: str, *, retries: int = 1) -> bytes:
    return b""


@myrq.task
def send(user_id: int) -> str:
    return str(user_id)


@myrq.task(queue="mail", retry=3, timeout="5m")
async def notify(user_id: int, text: str = "") -> bool:
    return True


def check(q: Queue) -> None:
    assert_type(q.enqueue(add, 1, 2), Job[int])
    assert_type(q.enqueue(fetch, "https://x", retries=2), Job[bytes])
    assert_type(q.enqueue("pkg.module.func", 1, anything=2), Job[Any])
    assert_type(q.with_options(timeout="5m", retry=3).enqueue(add, 1, b=2), Job[int])
    assert_type(q.with_options(job_id="x").enqueue_in(10, fetch, "u"), Job[bytes])
    assert_type(q.enqueue(add, 1, 2).result, int | None)
    assert_type(q.enqueue(add, 1, 2).wait(timeout=5), int)
    assert_type(send.delay(7), Job[str])
    assert_type(notify.delay(7, text="hi"), Job[bool])
    assert_type(send(7), str)  # still the function
    assert_type(q.enqueue(send, 7), Job[str])
    assert_type(q.enqueue_call(add, (1, 2), timeout=5), Job[Any])
