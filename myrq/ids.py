"""Validation of job ids and queue names (they become parts of storage keys)."""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid

from myrq.exceptions import InvalidJobError

#: A job id is a key's last part: any printable characters but spaces.
_ID_RE = re.compile(r"[^\s\x00-\x1f\x7f]{1,200}")
_QUEUE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+=-]{0,99}$")
_ALLOWED = "letters, digits and _ . @ + = -"


def new_job_id(concurrency_key: str | None = None) -> str:
    """A new job id: a UUID, and for a job with a concurrency key, its key's tag."""
    if concurrency_key is None:
        return str(uuid.uuid4())
    return f"{uuid.uuid4()}{{{key_tag(concurrency_key)}}}"


def key_tag(concurrency_key: str) -> str:
    """The hash tag of a concurrency key's job ids: ``ck:`` and 12 hex digits of its hash.

    A Redis hash tag (the text between the first ``{`` and ``}`` of a key name)
    decides a key's slot. Ids myrq makes for jobs with a concurrency key end
    with ``{ck:<hash>}``, so the sharded layout keeps all the jobs of one key on
    one shard, where their running set and waiting list are (see
    docs/concurrency.md). A hash, so that any key, braces included, makes a
    well-formed tag.
    """
    digest = hashlib.blake2b(concurrency_key.encode("utf-8", "surrogatepass"), digest_size=6)
    return f"ck:{digest.hexdigest()}"


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
