-- Finish any number of jobs, then take ids off the first non-empty queues and
-- lease them, as one step: a busy worker's only round trip per batch. With
-- count 0 it only finishes (Broker.finish); with no finishes it only claims
-- (Broker.dequeue). myrq/backends/store_broker.py is its Python copy.
-- KEYS: leases zset, then for each queue in priority order: queue list, notify
--       list; then the hash of each job being finished, in order
-- ARGV: key prefix, worker name, lease ms, count (0: claim nothing), random
--       nonce, number of queues, the queue names in order, number of
--       finishes, then per finish: job id, token, ttl ms (-1 keep forever,
--       0 delete), number of field/value pairs, field, value, ...
-- Returns {{1 written / 0 fenced, per finish}, {id, queue, token or false,
--          flat record or false[, started_at, attempts]}, ...}.
--
-- The record returned for a claimed job is as read before the claim; the
-- caller applies the fields the claim wrote (status, started_at, worker,
-- lease, queue, attempts, batch), so a claim costs LPOP, HGETALL, HSET and
-- ZADD, and a finish HMGET, ZREM, HSET and PEXPIRE.
--
-- Batches and attempts: a claim of count > 1 marks its jobs batch=1. A worker
-- runs a batch one job at a time, so if it dies, which job it was running is
-- unknown: the reaper then requeues every batch=1 job uncounted and marks it
-- solo=1, and a solo job is only ever claimed alone. A job that keeps killing
-- its worker is thus counted from its next claim on, and never loops forever.
local prefix, worker = ARGV[1], ARGV[2]
local lease_ms, count, nonce = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local nqueues = tonumber(ARGV[6])
local a = 7 + nqueues
local nfinish = tonumber(ARGV[a])
a = a + 1
local written = {}
for f = 1, nfinish do
  local jkey = KEYS[1 + 2 * nqueues + f]
  local id, token, ttl, nf = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local first, last = a + 4, a + 3 + 2 * nf
  a = last + 1
  -- Fencing: the token must still hold a running job.
  local cur = redis.call('HMGET', jkey, 'lease', 'status')
  if cur[1] == token and cur[2] == 'running' and redis.call('ZREM', KEYS[1], id) == 1 then
    if ttl == 0 then
      redis.call('DEL', jkey)
    else
      if nf > 0 then
        redis.call('HSET', jkey, unpack(ARGV, first, last))
      end
      if ttl > 0 then
        redis.call('PEXPIRE', jkey, ttl)
      end
    end
    written[f] = 1
  else
    written[f] = 0
  end
end
local out = {written}
if count < 1 then
  return out
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local started = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
local batch = count > 1 and '1' or '0'
local claimed = 0
for i = 1, nqueues do
  local qkey, nkey, qname = KEYS[2 * i], KEYS[2 * i + 1], ARGV[6 + i]
  while claimed < count do
    local id = redis.call('LPOP', qkey)
    if not id then
      -- The queue is empty now, so any wake-up token left for it is stale.
      redis.call('DEL', nkey)
      break
    end
    local jkey = prefix .. 'job:' .. id
    local ok, flat = pcall(redis.call, 'HGETALL', jkey)
    if not ok or #flat == 0 then
      -- No record (or not a hash, which no myrq client writes): report, touch nothing.
      claimed = claimed + 1
      out[#out + 1] = {id, qname, false, false}
    else
      local status, attempts, foreign, solo = nil, 0, true, false
      for j = 1, #flat, 2 do
        local k = flat[j]
        if k == 'status' then
          status = flat[j + 1]
        elseif k == 'attempts' then
          attempts = tonumber(flat[j + 1]) or 0
        elseif k == 'queue' then
          foreign = false
        elseif k == 'solo' then
          solo = flat[j + 1] == '1'
        end
      end
      if status == 'running' or status == 'finished' or status == 'failed' or status == 'timeout' then
        claimed = claimed + 1
        out[#out + 1] = {id, qname, false, flat}
      elseif solo and claimed > 0 then
        -- Runs alone: leave it first in line for the next claim.
        redis.call('LPUSH', qkey, id)
        count = claimed
        break
      else
        claimed = claimed + 1
        if solo then
          count = claimed -- nothing else joins it
        end
        local token = worker .. ':' .. nonce .. ':' .. claimed
        attempts = math.max(0, math.min(math.floor(attempts), 1e9)) + 1
        local b = solo and '0' or batch
        -- 'queue' records where the id came from (foreign clients may not set it).
        redis.call('HSET', jkey, 'status', 'running', 'started_at', started, 'worker', worker,
                   'lease', token, 'queue', qname, 'attempts', attempts, 'batch', b)
        if foreign then
          -- Written by another client (no 'queue' field): undo any expiry it set
          -- (the original design gave every record one hour), so the record
          -- cannot vanish while it runs. myrq's own queued records have none.
          redis.call('PERSIST', jkey)
        end
        redis.call('ZADD', KEYS[1], now_ms + lease_ms, id)
        out[#out + 1] = {id, qname, token, flat, started, attempts, b}
      end
    end
  end
  if claimed >= count then
    break
  end
end
return out
