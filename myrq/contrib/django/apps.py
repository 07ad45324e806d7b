"""The app: ``INSTALLED_APPS = [..., "myrq.contrib.django"]`` (see :mod:`myrq.contrib.django`)."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core.signals import setting_changed

from myrq import transaction


class MyrqConfig(AppConfig):
    name = "myrq.contrib.django"
    label = "myrq"
    verbose_name = "myrq"

    def ready(self) -> None:
        from myrq.contrib.django import conf, db  # noqa: PLC0415 - once Django is set up

        conf.apply()
        transaction.add_holder(db.hold_until_commit)
        setting_changed.connect(_myrq_changed, dispatch_uid="myrq.contrib.django")


def _myrq_changed(*, setting: str, **kwargs: Any) -> None:
    """``override_settings(MYRQ=...)`` in a test: configure myrq anew."""
    if setting == "MYRQ":
        from myrq.contrib.django import conf  # noqa: PLC0415

        conf.apply(reset=True)
