"""The base of the contract kit: the ``broker`` fixture, the hooks, the helpers the tests share."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NoReturn

import pytest

from myrq.backends.base import Broker

W = "worker-1"


def record(n: int = 0, /, **extra: bytes) -> dict[str, bytes]:
    base = {
        "func": b'{"func_name":"m.f","args":[%d],"kwargs":{}}' % n,
        "status": b"pending",
        "timeout": b"60",
        "created_at": b"1700000000",
        "queue": b"q",
    }
    base.update(extra)
    return base


def put(broker: Broker, job_id: str, queue: str = "q", **extra: bytes) -> None:
    fields = record(**extra)
    fields["queue"] = queue.encode()
    broker.enqueue(queue, job_id, fields)


def claim_one(
    broker: Broker, queues: list[str] | None = None, lease: float = 30.0
) -> tuple[str, str]:
    out = broker.dequeue(queues or ["q"], W, lease)
    assert len(out) == 1 and out[0].token is not None, out
    return out[0].job_id, out[0].token


class BrokerHooks:
    """The fixture and hooks every contract test uses; see :mod:`myrq.testing.contract`."""

    @pytest.fixture
    def broker(self) -> Iterator[Broker]:
        made = self.make_broker()
        yield made
        made.close()

    # -- hooks ---------------------------------------------------------------

    def make_broker(self) -> Broker:
        """A fresh, empty broker (or override the ``broker`` fixture instead)."""
        self.missing_hook("make_broker", "return a fresh, empty broker")

    def drop_record_only(self, broker: Broker, job_id: str) -> None:
        """Delete a record but keep its queue entries and lease (what an expiry does)."""
        self.missing_hook(
            "drop_record_only", "delete a record, keeping its queue entries and lease"
        )

    def push_id_only(self, broker: Broker, queue: str, job_id: str) -> None:
        """Append an id to a queue without touching its record (a duplicate push)."""
        self.missing_hook("push_id_only", "append an id to a queue without touching its record")

    def drop_lease_only(self, broker: Broker, job_id: str) -> None:
        """Forget a job's lease but keep its record (what losing the lease set does)."""
        self.missing_hook("drop_lease_only", "remove a job's lease, keeping its record as it is")

    def write_fields(self, broker: Broker, job_id: str, fields: dict[str, bytes]) -> None:
        """Overwrite fields of a stored record in place, as a foreign writer would."""
        self.missing_hook("write_fields", "set fields of a stored record, changing nothing else")

    def remove_fields(self, broker: Broker, job_id: str, *names: str) -> None:
        """Remove fields from a stored record in place, as a foreign writer would."""
        self.missing_hook(
            "remove_fields", "remove fields of a stored record, changing nothing else"
        )

    def missing_hook(self, hook: str, what: str) -> NoReturn:
        pytest.fail(
            f"{type(self).__name__} does not implement the contract hook {hook}(): {what}. "
            "See docs/writing-a-broker.md, 'Running the contract suite on your broker'."
        )
