"""Serializers: the Serializer contract and the JSON and pickle implementations."""

from __future__ import annotations

from myrq.serializers.base import Serializer
from myrq.serializers.json import JSONSerializer
from myrq.serializers.pickle import PickleSerializer
from myrq.serializers.resolve import resolve_serializer

__all__ = ["JSONSerializer", "PickleSerializer", "Serializer", "resolve_serializer"]
