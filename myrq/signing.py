"""Signed records: an HMAC that lets a worker refuse jobs it did not expect.

With a secret key configured (``MYRQ_SECRET_KEY`` or
``myrq.configure(secret_key=...)``), a producer stores in each record a
``sig`` field: HMAC-SHA256 over the job id and every field that decides what
runs and how (:data:`myrq.schema.SIGNED_FIELDS`: the payload, the timeout,
the result and failure TTLs; later versions add their own). A worker with the
key checks it before anything is decoded, so a record written by someone who
can reach Redis but does not hold the key, copied from one job id to another,
or given a longer timeout, fails with ``SignatureError`` and its payload is
never deserialized. This matters most with the pickle serializer, where
decoding untrusted bytes runs code.

Only the signed fields present in the record are covered, each with its name:
a worker of a later version, which signs more fields, still accepts records
from an earlier producer, and a field added or removed by anyone else breaks
the signature.

Keys can be rotated: configure several (``MYRQ_SECRET_KEY="new,old"``, or a
list); producers sign with the first, workers accept any. Deploy the new key
second on every worker, then first everywhere, then drop the old one.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence

from myrq.exceptions import SignatureError
from myrq.schema import SIGNED_FIELDS

_DOMAIN = b"myrq-record-v2\x00"


def sign(key: bytes, job_id: str, fields: Mapping[str, bytes]) -> bytes:
    """The signature of a record stored under ``job_id``, as hex bytes."""
    mac = hmac.new(key, _DOMAIN + job_id.encode("utf-8"), hashlib.sha256)
    for name in SIGNED_FIELDS:
        value = fields.get(name)
        if value is not None:
            head = name.encode() + b"\x00" + str(len(value)).encode() + b"\x00"
            mac.update(head)
            mac.update(value)
    return mac.hexdigest().encode("ascii")


def verify(keys: Sequence[bytes], job_id: str, fields: Mapping[str, bytes]) -> None:
    """Check a record's ``sig`` against any of ``keys``, in constant time per key.

    Raises:
        SignatureError: the signature is missing or matches none of the keys.
    """
    signature = fields.get("sig")
    if not signature:
        raise SignatureError(
            f"job {job_id!r} has no signature, and this worker requires one (a secret key "
            "is configured); it was not enqueued by a producer holding the key"
        )
    if not any(hmac.compare_digest(sign(key, job_id, fields), signature) for key in keys):
        raise SignatureError(
            f"job {job_id!r} has a wrong signature: it was written or altered (payload, "
            "timeout or TTLs) by someone without the secret key, or producer and worker "
            "keys differ"
        )
