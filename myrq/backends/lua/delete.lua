-- Delete a job's record, its lease and its entries on every queue, as one step.
-- KEYS: job hash, leases zset, queues set.  ARGV: key prefix, job id.
-- Returns 1 if the record existed.
-- Queue keys are derived from the prefix (see reap.lua on Redis Cluster).
for _, name in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  redis.call('LREM', ARGV[1] .. 'queue:' .. name, 0, ARGV[2])
end
redis.call('ZREM', KEYS[2], ARGV[2])
return redis.call('DEL', KEYS[1])
