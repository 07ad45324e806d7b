"""Pick a serializer from a name, a dotted path, or an instance."""

from __future__ import annotations

from myrq._imports import import_object
from myrq.exceptions import ConfigurationError
from myrq.serializers.base import Serializer
from myrq.serializers.json import JSONSerializer
from myrq.serializers.pickle import PickleSerializer

_BY_NAME: dict[str, type[Serializer]] = {
    JSONSerializer.name: JSONSerializer,
    PickleSerializer.name: PickleSerializer,
}


def resolve_serializer(spec: str | Serializer | type[Serializer]) -> Serializer:
    """Return a serializer for ``spec``.

    ``spec`` is a :class:`Serializer` instance or subclass, a name (``"json"``,
    ``"pickle"``), or a dotted path to a subclass (``"pkg.module:MySerializer"``).

    Raises:
        ConfigurationError: ``spec`` names nothing usable; the message lists
            what is accepted.
    """
    if isinstance(spec, Serializer):
        return spec
    if isinstance(spec, type) and issubclass(spec, Serializer):
        return spec()
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigurationError(
            f"serializer {spec!r} is not usable: give a name ({', '.join(sorted(_BY_NAME))}), "
            "a dotted path 'package.module:ClassName', or a Serializer instance"
        )
    name = spec.strip()
    if name.lower() in _BY_NAME:
        return _BY_NAME[name.lower()]()
    if "." not in name and ":" not in name:
        raise ConfigurationError(
            f"unknown serializer {name!r}: accepted names are "
            f"{', '.join(sorted(_BY_NAME))}, or a dotted path 'package.module:ClassName'"
        )
    obj = import_object(name, what="serializer")
    if isinstance(obj, type) and issubclass(obj, Serializer):
        return obj()
    if isinstance(obj, Serializer):
        return obj
    raise ConfigurationError(
        f"serializer {name!r} resolves to {obj!r}, which is not a myrq.serializers.Serializer "
        "subclass or instance"
    )
