"""Turning a callable into a name a worker can import, and back.

A job stores its function as ``"package.module.qualname"`` (the original
design's format). Only functions reachable by that name from a fresh
interpreter can be enqueued: lambdas, nested functions, methods of local
objects and functions defined in ``__main__`` are refused at enqueue time,
instead of failing later in the worker.
"""

from __future__ import annotations

import contextlib
import importlib
import re
from collections.abc import Callable
from types import ModuleType
from typing import Any

from myrq.exceptions import FunctionLookupError, FunctionNotAllowed, InvalidJobError

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
    try:
        return _names[func]
    except (KeyError, TypeError):  # not seen yet, or unhashable
        pass
    name = static_name(func)
    try:
        found = lookup(name)
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
    with contextlib.suppress(TypeError):  # unhashable: checked again next time
        _names[func] = name
    return name


#: Callables already checked by :func:`function_name` (enqueue runs it per job).
_names: dict[Callable[..., Any], str] = {}


def lookup(name: str, module_ok: Callable[[str], bool] | None = None) -> Callable[..., Any]:
    """Import the callable named ``name``.

    With ``module_ok``, only modules it accepts are imported (checked before
    each import), the attribute walk may not pass through another module
    (``allowed.mod.os.system``), and the callable found must be defined in an
    accepted module (a re-exported ``from os import system`` is refused).

    Raises:
        FunctionNotAllowed: ``module_ok`` refused the name; nothing was imported.
        FunctionLookupError: no module/attribute by that name, or not callable.
    """
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise FunctionLookupError(f"function name {name!r} is not a dotted path")
    parts = name.split(".")
    # Import the longest importable module prefix, then walk attributes, so that
    # "pkg.mod.Class.method" works as well as "pkg.mod.func".
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        if module_ok is not None and not module_ok(module_name):
            raise FunctionNotAllowed(
                f"{name!r} is not in an allowed module (module {module_name!r} is not "
                "allowed); nothing was imported"
            )
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
                if module_ok is not None and isinstance(obj, ModuleType):
                    raise FunctionNotAllowed(
                        f"{name!r} reaches module {obj.__name__!r} through an attribute of "
                        f"{module_name!r}; only functions defined in allowed modules can run"
                    )
        except AttributeError as exc:
            raise FunctionLookupError(
                f"cannot import {name!r}: module {module_name!r} has no attribute "
                f"{'.'.join(parts[cut:])!r}"
            ) from exc
        if not callable(obj):
            raise FunctionLookupError(f"{name!r} is a {type(obj).__name__}, not callable")
        if module_ok is not None:
            home = getattr(obj, "__module__", None)
            if not isinstance(home, str) or not module_ok(home):
                raise FunctionNotAllowed(
                    f"{name!r} is defined in module {home!r}, which is not allowed; "
                    "only functions defined in allowed modules can run"
                )
        return obj  # type: ignore[no-any-return]
    raise FunctionLookupError(f"cannot import {name!r}: no module {parts[0]!r}")


def static_name(func: Callable[..., Any]) -> str:
    """``module.qualname`` of ``func``, refusing what no worker could import.

    Unlike :func:`function_name` it does not look the name up, so it works on a
    function whose module is still being imported (a decorator).

    Raises:
        InvalidJobError: a lambda, a nested function, a function of
            ``__main__``, or an object without a module/qualname.
    """
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
    return f"{module}.{qualname}"
