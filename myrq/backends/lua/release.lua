-- Give a claimed job back to the front of its queue, uncounted.
-- KEYS: job hash, leases zset, queue list, notify list.
-- ARGV: job id, token, notify cap.  Returns 1, or 0 when the token no longer holds it.
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[2] then return 0 end
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'status', 'pending')
redis.call('HDEL', KEYS[1], 'lease', 'worker', 'started_at')
local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0') or 0
if attempts > 0 then
  redis.call('HSET', KEYS[1], 'attempts', attempts - 1)
end
redis.call('LPUSH', KEYS[3], ARGV[1])
redis.call('RPUSH', KEYS[4], '1')
redis.call('LTRIM', KEYS[4], -tonumber(ARGV[3]), -1)
return 1
