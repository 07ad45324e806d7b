"""The broker contract suite, run on every broker (see conftest.broker)."""

from myrq.testing.contract import BrokerContract


class TestBrokerContract(BrokerContract):
    pass
