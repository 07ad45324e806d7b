"""Imports a module that does not exist, whose name is a prefix of this one's."""

import tests.badmods.tasks  # noqa: F401


def run() -> None:
    pass
