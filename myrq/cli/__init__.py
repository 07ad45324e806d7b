"""The ``myrq`` command line.

``myrq worker`` and ``myrq demo`` run jobs (:mod:`myrq.cli.run`); ``myrq
enqueue`` and ``myrq repair`` change what is stored (:mod:`myrq.cli.manage`);
``myrq info``, ``myrq job`` and ``myrq workers`` show it (:mod:`myrq.cli.inspect`);
``myrq stop``, ``cancel``, ``requeue`` and ``empty`` act on jobs (:mod:`myrq.cli.control`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from myrq.cli import control, inspect, manage, run
from myrq.cli.common import Parser
from myrq.exceptions import MyrqError

_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    **run.COMMANDS,
    **manage.COMMANDS,
    **inspect.COMMANDS,
    **control.COMMANDS,
}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="myrq", description="myrq job queue")
    parser.add_argument("--version", action="version", version=f"myrq {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    run.add_commands(sub)
    manage.add_commands(sub)
    inspect.add_commands(sub)
    control.add_commands(sub)
    return parser


def _version() -> str:
    from myrq import __version__  # noqa: PLC0415 - the package imports this module's parts

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except MyrqError as exc:
        print(f"myrq: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
