"""Job functions for the poison-input tests (module level, under the tests package)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any


def ok(value: Any = "ok") -> Any:
    return value


def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs}


def fail(message: Any) -> None:
    raise ValueError(message)


def nap_then(seconds: float, value: Any = None) -> Any:
    time.sleep(seconds)
    return value


# -- unpickling marker ------------------------------------------------------


def touch(path: str) -> str:
    """Called only if a pickle holding a MarkerOnUnpickle is unpickled."""
    Path(path).write_text("unpickled", encoding="utf-8")
    return path


class MarkerOnUnpickle:
    """Unpickling this object calls ``touch(path)``: proof that code ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (touch, (self.path,))


# -- results that cannot be stored -------------------------------------------


def return_set() -> set[int]:
    return {1, 2}


def return_surrogate() -> str:
    return "half a pair: \ud800"


def return_lock() -> Any:
    return threading.Lock()


# -- exceptions that are awkward to record -------------------------------------


class CarriesALock(Exception):
    """An exception that can be printed but not pickled."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


class StrRaises(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ exploded")


class StrAndReprRaise(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ exploded")

    def __repr__(self) -> str:
        raise RuntimeError("__repr__ exploded")


class StrReturnsNonStr(Exception):
    def __str__(self) -> Any:
        return 42  # noqa: PLE0307 - the point of this class


class StrRaisesSystemExit(Exception):
    def __str__(self) -> str:
        raise SystemExit("__str__ called sys.exit")


def raise_unpicklable() -> None:
    raise CarriesALock("holds a lock")


def raise_str_raises() -> None:
    raise StrRaises("x")


def raise_str_and_repr_raise() -> None:
    raise StrAndReprRaise("x")


def raise_str_returns_non_str() -> None:
    raise StrReturnsNonStr("x")


def raise_str_raises_system_exit() -> None:
    raise StrRaisesSystemExit("x")


def raise_surrogate_message() -> None:
    raise ValueError("half a pair: \ud800")


# -- BaseExceptions ------------------------------------------------------------


def raise_system_exit() -> None:
    raise SystemExit(3)


def raise_keyboard_interrupt() -> None:
    raise KeyboardInterrupt


def raise_generator_exit() -> None:
    raise GeneratorExit("closed")
