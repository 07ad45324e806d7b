"""Which functions a worker may run: the allow-list.

A job names its function as a dotted path, and anyone who can write to the
broker can write any path. The original design imported whatever it was
given, so a record naming ``os.system`` with the argument ``"rm -rf ~"`` ran
that command on every worker. A myrq worker runs only:

* functions registered with :func:`task` (``@myrq.task``) or
  :meth:`FunctionRegistry.register`, looked up by name without importing
  anything; and
* functions *defined in* modules under the allowed prefixes (``allow=``,
  ``MYRQ_ALLOW``, ``[tool.myrq] allow``, ``myrq worker --allow``). A prefix
  ``"app.tasks"`` allows ``app.tasks`` and ``app.tasks.*``, never ``app`` or
  ``app.tasks_extra``. Only allowed modules are imported; a function that an
  allowed module merely imported from elsewhere (``from os import system``) is
  refused, and so is a path that walks through another module
  (``app.tasks.os.system``).

Any other name fails its job with :class:`~myrq.exceptions.FunctionNotAllowed`
before anything is imported.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from myrq.exceptions import ConfigurationError, FunctionNotAllowed, InvalidJobError
from myrq.functions import lookup, static_name

F = TypeVar("F", bound=Callable[..., Any])

_MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class FunctionRegistry:
    """Functions registered by name, runnable without any import by the worker."""

    def __init__(self) -> None:
        self._funcs: dict[str, Callable[..., Any]] = {}
        self._options: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def register(self, func: F, *, name: str | None = None, **options: Any) -> F:
        """Register ``func`` under its dotted name (or ``name``) and return it unchanged.

        Raises:
            InvalidJobError: ``func`` cannot be named (a lambda, a nested
                function, a function of ``__main__``...).
        """
        static = static_name(func)  # its module may still be importing: no lookup
        if name is not None and not _MODULE_RE.match(name):
            raise InvalidJobError(f"a task's name must be a dotted path, not {name!r}")
        name = name or static
        if options:
            from myrq.options import JobOptions  # noqa: PLC0415 - options imports the queue side

            JobOptions.build(**options)  # checked now: a typo fails at import, not at enqueue
        with self._lock:
            self._funcs[name] = func
            self._options[name] = dict(options)
        return func

    def options(self, name: str) -> dict[str, Any]:
        """The job options ``@task(...)`` gave the function ``name`` (defaults for its jobs)."""
        return self._options.get(name, {})

    def get(self, name: str) -> Callable[..., Any] | None:
        return self._funcs.get(name)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._funcs)

    def __contains__(self, name: object) -> bool:
        return name in self._funcs


#: The process-wide registry that :func:`task` fills.
registry = FunctionRegistry()


def check_module_prefixes(prefixes: Iterable[str] | str) -> tuple[str, ...]:
    """Validate allow-list entries (a comma-separated string or an iterable)."""
    if isinstance(prefixes, str):
        items = [p.strip() for p in prefixes.split(",")]
        items = [p for p in items if p]
    else:
        items = list(prefixes)
    checked: list[str] = []
    for item in items:
        if not isinstance(item, str) or not _MODULE_RE.match(item.strip()):
            raise ConfigurationError(
                f"allow-list entry {item!r} is not a module name; write module prefixes "
                "like 'app.tasks' (comma-separated in MYRQ_ALLOW)"
            )
        checked.append(item.strip())
    return tuple(dict.fromkeys(checked))


class AllowList:
    """Resolves job function names for one worker, by registry and module prefix.

    Args:
        modules: module prefixes whose functions may run.
        registry: registered functions that may run (default: the global one).
    """

    def __init__(
        self, modules: Iterable[str] | str = (), registry: FunctionRegistry = registry
    ) -> None:
        self.modules = check_module_prefixes(modules)
        self.registry = registry
        self._resolved: dict[str, Callable[..., Any]] = {}

    def __repr__(self) -> str:
        return f"AllowList(modules={list(self.modules)!r}, registered={len(self.registry.names())})"

    def allows_module(self, module: str) -> bool:
        return any(module == p or module.startswith(p + ".") for p in self.modules)

    def resolve(self, name: str) -> Callable[..., Any]:
        """The callable for ``name``, if the allow-list admits it (cached).

        Raises:
            FunctionNotAllowed: neither registered nor in an allowed module;
                nothing was imported.
            FunctionLookupError: allowed, but it cannot be imported.
        """
        func = self._resolved.get(name) or self.registry.get(name)
        if func is not None:
            return func
        if not isinstance(name, str) or not any(name.startswith(p + ".") for p in self.modules):
            allowed = ", ".join(self.modules) or "none"
            raise FunctionNotAllowed(
                f"function {name!r} is not allowed on this worker, so nothing was imported. "
                f"Register it with @myrq.task (and start the worker with --import <its module>) "
                f"or allow its module (Worker(allow=[...]), MYRQ_ALLOW, --allow). "
                f"Allowed module prefixes: {allowed}"
            )
        func = lookup(name, self.allows_module)
        self._resolved[name] = func
        return func
