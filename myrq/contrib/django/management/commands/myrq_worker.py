"""``python manage.py myrq_worker [QUEUE ...]``: ``myrq worker`` inside this Django project.

It takes ``myrq worker``'s options, read from that command's own parser so the
two never drift apart (``--burst``, ``--concurrency``, ``--isolate``...). With
no QUEUE it runs every queue of ``MYRQ["queues"]``, the first listed first
(``default`` when none are set). Around each job it closes stale database
connections (:class:`~myrq.contrib.django.db.DjangoConnections`), and before
the worker starts it closes every connection the project opened, so none is
carried into a forked process (``--processes``, ``--isolate``).
"""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from myrq.cli.common import Parser
from myrq.cli.run import add_commands, cmd_worker
from myrq.contrib.django.conf import queue_names
from myrq.contrib.django.db import DjangoConnections
from myrq.exceptions import MyrqError
from myrq.hooks import install, uninstall


def worker_arguments() -> list[argparse.Action]:
    """The arguments of ``myrq worker``, as its parser defines them."""
    commands = Parser(prog="myrq").add_subparsers()
    add_commands(commands)
    worker = commands.choices["worker"]
    return [a for a in worker._actions if not isinstance(a, argparse._HelpAction)]


class Command(BaseCommand):
    help = (
        "Run a myrq worker with this project's settings (settings.MYRQ). Takes the options "
        "of 'myrq worker'; with no QUEUE, runs the queues of MYRQ['queues'] in order."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        for action in worker_arguments():
            parser._add_action(action)

    def handle(self, *args: Any, **options: Any) -> None:
        names = [a.dest for a in worker_arguments()]
        values = argparse.Namespace(**{name: options.get(name) for name in names})
        values.queues = values.queues or queue_names()
        connections.close_all()  # no connection of ours crosses a fork
        hooks = DjangoConnections(close_all=bool(values.isolate or values.isolate_queue))
        install(hooks)
        try:
            code = cmd_worker(values)
        except MyrqError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            uninstall(hooks)
        if code:
            raise CommandError(f"the worker exited with status {code}", returncode=code)
