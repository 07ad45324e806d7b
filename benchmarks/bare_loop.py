"""The "bare loop" ceiling: plain redis-py, no framework, but it keeps leases.

Layout (all under ``bare:``): a hash ``bare:job:<id>`` (``status``, ``payload``),
a list ``bare:queue`` of ids and a sorted set ``bare:leases`` (id -> deadline).

Per batch the worker makes two round trips:

1. one Lua script takes up to ``batch`` ids off the list, ZADDs them into the
   lease set, HSETs ``status=running`` and returns their payloads;
2. after running them, one pipeline HSETs ``status=finished`` and ZREMs each id.

Each payload is JSON ``{"func": "module.name", "args": [...]}``; the function is
imported once and called, so the loop pays for decoding and calling like a
framework does, and for nothing else (no logging, no timeouts, no heartbeat).

    python -m benchmarks.bare_loop URL BATCH     # burst: exits when the queue is empty
"""

from __future__ import annotations

import importlib
import json
import sys
import uuid
from collections.abc import Callable
from typing import Any

import redis

QUEUE_KEY = "bare:queue"
LEASES_KEY = "bare:leases"
JOB_PREFIX = "bare:job:"
LEASE_MS = 60_000

TAKE = """
local t = redis.call('TIME')
local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2])
local out = {}
for i = 1, tonumber(ARGV[1]) do
  local id = redis.call('LPOP', KEYS[1])
  if not id then break end
  local key = ARGV[3] .. id
  redis.call('ZADD', KEYS[2], deadline, id)
  redis.call('HSET', key, 'status', 'running')
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', key, 'payload')
end
return out
"""


def enqueue(client: redis.Redis, n: int, func: str = "benchmarks.peer_jobs.noop") -> None:
    """Store ``n`` jobs, 1,000 per pipeline (setup for a drain; not timed)."""
    payload = json.dumps({"func": func, "args": []})
    for start in range(0, n, 1000):
        pipe = client.pipeline(transaction=False)
        for _ in range(min(1000, n - start)):
            job_id = uuid.uuid4().hex
            pipe.hset(JOB_PREFIX + job_id, mapping={"status": "queued", "payload": payload})
            pipe.rpush(QUEUE_KEY, job_id)
        pipe.execute()


def drain(client: redis.Redis, batch: int) -> int:
    take = client.register_script(TAKE)
    funcs: dict[str, Callable[..., Any]] = {}
    done = 0
    while True:
        flat = take(keys=[QUEUE_KEY, LEASES_KEY], args=[batch, LEASE_MS, JOB_PREFIX])
        if not flat:
            return done
        pipe = client.pipeline(transaction=False)
        for i in range(0, len(flat), 2):
            job_id = flat[i]
            spec = json.loads(flat[i + 1])
            func = funcs.get(spec["func"])
            if func is None:
                module, _, name = spec["func"].rpartition(".")
                func = funcs[spec["func"]] = getattr(importlib.import_module(module), name)
            func(*spec["args"])
            pipe.hset(JOB_PREFIX + job_id.decode(), "status", "finished")
            pipe.zrem(LEASES_KEY, job_id)
        pipe.execute()
        done += len(flat) // 2


def main() -> None:
    url, batch = sys.argv[1], int(sys.argv[2])
    drain(redis.Redis.from_url(url), batch)


if __name__ == "__main__":
    main()
