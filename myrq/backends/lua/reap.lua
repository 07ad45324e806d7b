-- Requeue (or fail, past max attempts) jobs whose lease has expired; or, to
-- repair, jobs left 'running' that hold no lease at all.
-- A job claimed in a batch (batch=1) is requeued uncounted and marked solo=1.
-- KEYS: leases zset.
-- ARGV: limit, max attempts (0: no limit), notify cap, error format (%d:
--       attempts), failure TTL ms for records without a usable failure_ttl
--       field (-1: keep forever); then, to repair, the ids to check.
-- Returns a list of {id, queue or false, outcome, attempts}; outcome is
-- requeued, failed, missing (no record), or blocked (its queue key is not a
-- list: nothing was changed but the lease, pushed a minute on).
-- Job, queue and notify keys are named from the prefix of KEYS[1] and the
-- job's 'queue' field: under Redis Cluster they share the prefix's hash slot.
-- First write: ZREM of the lease. Every key is checked before it.
local limit, max_attempts, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local default_ttl_ms = tonumber(ARGV[5])
local prefix = string.sub(KEYS[1], 1, -7)  -- KEYS[1] is <prefix>leases
local now_ms, now_s = clock()
local ids
if #ARGV > 5 then
  -- Repair: a record left running without a lease (the leases key was lost, by
  -- eviction or an operator's DEL) is treated as if its lease had expired.
  ids = {}
  for i = 6, #ARGV do
    local ok, status = pcall(redis.call, 'HGET', prefix .. 'job:' .. ARGV[i], 'status')
    if ok and status == 'running' and not redis.call('ZSCORE', KEYS[1], ARGV[i]) then
      ids[#ids + 1] = ARGV[i]
    end
  end
else
  ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, limit)
end
local out = {}
for _, id in ipairs(ids) do
  local jkey = prefix .. 'job:' .. id
  local ok, cur = pcall(redis.call, 'HMGET', jkey, 'queue', 'attempts', 'batch', 'failure_ttl', 'waiters', 'has_dependents', 'ckey')
  if not ok or redis.call('EXISTS', jkey) == 0 then
    cur = false -- no record (or not a hash, which no myrq client writes)
  end
  local queue = cur and cur[1] or 'default'
  local qkey, nkey = prefix .. 'queue:' .. queue, prefix .. 'notify:' .. queue
  local qtype = redis.call('TYPE', qkey)['ok']
  if not cur then
    redis.call('ZREM', KEYS[1], id)
    out[#out + 1] = {id, false, 'missing', 0}
  elseif qtype ~= 'list' and qtype ~= 'none' then
    -- Its queue key was overwritten by something else: change nothing but the
    -- lease's deadline, a minute on, so that it is reported again then and
    -- never keeps other expired leases from being reaped.
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', KEYS[1], now_ms + 60000, id)
    out[#out + 1] = {id, queue, 'blocked', count_of(cur[2])}
  else
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZREM', prefix .. 'running:' .. queue, id)
    ckey_release(prefix, id, cur[7], cap)
    local attempts = count_of(cur[2])
    if cur[3] == '1' then
      -- Claimed in a batch: whether it had started is unknown. Requeue it
      -- uncounted, to run alone from now on (see finish_and_claim.lua).
      attempts = math.max(0, attempts - 1)
      redis.call('HSET', jkey, 'attempts', attempts, 'batch', '0', 'solo', '1')
      requeue(id, jkey, qkey, nkey, cap, false)
      out[#out + 1] = {id, queue, 'requeued', attempts}
    elseif max_attempts > 0 and attempts >= max_attempts then
      local ttl_ms = ttl_ms_of(cur[4]) or default_ttl_ms
      redis.call('HSET', jkey, 'status', 'failed', 'ended_at', now_s,
                 'error', string.format(ARGV[4], attempts))
      redis.call('HDEL', jkey, 'lease')
      registered(prefix, queue, id, 'failed', ttl_ms, now_ms)
      if cur[6] == '1' then
        settle(prefix, id, false, now_ms, now_s, default_ttl_ms, cap)
      end
      if cur[5] == '1' then  -- a client waits for it to end
        redis.call('RPUSH', prefix .. 'done:' .. id, '1')
        redis.call('PEXPIRE', prefix .. 'done:' .. id, 60000)
      end
      if ttl_ms == 0 then
        redis.call('DEL', jkey)
      elseif ttl_ms > 0 then
        redis.call('PEXPIRE', jkey, ttl_ms)
      end
      out[#out + 1] = {id, queue, 'failed', attempts}
    else
      requeue(id, jkey, qkey, nkey, cap, false)
      out[#out + 1] = {id, queue, 'requeued', attempts}
    end
  end
end
return out
