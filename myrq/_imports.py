"""Import an object named by a dotted path (config values, not job payloads)."""

from __future__ import annotations

import importlib
from typing import Any

from myrq.exceptions import ConfigurationError


def import_object(path: str, *, what: str) -> Any:
    """Import ``"package.module:attr"`` or ``"package.module.attr"``.

    Raises:
        ConfigurationError: the module or attribute does not exist.
    """
    if ":" in path:
        module_name, _, attr_path = path.partition(":")
    else:
        module_name, _, attr_path = path.rpartition(".")
    if not module_name or not attr_path:
        raise ConfigurationError(
            f"{what} {path!r} is not a dotted path; write it as 'package.module:ClassName'"
        )
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"{what} {path!r}: cannot import module {module_name!r} ({exc})"
        ) from exc
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise ConfigurationError(
                f"{what} {path!r}: module {module_name!r} has no attribute {attr_path!r}"
            ) from exc
    return obj
