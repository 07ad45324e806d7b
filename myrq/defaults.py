"""Built-in defaults (no imports: every layer may use them)."""

from __future__ import annotations

DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
DEFAULT_SERIALIZER = "json"
DEFAULT_KEY_PREFIX = "myrq:"
#: Largest encoded payload (function name and arguments) accepted, in bytes.
DEFAULT_MAX_PAYLOAD_SIZE = 1024 * 1024
#: Seconds a job may run before it is stopped with status ``timeout``.
DEFAULT_TIMEOUT = 180.0
#: Seconds a finished job's record (and result) is kept. -1: forever, 0: not kept.
DEFAULT_RESULT_TTL = 3600
#: Seconds a failed or timed-out job's record is kept. -1: forever, 0: not kept.
DEFAULT_FAILURE_TTL = 7 * 24 * 3600
