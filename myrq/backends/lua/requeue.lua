-- Run an ended job again (failed, timed out, canceled, stopped or finished):
-- back to the end of its queue as pending, out of its registry, with a fresh
-- count of claims and tries; its errors so far are kept.
-- KEYS: job hash, queue list, notify list.
-- ARGV: job id, notify cap, queue name.  Returns 1, or 0 when the job had not ended.
-- The registry of the state it ended in is named from the prefix of KEYS[1]
-- (<prefix>job:<id>) and the status read here, in the same step.
-- First write: ZREM from the registry, after every check.
local ok, cur = pcall(redis.call, 'HMGET', KEYS[1], 'status')
if not ok or not ENDED_STATES[cur[1]] then return 0 end
local prefix = string.sub(KEYS[1], 1, -(#ARGV[1] + 5))
local registry = prefix .. cur[1] .. ':' .. ARGV[3]
local qtype = redis.call('TYPE', KEYS[2])['ok']
if qtype ~= 'list' and qtype ~= 'none' then
  return redis.error_reply('WRONGTYPE queue key ' .. KEYS[2] .. ' is not a list; nothing was changed')
end
redis.call('ZREM', registry, ARGV[1])
redis.call('HDEL', KEYS[1], 'ended_at', 'error', 'result', 'lease', 'worker', 'started_at', 'stop', 'expires_at')
redis.call('HSET', KEYS[1], 'status', 'pending', 'attempts', '0', 'tries', '0')
redis.call('PERSIST', KEYS[1])
redis.call('RPUSH', KEYS[2], ARGV[1])
wake(KEYS[3], tonumber(ARGV[2]))
return 1
