"""Validation of job ids and queue names (they become parts of storage keys)."""

from __future__ import annotations

import re
import uuid

from myrq.exceptions import InvalidJobError

_ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+=-]{0,199}$")
_QUEUE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+=-]{0,99}$")
_ALLOWED = "letters, digits and _ . @ + = -"


def new_job_id() -> str:
    return str(uuid.uuid4())


def validate_job_id(job_id: object) -> str:
    """Return ``job_id`` if it is a usable id, else raise InvalidJobError."""
    if not isinstance(job_id, str) or not _ID_RE.match(job_id):
        raise InvalidJobError(
            f"invalid job id {job_id!r}: use 1-200 characters of {_ALLOWED}, not starting "
            "with a punctuation mark (no ':', spaces, braces or wildcards, which would "
            "alias other keys)"
        )
    return job_id


def validate_queue_name(name: object) -> str:
    """Return ``name`` if it is a usable queue name, else raise InvalidJobError."""
    if not isinstance(name, str) or not _QUEUE_RE.match(name):
        raise InvalidJobError(
            f"invalid queue name {name!r}: use 1-100 characters of {_ALLOWED}, not starting "
            "with a punctuation mark"
        )
    return name
