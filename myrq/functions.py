"""Turning a callable into a name a worker can import, and back.

A job stores its function as ``"package.module.qualname"`` (the original
design's format). Only functions reachable by that name from a fresh
interpreter can be enqueued: lambdas, nested functions, methods of local
objects and functions defined in ``__main__`` are refused at enqueue time,
instead of failing later in the worker.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Callable
from typing import Any

from myrq.exceptions import FunctionLookupError, InvalidJobError

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def function_name(func: Callable[..., Any] | str) -> str:
    """The importable dotted name of ``func``.

    Raises:
        InvalidJobError: ``func`` cannot be found again by name in a worker;
            the message names it and says what to do.
    """
    if isinstance(func, str):
        name = func.strip().replace(":", ".")
        if not _NAME_RE.match(name):
            raise InvalidJobError(
                f"function name {func!r} is not a dotted path; write it as 'package.module.func'"
            )
        return name
    if not callable(func):
        raise InvalidJobError(
            f"cannot enqueue {func!r}: it is a {type(func).__name__}, not a function "
            "or a 'package.module.func' string"
        )
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    shown = qualname or repr(func)
    if not module or not qualname:
        raise InvalidJobError(
            f"cannot enqueue {func!r}: it has no __module__/__qualname__ to import it by; "
            "enqueue a module-level function instead"
        )
    if qualname == "<lambda>" or "<lambda>" in qualname:
        raise InvalidJobError(
            f"cannot enqueue the lambda {module}.{shown}: a worker cannot import a lambda; "
            "define a module-level function and enqueue that"
        )
    if "<locals>" in qualname:
        raise InvalidJobError(
            f"cannot enqueue {module}.{shown}: it is defined inside another function, so a "
            "worker cannot import it; move it to module level"
        )
    if module == "__main__":
        raise InvalidJobError(
            f"cannot enqueue __main__.{shown}: functions of the script being run cannot be "
            "imported by a worker; move it into an importable module"
        )
    name = f"{module}.{qualname}"
    try:
        found = _lookup(name)
    except FunctionLookupError:
        found = None
    if found is not func and found != func:
        owner = getattr(func, "__self__", None)
        hint = (
            f"it is a method bound to {type(owner).__qualname__} instance {owner!r}, and a "
            "worker cannot rebuild that object"
            if owner is not None
            else "the name does not lead back to this object"
        )
        raise InvalidJobError(
            f"cannot enqueue {name}: {hint}; enqueue a module-level function (or a "
            "staticmethod/classmethod) instead"
        )
    return name


_cache: dict[str, Callable[..., Any]] = {}
_cache_lock = threading.Lock()


def resolve_function(name: str) -> Callable[..., Any]:
    """Import the callable named ``name`` (cached after the first lookup).

    Raises:
        FunctionLookupError: no module/attribute by that name, or not callable.
    """
    func = _cache.get(name)
    if func is None:
        func = _lookup(name)
        with _cache_lock:
            _cache[name] = func
    return func


def _lookup(name: str) -> Callable[..., Any]:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise FunctionLookupError(f"function name {name!r} is not a dotted path")
    parts = name.split(".")
    # Import the longest importable module prefix, then walk attributes, so that
    # "pkg.mod.Class.method" works as well as "pkg.mod.func".
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            obj: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            if module_name == missing or module_name.startswith(missing + "."):
                continue  # this prefix is not a module; try a shorter one
            raise FunctionLookupError(
                f"cannot import {name!r}: importing module {module_name!r} failed: {exc}"
            ) from exc
        except (Exception, SystemExit, KeyboardInterrupt) as exc:
            # A module that calls sys.exit() at import fails the job, not the worker.
            # (JobTimeout and the worker's own shutdown signal pass through.)
            raise FunctionLookupError(
                f"cannot import {name!r}: importing module {module_name!r} raised "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError as exc:
            raise FunctionLookupError(
                f"cannot import {name!r}: module {module_name!r} has no attribute "
                f"{'.'.join(parts[cut:])!r}"
            ) from exc
        if not callable(obj):
            raise FunctionLookupError(f"{name!r} is a {type(obj).__name__}, not callable")
        return obj  # type: ignore[no-any-return]
    raise FunctionLookupError(f"cannot import {name!r}: no module {parts[0]!r}")
