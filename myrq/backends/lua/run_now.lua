-- Move a scheduled job to its queue now (the end, or the front if it was
-- scheduled at_front), as if it were due.
-- KEYS: job hash, queue list, notify list, scheduled zset.
-- ARGV: job id, notify cap.  Returns 1, or 0 when the job was not scheduled.
-- First write: ZREM of the scheduled id, after every check.
local ok, cur = pcall(redis.call, 'HMGET', KEYS[1], 'status', 'at_front')
if not ok or cur[1] ~= 'scheduled' then return 0 end
local qtype = redis.call('TYPE', KEYS[2])['ok']
if qtype ~= 'list' and qtype ~= 'none' then
  return redis.error_reply('WRONGTYPE queue key ' .. KEYS[2] .. ' is not a list; nothing was changed')
end
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('HSET', KEYS[1], 'status', 'pending')
redis.call(cur[2] == '1' and 'LPUSH' or 'RPUSH', KEYS[2], ARGV[1])
wake(KEYS[3], tonumber(ARGV[2]))
return 1
