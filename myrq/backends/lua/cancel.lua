-- Cancel a job that has not started: a pending one comes off its queue, a
-- scheduled one off its scheduled zset; it ends canceled and is kept for its
-- ttl. A running or ended job (or none) is left alone.
-- KEYS: job hash, queue list, scheduled zset.
-- ARGV: job id, ttl ms (-1 forever, 0 delete), the error to record.
-- Returns the status the job had (pending or scheduled), or false.
-- Every check runs before the first write (LREM or ZREM, allowed on a full Redis).
local ok, status = pcall(redis.call, 'HGET', KEYS[1], 'status')
if not ok or (status ~= 'pending' and status ~= 'scheduled') then
  return false
end
local target = status == 'pending' and KEYS[2] or KEYS[3]
local ktype = redis.call('TYPE', target)['ok']
if ktype ~= 'none' and ktype ~= (status == 'pending' and 'list' or 'zset') then
  return redis.error_reply('WRONGTYPE key ' .. target .. ' holds a ' .. ktype .. '; nothing was changed')
end
local _, now_s = clock()
if status == 'pending' then
  redis.call('LREM', KEYS[2], 0, ARGV[1])
else
  redis.call('ZREM', KEYS[3], ARGV[1])
end
redis.call('HSET', KEYS[1], 'status', 'canceled', 'ended_at', now_s, 'error', ARGV[3])
local ttl_ms = tonumber(ARGV[2])
if redis.call('HGET', KEYS[1], 'waiters') == '1' then
  local dkey = string.sub(KEYS[1], 1, -(#ARGV[1] + 5)) .. 'done:' .. ARGV[1]  -- <prefix>job:<id>
  redis.call('RPUSH', dkey, '1')
  redis.call('PEXPIRE', dkey, 60000)
end
if ttl_ms == 0 then
  redis.call('DEL', KEYS[1])
elseif ttl_ms > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl_ms)
end
return status
