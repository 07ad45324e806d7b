-- Extend a lease if the token still holds it.
-- KEYS: job hash, leases zset.  ARGV: job id, token, lease ms.  Returns 1 or 0.
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[2] then return 0 end
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], now_ms + tonumber(ARGV[3]), ARGV[1])
return 1
