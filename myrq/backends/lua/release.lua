-- Give a claimed job back to the front of its queue, uncounted.
-- KEYS: job hash, leases zset, queue list, notify list, running zset.
-- ARGV: job id, token, notify cap.  Returns 1, or 0 when the token no longer holds it.
-- First write: ZREM of the lease, after every check.
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[2] then return 0 end
local qtype = redis.call('TYPE', KEYS[3])['ok']
if qtype ~= 'list' and qtype ~= 'none' then
  return redis.error_reply('WRONGTYPE queue key ' .. KEYS[3] .. ' is not a list; nothing was changed')
end
if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[5], ARGV[1])
local prefix = string.sub(KEYS[2], 1, -7)  -- KEYS[2] is <prefix>leases
ckey_release(prefix, ARGV[1], redis.call('HGET', KEYS[1], 'ckey'), tonumber(ARGV[3]))
local attempts = count_of(redis.call('HGET', KEYS[1], 'attempts'))
if attempts > 0 then
  redis.call('HSET', KEYS[1], 'attempts', attempts - 1)
end
requeue(ARGV[1], KEYS[1], KEYS[3], KEYS[4], tonumber(ARGV[3]), true)
return 1
