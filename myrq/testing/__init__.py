"""Test kit for users and backend authors (``pip install 'myrq[testing]'``).

- :class:`myrq.testing.contract.BrokerContract`: the behavioural suite every
  broker must pass, as a pytest mixin with hooks for the broker-specific steps.
- :mod:`myrq.testing.brokers`: those hooks for the built-in brokers and for
  any broker on a :class:`~myrq.backends.store.Store`.
- :mod:`myrq.testing.redis_server`: start a throwaway ``redis-server``.
"""
