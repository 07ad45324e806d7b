-- Sharded layout (myrq/backends/redis_sharded_deps.py): carry one outbox entry
-- of another shard over to this one. The job pid, kept on that shard, ended;
-- the job kid, kept on this shard, waits for it through the dependency nonce.
-- KEYS: xdeps:<nonce> (the set that holds kid while it waits: enqueue.lua put
--       it there as this dependency's dependents set), edge:<nonce> (the hash
--       that enqueue.lua read as this dependency's record).
-- ARGV: kid, pid, 1 pid finished / 0 it did not, the nonce, TTL ms of records
--       canceled here without a usable failure_ttl (-1 forever), ms to keep an
--       early outcome.
-- If kid still waits (it is in xdeps:<nonce>), it is settled as settle() does on
-- one shard: released, or canceled and its own dependents after it. Otherwise
-- the entry came before kid's enqueue (or it was carried over already): the
-- outcome is kept as the edge's status for a while, and that enqueue reads it.
-- Returns kid's queue when it settled kid, 1 when kid had moved on already
-- (nothing changed), 0 when the outcome was kept on the edge. Safe to run twice.
-- First write: SREM (or HSET of a small hash), after every check.
local kid, pid, pok, nonce = ARGV[1], ARGV[2], ARGV[3] == '1', ARGV[4]
local prefix = string.sub(KEYS[1], 1, -(#nonce + 7))  -- <prefix>xdeps:<nonce>
local default_ttl_ms = tonumber(ARGV[5])
local now_ms, now_s = clock()
if redis.call('SREM', KEYS[1], kid) == 1 then
  local ok, queue = pcall(redis.call, 'HGET', prefix .. 'job:' .. kid, 'queue')
  local todo = {}
  local changed = settle_kid(prefix, kid, pid, pok, now_ms, now_s, default_ttl_ms, 100, todo)
  settle_all(prefix, todo, now_ms, now_s, default_ttl_ms, 100)
  if changed == 1 then
    return ok and queue or 'default'
  end
  return 1
end
redis.call('HSET', KEYS[2], 'status', pok and 'finished' or 'failed')
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[6]))
return 0
