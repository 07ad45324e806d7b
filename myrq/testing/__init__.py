"""Test kit for users and backend authors.

- :class:`myrq.testing.contract.BrokerContract`: the behavioural suite every
  broker must pass. Subclass it in a pytest module and provide a ``broker``
  fixture that returns a fresh, empty broker.
- :mod:`myrq.testing.redis_server`: start a throwaway ``redis-server``.
"""
