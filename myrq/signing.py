"""Signed payloads: an HMAC that lets a worker refuse jobs it did not expect.

With a secret key configured (``MYRQ_SECRET_KEY`` or
``myrq.configure(secret_key=...)``), a producer stores beside each payload a
``sig`` field: HMAC-SHA256 over the job id and the payload bytes. A worker
with the key checks it before anything is decoded, so a record written by
someone who can reach Redis but does not hold the key (or copied from one job
id to another) fails with ``SignatureError`` and its payload is never
deserialized. This matters most with the pickle serializer, where decoding
untrusted bytes runs code.

The signature covers the id and the payload (function, arguments); the other
fields (timeout, TTLs) are not signed.
"""

from __future__ import annotations

import hashlib
import hmac

from myrq.exceptions import SignatureError

_DOMAIN = b"myrq-payload-v1\x00"


def sign(key: bytes, job_id: str, payload: bytes) -> bytes:
    """The signature of ``payload`` stored under ``job_id``, as hex bytes."""
    mac = hmac.new(key, _DOMAIN + job_id.encode("utf-8") + b"\x00" + payload, hashlib.sha256)
    return mac.hexdigest().encode("ascii")


def verify(key: bytes, job_id: str, payload: bytes, signature: bytes | None) -> None:
    """Check a stored signature in constant time.

    Raises:
        SignatureError: the signature is missing or does not match.
    """
    if not signature:
        raise SignatureError(
            f"job {job_id!r} has no payload signature, and this worker requires one "
            "(a secret key is configured); it was not enqueued by a producer holding the key"
        )
    if not hmac.compare_digest(sign(key, job_id, payload), signature):
        raise SignatureError(
            f"job {job_id!r} has a wrong payload signature: it was written or altered by "
            "someone without the secret key, or producer and worker keys differ"
        )
