-- Requeue (or fail, past max attempts) jobs whose lease has expired.
-- A job claimed in a batch (batch=1) is requeued uncounted and marked solo=1.
-- KEYS: leases zset.
-- ARGV: key prefix, limit, max attempts (0: no limit), notify cap, error format (%d: attempts),
--       failure TTL ms for records without a failure_ttl field (-1: keep forever)
-- Returns a list of {id, queue or nil, outcome, attempts}.
-- The queue and notify keys are derived from the prefix and the job's 'queue'
-- field; under Redis Cluster the prefix must carry a hash tag ({...}) so that
-- they share the leases key's slot.
local prefix, limit, max_attempts = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local cap = tonumber(ARGV[4])
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now_s = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
-- Back to the end of its queue, pending, with a wake-up token for an idle worker.
local function requeue(id, jkey, queue)
  redis.call('HSET', jkey, 'status', 'pending')
  redis.call('HDEL', jkey, 'lease', 'worker', 'started_at')
  redis.call('RPUSH', prefix .. 'queue:' .. queue, id)
  local nkey = prefix .. 'notify:' .. queue
  redis.call('RPUSH', nkey, '1')
  redis.call('LTRIM', nkey, -cap, -1)
end
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, limit)
local out = {}
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local jkey = prefix .. 'job:' .. id
  if redis.call('EXISTS', jkey) == 0 then
    out[#out + 1] = {id, false, 'missing', 0}
  else
    local cur = redis.call('HMGET', jkey, 'queue', 'attempts', 'batch')
    local queue = cur[1] or 'default'
    local attempts = tonumber(cur[2] or '0') or 0
    if cur[3] == '1' then
      -- Claimed in a batch: whether it had started is unknown. Requeue it
      -- uncounted, to run alone from now on (see dequeue.lua).
      attempts = math.max(0, attempts - 1)
      redis.call('HSET', jkey, 'attempts', attempts, 'batch', '0', 'solo', '1')
      requeue(id, jkey, queue)
      out[#out + 1] = {id, queue, 'requeued', attempts}
    elseif max_attempts > 0 and attempts >= max_attempts then
      redis.call('HSET', jkey, 'status', 'failed', 'ended_at', now_s,
                 'error', string.format(ARGV[5], attempts))
      redis.call('HDEL', jkey, 'lease')
      local ttl_ms = tonumber(ARGV[6])
      local ttl = tonumber(redis.call('HGET', jkey, 'failure_ttl') or '')
      if ttl then
        ttl_ms = ttl < 0 and -1 or math.floor(ttl * 1000)
      end
      if ttl_ms == 0 then
        redis.call('DEL', jkey)
      elseif ttl_ms > 0 then
        redis.call('PEXPIRE', jkey, ttl_ms)
      end
      out[#out + 1] = {id, queue, 'failed', attempts}
    else
      requeue(id, jkey, queue)
      out[#out + 1] = {id, queue, 'requeued', attempts}
    end
  end
end
return out
