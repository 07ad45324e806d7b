-- Write a claimed job's outcome and end its lease, if the token still holds it.
-- KEYS: job hash, leases zset.
-- ARGV: job id, token, ttl ms (-1 keep forever, 0 delete), field, value, ...
-- Returns 1 when written, 0 when the token no longer holds the job (fenced).
-- The lease field is left in place: with a final status it holds nothing.
local cur = redis.call('HMGET', KEYS[1], 'lease', 'status')
if cur[1] ~= ARGV[2] or cur[2] ~= 'running' then return 0 end
if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then return 0 end
local ttl = tonumber(ARGV[3])
if ttl == 0 then
  redis.call('DEL', KEYS[1])
  return 1
end
if #ARGV > 3 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 4))
end
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
