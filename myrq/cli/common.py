"""What every command shares: the parser, the broker options, readable times."""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from typing import Any, NoReturn

from myrq import config
from myrq.backends import Broker
from myrq.exceptions import MyrqError


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broker", metavar="URL", help="broker URL (default: configured)")
    p.add_argument("--serializer", metavar="NAME", help="json, pickle or a dotted path")


def broker_of(args: argparse.Namespace) -> Broker:
    return config.get_broker(args.broker)


def json_arg(text: str, label: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise MyrqError(
            f"{label} {text!r} is not JSON; write strings in JSON quotes, e.g. '\"{text}\"'"
        ) from None


def span(seconds: float) -> str:
    """A duration for people: ``0.004s``, ``12.3s``, ``4m05s``, ``2h03m``, ``3d04h``."""
    seconds = abs(seconds)
    if seconds < 10:
        return f"{seconds:.3g}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def moment(when: datetime | float | None, now: float | None = None) -> str:
    """A point in time for people: ``2026-12-02 05:01:02 UTC (3.2s ago)``, or ``-``."""
    if when is None:
        return "-"
    stamp = when.timestamp() if isinstance(when, datetime) else when
    now = time.time() if now is None else now
    shown = datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    rel = f"in {span(stamp - now)}" if stamp > now else f"{span(now - stamp)} ago"
    return f"{shown} ({rel})"


def worker_state(broker: Broker, name: str | None, live: dict[str, dict[str, bytes]]) -> str:
    """``name (alive)`` or ``name (gone: not registered)``."""
    if not name:
        return "-"
    return f"{name} (alive)" if name in live else f"{name} (gone: no longer registered)"
