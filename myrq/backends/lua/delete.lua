-- Delete a job's record, its lease and its entries on every queue, as one step.
-- KEYS: job hash, leases zset, queues set.  ARGV: job id, TTL ms of dependents
-- canceled here without a usable failure_ttl (-1 forever).
-- Returns 1 if the record existed. Jobs waiting for it (has_dependents) are
-- canceled as if it had failed: it will never finish.
-- Queue keys are named from the prefix of KEYS[2] (see reap.lua on Redis Cluster).
-- First write: LREM (or ZREM, DEL), all allowed on a full Redis.
local prefix = string.sub(KEYS[2], 1, -7)  -- KEYS[2] is <prefix>leases
-- Every queue in the queues set is searched, plus the record's own 'queue'
-- (a foreign client may not have registered it); keys that are not lists are
-- skipped, so the step never stops half done.
local names = redis.call('SMEMBERS', KEYS[3])
if redis.call('TYPE', KEYS[1])['ok'] == 'hash' then
  local own = redis.call('HGET', KEYS[1], 'queue')
  if own then names[#names + 1] = own end
end
for _, name in ipairs(names) do
  local qkey = prefix .. 'queue:' .. name
  if redis.call('TYPE', qkey)['ok'] == 'list' then
    redis.call('LREM', qkey, 0, ARGV[1])
  end
end
redis.call('ZREM', KEYS[2], ARGV[1])
-- Every registry of its own queue, the scheduled and deferred sets, the
-- dependents set and the waiters' list: no trace of the job is left.
local own = redis.call('TYPE', KEYS[1])['ok'] == 'hash' and redis.call('HGET', KEYS[1], 'queue')
if own then
  for _, set in ipairs({'scheduled', 'deferred', 'running', 'finished', 'failed', 'timeout', 'canceled', 'stopped'}) do
    local skey = prefix .. set .. ':' .. own
    if redis.call('TYPE', skey)['ok'] == 'zset' then
      redis.call('ZREM', skey, ARGV[1])
    end
  end
end
local parent = redis.call('TYPE', KEYS[1])['ok'] == 'hash' and redis.call('HGET', KEYS[1], 'has_dependents') == '1'
if redis.call('TYPE', KEYS[1])['ok'] == 'hash' then
  local st = redis.call('HMGET', KEYS[1], 'status', 'ckey')
  if st[1] == 'running' and st[2] then  -- it held a slot of its concurrency key
    ckey_release(prefix, ARGV[1], st[2], 100)
  end
end
if parent then
  local now_ms, now_s = clock()
  settle(prefix, ARGV[1], false, now_ms, now_s, tonumber(ARGV[2]), 100)
end
redis.call('DEL', prefix .. 'dependents:' .. ARGV[1], prefix .. 'done:' .. ARGV[1])
return redis.call('DEL', KEYS[1])
