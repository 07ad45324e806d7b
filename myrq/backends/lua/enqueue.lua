-- Store a job hash and push its id, as one step.
-- KEYS: job hash, queue list, queues set, notify list
-- ARGV: job id, queue name, notify cap, field, value, field, value, ...
-- Returns 1 when enqueued, 0 when a pending/running job holds the id.
--
-- Commands are counted (they are most of Redis's work per job): 4 in the
-- common case (HGET, RPUSH, HSET, RPUSH notify), 5 when the queue was empty.
-- Every check that can fail runs before the record is written, so a refused
-- enqueue stores nothing.
local ok, status = pcall(redis.call, 'HGET', KEYS[1], 'status')
if not ok then
  return redis.error_reply('WRONGTYPE key ' .. KEYS[1] .. ' is not a job hash')
end
if status == 'pending' or status == 'running' then
  return 0
end
local pushed = redis.pcall('RPUSH', KEYS[2], ARGV[1])
if type(pushed) == 'table' and pushed.err then
  return redis.error_reply('WRONGTYPE key ' .. KEYS[2] .. ' is not a list: ' .. pushed.err)
end
if status then
  -- A finished or failed record under this id: replace it whole (and its expiry).
  -- (A foreign hash without a status field is written over field by field.)
  redis.call('DEL', KEYS[1])
end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
if pushed == 1 then
  -- The queue was empty: record its name for listings. A foreign key of the
  -- wrong type here only affects listings, so its error is ignored.
  redis.pcall('SADD', KEYS[3], ARGV[2])
end
-- Wake one blocked worker. The list is consumed by those wake-ups and deleted
-- by a worker that finds the queue empty. A queue that never drains would let
-- it grow, so past twice the cap it is cut back to the cap: one LTRIM per
-- `cap` enqueues at most.
local n = redis.pcall('RPUSH', KEYS[4], '1')
local cap = tonumber(ARGV[3])
if type(n) == 'number' and n > 2 * cap then
  redis.call('LTRIM', KEYS[4], -cap, -1)
end
return 1
