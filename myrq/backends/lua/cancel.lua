-- Cancel a job that has not started: a pending one comes off its queue, a
-- scheduled or deferred one off its sorted set; it ends canceled, enters the
-- canceled registry, is kept for its ttl, and the jobs that depend on it are
-- canceled too (unless they allow failure). A running or ended job (or none)
-- is left alone. A pending job of a concurrency key passes its turn on (see
-- ckey_pass in _lib.lua).
-- KEYS: job hash, queue list, scheduled zset, deferred zset, canceled registry.
-- ARGV: job id, ttl ms (-1 forever, 0 delete), the error to record, queue name,
--       TTL ms of dependents canceled here without a usable failure_ttl.
-- Returns the status the job had (pending, scheduled or deferred), or false.
-- Every check runs before the first write (LREM or ZREM, allowed on a full Redis).
local ok, cur = pcall(redis.call, 'HMGET', KEYS[1], 'status', 'waiters', 'has_dependents', 'ckey')
local status = ok and cur[1]
if status ~= 'pending' and status ~= 'scheduled' and status ~= 'deferred' then
  return false
end
local target = status == 'pending' and KEYS[2] or status == 'scheduled' and KEYS[3] or KEYS[4]
local ktype = redis.call('TYPE', target)['ok']
if ktype ~= 'none' and ktype ~= (status == 'pending' and 'list' or 'zset') then
  return redis.error_reply('WRONGTYPE key ' .. target .. ' holds a ' .. ktype .. '; nothing was changed')
end
local now_ms, now_s = clock()
local prefix = string.sub(KEYS[1], 1, -(#ARGV[1] + 5))  -- <prefix>job:<id>
if status == 'pending' then
  redis.call('LREM', target, 0, ARGV[1])
else
  redis.call('ZREM', target, ARGV[1])
end
redis.call('HSET', KEYS[1], 'status', 'canceled', 'ended_at', now_s, 'error', ARGV[3])
if status == 'pending' then
  ckey_pass(prefix, cur[4], 100)
end
local ttl_ms = tonumber(ARGV[2])
registered(prefix, ARGV[4], ARGV[1], 'canceled', ttl_ms, now_ms)
if cur[2] == '1' then
  redis.call('RPUSH', prefix .. 'done:' .. ARGV[1], '1')
  redis.call('PEXPIRE', prefix .. 'done:' .. ARGV[1], 60000)
end
if cur[3] == '1' then
  settle(prefix, ARGV[1], false, now_ms, now_s, tonumber(ARGV[5]), 100)
end
if ttl_ms == 0 then
  redis.call('DEL', KEYS[1])
elseif ttl_ms > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl_ms)
end
return status
