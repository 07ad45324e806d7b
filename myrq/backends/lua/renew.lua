-- Extend the leases that the given tokens still hold.
-- KEYS: leases zset, then the hash of each job.
-- ARGV: lease ms, then per job: job id, token.
-- Returns one integer per job: 1 renewed, 0 the token no longer holds it.
-- First write: ZREM of the member it re-adds (Redis allows it on a full
-- server; the ZADD after it would be refused as a first write).
local lease_ms = tonumber(ARGV[1])
local now_ms = clock()
local out = {}
for j = 2, #KEYS do
  local id, token = ARGV[2 * j - 2], ARGV[2 * j - 1]
  if redis.call('HGET', KEYS[j], 'lease') == token and redis.call('ZREM', KEYS[1], id) == 1 then
    redis.call('ZADD', KEYS[1], now_ms + lease_ms, id)
    out[j - 1] = 1
  else
    out[j - 1] = 0
  end
end
return out
