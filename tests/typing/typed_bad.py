"""Must NOT type-check: each line marked with an E comment is an error mypy reports."""

from __future__ import annotations

import myrq
from myrq import Queue


def add(a: int, b: int) -> int:
    return a + b


@myrq.task
def send(user_id: int) -> str:
    return str(user_id)


def check(q: Queue) -> None:
    q.enqueue(add, 1, "x")  # E: wrong argument type
    q.enqueue(add, 1)  # E: missing argument
    q.enqueue(add, 1, 2, job_timeout=5)  # E: options are not the function's keywords
    q.with_options(timeout=5).enqueue(add, 1, 2, 3)  # E: too many arguments
    send.delay("seven")  # E: wrong argument type
    _: str = q.enqueue(add, 1, 2).wait()  # E: the result is an int
