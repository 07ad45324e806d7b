-- Extend the leases that the given tokens still hold.
-- KEYS: leases zset, then the hash of each job.
-- ARGV: lease ms, then per job: job id, token.
-- Returns one integer per job: 1 renewed, 2 renewed and someone asked to stop
-- the job (stop.lua), 0 the token no longer holds it.
-- A token holds a job while the record says running under that token: a lease
-- missing from the set (the set was lost: an eviction, an operator's DEL) is
-- put back, so a live worker keeps its jobs and `myrq repair` finds only
-- those whose workers are gone.
-- First write: ZREM of the member it re-adds (Redis allows it on a full
-- server; the ZADD after it would be refused as a first write).
local lease_ms = tonumber(ARGV[1])
local now_ms = clock()
local out = {}
for j = 2, #KEYS do
  local id, token = ARGV[2 * j - 2], ARGV[2 * j - 1]
  local ok, cur = pcall(redis.call, 'HMGET', KEYS[j], 'lease', 'status', 'stop')
  if ok and cur[1] == token and cur[2] == 'running' then
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', KEYS[1], now_ms + lease_ms, id)
    out[j - 1] = cur[3] == '1' and 2 or 1
  else
    out[j - 1] = 0
  end
end
return out
