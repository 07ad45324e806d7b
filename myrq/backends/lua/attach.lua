-- Sharded layout (myrq/backends/redis_sharded_deps.py): make jobs kept on other
-- shards wait for this shard's job, as enqueue.lua does for a job of its own
-- shard. Each member is 0x1f, the dependent's id, 0x1f, a nonce naming this
-- dependency; when the job ends, settle (_lib.lua) writes the member with the
-- outcome to this shard's outbox list, and the broker carries it over.
-- KEYS: the job's hash, its dependents set.
-- ARGV: the members.
-- Returns the job's status when it has ended (finished, failed, timeout,
-- canceled, stopped: nothing written), false when there is no such job
-- (nothing written), else 'waiting': the members are in the dependents set and
-- the job is marked has_dependents=1. Safe to send twice.
-- First write: SADD, refused on a full Redis before anything is written.
local ok, status = pcall(redis.call, 'HGET', KEYS[1], 'status')
if not ok or not status then
  return false
end
if ENDED_STATES[status] then
  return status
end
redis.call('SADD', KEYS[2], unpack(ARGV))
redis.call('HSET', KEYS[1], 'has_dependents', '1')
return 'waiting'
