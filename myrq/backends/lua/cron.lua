-- Periodic jobs of one queue: register (set), chain (next) and remove (remove)
-- a schedule. The schedule itself (when, what) is computed in Python; here it
-- is only stored, in the queue's cron hash: <name> the spec, <name>:version,
-- <name>:next the id of its next occurrence. Each occurrence is an ordinary
-- scheduled job (see enqueue.lua) whose id names the schedule and its due time.
-- KEYS: cron hash, scheduled zset, queues set, the new occurrence's hash (set, next).
-- ARGV set:    'set', queue name, schedule name, spec, version, occurrence id, due ms, pairs...
--      next:   'next', queue name, schedule name, version, occurrence id, due ms, pairs...
--      remove: 'remove', queue name, schedule name
-- Returns 1 done, 0 nothing to do (next: the schedule was replaced or removed,
-- or the occurrence exists already; remove: no such schedule).
-- Old occurrences' hashes are named from the prefix of KEYS[2] (<prefix>scheduled:<queue>).
local op, qname, name = ARGV[1], ARGV[2], ARGV[3]
local prefix = string.sub(KEYS[2], 1, -(#qname + 11))
local function drop_next()
  local old = redis.call('HGET', KEYS[1], name .. ':next')
  if old then
    local okey = prefix .. 'job:' .. old
    local ok, status = pcall(redis.call, 'HGET', okey, 'status')
    if ok and status == 'scheduled' then
      redis.call('ZREM', KEYS[2], old)
      redis.call('DEL', okey)
    end
  end
end
local function schedule(id, due, first)
  local ok, status = pcall(redis.call, 'HGET', KEYS[4], 'status')
  if not ok or status == 'scheduled' or status == 'pending' or status == 'running' then
    return 0
  end
  redis.call('DEL', KEYS[4])
  hset_argv(KEYS[4], first, #ARGV, 'status', 'scheduled')
  redis.call('ZADD', KEYS[2], due, id)
  redis.call('SADD', KEYS[3], qname)
  redis.call('HSET', KEYS[1], name .. ':next', id)
  return 1
end
if op == 'set' then
  drop_next()
  redis.call('HSET', KEYS[1], name, ARGV[4], name .. ':version', ARGV[5])
  redis.call('HDEL', KEYS[1], name .. ':next')
  schedule(ARGV[6], tonumber(ARGV[7]), 8)
  return 1
elseif op == 'next' then
  if redis.call('HGET', KEYS[1], name .. ':version') ~= ARGV[4] then
    return 0
  end
  return schedule(ARGV[5], tonumber(ARGV[6]), 7)
else
  if redis.call('HEXISTS', KEYS[1], name) == 0 then
    return 0
  end
  drop_next()
  redis.call('HDEL', KEYS[1], name, name .. ':version', name .. ':next')
  return 1
end
