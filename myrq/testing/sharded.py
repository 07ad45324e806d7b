"""Contract hooks for the sharded Redis layout (:mod:`myrq.backends.redis_sharded`).

The hooks of :class:`~myrq.testing.brokers.RedisBrokerContract`, each on the
shard that keeps the job. The layout keeps FIFO order, queue priority and
"release puts it first" within a shard, not between jobs on different shards
(docs/scaling.md). The contract tests that pin the relative order of jobs with
different ids (:data:`ORDER_TESTS`) therefore run on a layout of one shard,
where the order is defined, as a user who needs it would configure it; every
other test runs on the full layout, its jobs spread over the shards by id.
``tests/test_cluster_sharded.py`` tests the order the full layout does keep.

Subclass it and write ``make_sharded_broker(shards)`` (``None``: the default
count), returning a fresh, empty broker.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

import pytest

from myrq.backends.base import Broker
from myrq.testing.brokers import RedisBrokerContract

if TYPE_CHECKING:
    from myrq.backends.redis_sharded import ShardedRedisBroker

#: Contract tests that assert the order of jobs with different ids.
ORDER_TESTS = frozenset(
    {
        "test_queue_is_first_in_first_out",
        "test_enqueue_many_stores_all_and_reports_refused_ids",
        "test_dequeue_takes_queues_in_priority_order",
        "test_id_without_record_is_dropped_unclaimed_and_not_recreated",
        "test_release_puts_the_job_back_first_and_uncounted",
        "test_finish_many_and_dequeue_writes_each_then_claims",
        "test_batch_claim_is_reaped_uncounted_then_runs_solo",
        "test_a_solo_job_is_never_claimed_with_others",
        "test_a_resent_claim_hands_out_the_same_jobs_and_claims_no_more",
        "test_renew_many_renews_each_held_lease_and_reports_the_others",
        "test_repair_requeues_running_jobs_that_hold_no_lease",
        "test_a_claim_moves_due_jobs_onto_the_queue_once",
        "test_at_front_puts_the_job_first",
        "test_a_job_with_two_dependencies_waits_for_both",
        "test_ended_jobs_enter_the_registry_of_their_state",
        "test_stop_marks_a_running_job_and_its_renewal_reports_it",
        "test_requeue_runs_an_ended_job_again",
    }
)


def _view(broker: Broker, job_id: str) -> Broker:
    return cast("ShardedRedisBroker", broker).shard_for(job_id)


class ShardedRedisBrokerContract(RedisBrokerContract):
    """Hooks for the sharded Redis broker: the classic layout's, on the job's shard."""

    @pytest.fixture
    def broker(self, request: pytest.FixtureRequest) -> Iterator[Broker]:
        name = getattr(request.node, "originalname", request.node.name)
        made = self.make_sharded_broker(1 if name in ORDER_TESTS else None)
        yield made
        made.close()

    def make_sharded_broker(self, shards: int | None) -> Broker:
        """A fresh, empty sharded broker with ``shards`` shards (None: the default)."""
        self.missing_hook("make_sharded_broker", "return a fresh, empty sharded broker")

    def drop_record_only(self, broker: Broker, job_id: str) -> None:
        super().drop_record_only(_view(broker, job_id), job_id)

    def push_id_only(self, broker: Broker, queue: str, job_id: str) -> None:
        super().push_id_only(_view(broker, job_id), queue, job_id)

    def drop_lease_only(self, broker: Broker, job_id: str) -> None:
        super().drop_lease_only(_view(broker, job_id), job_id)

    def write_fields(self, broker: Broker, job_id: str, fields: dict[str, bytes]) -> None:
        super().write_fields(_view(broker, job_id), job_id, fields)

    def remove_fields(self, broker: Broker, job_id: str, *names: str) -> None:
        super().remove_fields(_view(broker, job_id), job_id, *names)
