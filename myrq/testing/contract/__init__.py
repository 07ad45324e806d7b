"""The behavioural contract every Broker must pass, as a pytest mixin.

Use it from pytest::

    from myrq.testing.contract import BrokerContract

    class TestMyBroker(BrokerContract):
        def make_broker(self):
            return MyBroker(...)           # fresh and empty

        def drop_record_only(self, broker, job_id): ...
        def push_id_only(self, broker, queue, job_id): ...
        def write_fields(self, broker, job_id, fields): ...
        def remove_fields(self, broker, job_id, *names): ...
        def drop_lease_only(self, broker, job_id): ...

``make_broker`` (or a ``broker`` fixture of your own, for set-up and
tear-down) gives each test a fresh, empty broker. The other methods are
hooks: the few steps a test needs that the Broker contract offers no method
for, because they put the storage into a state only a crash, an expiry or a
foreign client produces. Every test runs on every broker; a test that needs a
hook you did not write fails with a message naming it.
:class:`myrq.testing.brokers.StoreBrokerContract` and
:class:`~myrq.testing.brokers.RedisBrokerContract` implement the hooks for
the built-in brokers and for any broker on a :class:`~myrq.backends.store.Store`.

Times used here are short (leases of a few hundred ms) but each check allows
generous slack, so the suite is not flaky on a loaded machine. The tests are
grouped by area, one module each (producing, consuming, leases, batches,
inspecting, robustness, timing, workflow, keys); :class:`BrokerContract` combines them all.
"""

from __future__ import annotations

try:
    import pytest  # noqa: F401 - checked first, so a missing pytest gets this message
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "myrq.testing.contract is a pytest test kit: install it with pip install 'myrq[testing]'"
    ) from exc

from myrq.testing.contract.batches import BatchContract
from myrq.testing.contract.consuming import ConsumingContract
from myrq.testing.contract.inspecting import InspectingContract
from myrq.testing.contract.keys import ConcurrencyKeyContract
from myrq.testing.contract.kit import BrokerHooks
from myrq.testing.contract.leases import LeaseContract
from myrq.testing.contract.producing import ProducingContract
from myrq.testing.contract.robustness import RobustnessContract
from myrq.testing.contract.timing import TimingContract
from myrq.testing.contract.workflow import WorkflowContract

__all__ = ["BrokerContract", "BrokerHooks"]


class BrokerContract(
    ProducingContract,
    ConsumingContract,
    LeaseContract,
    BatchContract,
    InspectingContract,
    RobustnessContract,
    TimingContract,
    WorkflowContract,
    ConcurrencyKeyContract,
):
    """Every contract test; subclass it and write :meth:`make_broker` and the hooks."""
