"""Validation of job ids and queue names (they become parts of storage keys)."""

from __future__ import annotations

import re
import unicodedata
import uuid

from myrq.exceptions import InvalidJobError

#: A job id is a key's last part: any printable characters but spaces.
_ID_RE = re.compile(r"[^\s\x00-\x1f\x7f]{1,200}")
_QUEUE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+=-]{0,99}$")
_ALLOWED = "letters, digits and _ . @ + = -"


def new_job_id() -> str:
    return str(uuid.uuid4())


def validate_job_id(job_id: object) -> str:
    """Return ``job_id`` if it is a usable id, else raise InvalidJobError."""
    if not isinstance(job_id, str) or not _ID_RE.fullmatch(job_id):
        raise InvalidJobError(
            f"invalid job id {job_id!r}: use 1-200 characters with no whitespace or control "
            "characters (they would make ids that look alike in logs, the CLI and keys); "
            "any other character is fine, ':', '/', '|', '{' and '*' included"
        )
    try:
        job_id.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidJobError(f"invalid job id {job_id!r}: it holds a lone surrogate") from None
    if not job_id.isascii():
        unseen = [c for c in job_id if unicodedata.category(c)[0] in "CZ"]
        if unseen:
            raise InvalidJobError(
                f"invalid job id {job_id!r}: it holds the invisible or formatting character "
                f"U+{ord(unseen[0]):04X} ({unicodedata.name(unseen[0], 'unnamed')}), which "
                "makes ids that look alike; use visible characters only"
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
