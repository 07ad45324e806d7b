"""Classes the config tests select by dotted path (so they must live in a module)."""

from __future__ import annotations

from myrq.backends import MemoryBroker


class CountingBroker(MemoryBroker):
    """A broker that counts how often it is built."""

    made = 0

    def __init__(self) -> None:
        super().__init__("memory://counting")
        CountingBroker.made += 1


not_a_broker = object()


class NeedsArguments(MemoryBroker):
    """A broker whose constructor needs an argument (so config cannot build it)."""

    def __init__(self, required: str) -> None:
        super().__init__(required)
