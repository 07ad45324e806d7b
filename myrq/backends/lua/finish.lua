-- Write a claimed job's outcome and end its lease, if the token still holds it.
-- KEYS: job hash, leases zset.
-- ARGV: job id, token, ttl ms (-1 keep forever, 0 delete), field, value, ...
-- Returns 1 when written, 0 when the token no longer holds the job (fenced).
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[2] then return 0 end
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
local ttl = tonumber(ARGV[3])
if ttl == 0 then
  redis.call('DEL', KEYS[1])
  return 1
end
if #ARGV > 3 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 4))
end
redis.call('HDEL', KEYS[1], 'lease')
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
else
  redis.call('PERSIST', KEYS[1])
end
return 1
