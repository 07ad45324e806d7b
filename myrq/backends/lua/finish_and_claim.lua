-- Finish any number of jobs, then take ids off the first non-empty queues and
-- lease them, as one step: a busy worker's only round trip per batch. With
-- count 0 it only finishes (Broker.finish); with no finishes it only claims
-- (Broker.dequeue). myrq/backends/store_broker.py is its Python copy.
-- KEYS: leases zset, claim record list, then for each queue in priority order:
--       queue list, notify list; then the hash of each job being finished
-- ARGV: worker name, lease ms, count (0: claim nothing), claim id, number of
--       queues, the queue names in order, number of finishes, then per
--       finish: job id, token, ttl ms (-1 keep forever, 0 delete), number of
--       field/value pairs, field, value, ...
-- Returns {{1 written / 0 fenced, per finish}, {error text, ...},
--          {id, queue, token or false, flat record or false[, started_at,
--          attempts, batch]}, ...}.
-- Job hashes of claimed ids are named from the prefix of KEYS[1] (the leases
-- key): under Redis Cluster every key of one prefix shares a hash slot.
--
-- First write: ZREM of a finished job's lease, or LPOP of a queue; both are
-- allowed on a full Redis, so workers drain a full server.
--
-- Finish: fenced by the token (it must still hold a running job); writes the
-- worker's fields, keeps the lease field (holding nothing once the status is
-- final, it tells a worker whose reply was lost that the write was its own),
-- sets the record's lifetime.
--
-- Claim: the record returned for a claimed job is as read before the claim;
-- the caller applies the fields the claim wrote. A claim costs LPOP, HGETALL,
-- HSET and ZADD per job, and per call one LRANGE and, when it claimed any, one
-- RPUSH and PEXPIRE of the claim record: the ids it claimed, kept for a lease.
-- A resend of the same call (same claim id, after a lost reply) finds that
-- record and hands out the same jobs again instead of claiming more, so no
-- job is left leased to a claim nobody saw. Tokens are worker:claim id:n.
--
-- Batches and attempts: a claim of count > 1 marks its jobs batch=1. A worker
-- runs a batch one job at a time, so if it dies, which job it was running is
-- unknown: the reaper then requeues every batch=1 job uncounted and marks it
-- solo=1, and a solo job is only ever claimed alone. A job that keeps killing
-- its worker is thus counted from its next claim on, and never loops forever.
--
-- A queue key that is not a list, or a job key that cannot be read (other than
-- a key that is not a hash, which is no job: its id is dropped), stops the
-- claim: the id goes back where it was, the error is reported, and what was
-- claimed before it is returned, so nothing is left half done.
local worker, lease_ms, count, claim_id = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local nqueues = tonumber(ARGV[5])
local prefix = string.sub(KEYS[1], 1, -7)  -- KEYS[1] is <prefix>leases
local now_ms, now_s = clock()
local a = 6 + nqueues
local nfinish = tonumber(ARGV[a])
a = a + 1
local written = {}
for f = 1, nfinish do
  local jkey = KEYS[2 + 2 * nqueues + f]
  local id, token, ttl, nf = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local first, last = a + 4, a + 3 + 2 * nf
  a = last + 1
  local cur = redis.call('HMGET', jkey, 'lease', 'status')
  if cur[1] == token and cur[2] == 'running' and redis.call('ZREM', KEYS[1], id) == 1 then
    if ttl == 0 then
      redis.call('DEL', jkey)
    else
      hset_argv(jkey, first, last)
      if ttl > 0 then
        redis.call('PEXPIRE', jkey, ttl)
      end
    end
    written[f] = 1
  else
    written[f] = 0
  end
end
local errors = {}
local out = {written, errors}
if count < 1 then
  return out
end

-- A resend of a claim that was carried out: the same jobs, as they are now.
local before = redis.call('LRANGE', KEYS[2], 0, -1)
if #before > 0 then
  for n, id in ipairs(before) do
    local token = worker .. ':' .. claim_id .. ':' .. n
    local ok, flat = pcall(redis.call, 'HGETALL', prefix .. 'job:' .. id)
    if ok and #flat > 0 then
      local rec = {}
      for j = 1, #flat, 2 do
        rec[flat[j]] = flat[j + 1]
      end
      if rec['lease'] == token and rec['status'] == 'running' then
        out[#out + 1] = {id, rec['queue'], token, flat, rec['started_at'], rec['attempts'], rec['batch']}
      end
    end
  end
  return out
end

local batch = count > 1 and '1' or '0'
local taken = 0    -- ids taken off queues (claimed or dropped)
local claimed = {} -- ids claimed, in order
for i = 1, nqueues do
  local qkey, nkey, qname = KEYS[1 + 2 * i], KEYS[2 + 2 * i], ARGV[5 + i]
  local stop = false
  while taken < count do
    local id = redis.pcall('LPOP', qkey)
    if type(id) == 'table' and id.err then
      errors[#errors + 1] = 'WRONGTYPE queue key ' .. qkey .. ' is not a list: ' .. id.err
      stop = true
      break
    end
    if not id then
      -- The queue is empty now, so any wake-up token left for it is stale.
      redis.call('DEL', nkey)
      break
    end
    local jkey = prefix .. 'job:' .. id
    local ok, flat = pcall(redis.call, 'HGETALL', jkey)
    if not ok and not string.find(tostring(flat.err or flat), 'WRONGTYPE', 1, true) then
      redis.call('LPUSH', qkey, id)  -- leave it where it was
      errors[#errors + 1] = 'cannot read job ' .. id .. ': ' .. tostring(flat.err or flat)
      stop = true
      break
    end
    if not ok or #flat == 0 then
      -- No record (or not a hash, which no myrq client writes): report, touch nothing.
      taken = taken + 1
      out[#out + 1] = {id, qname, false, false}
    else
      local status, attempts, foreign, solo = nil, 0, true, false
      for j = 1, #flat, 2 do
        local k = flat[j]
        if k == 'status' then
          status = flat[j + 1]
        elseif k == 'attempts' then
          attempts = count_of(flat[j + 1])
        elseif k == 'queue' then
          foreign = false
        elseif k == 'solo' then
          solo = flat[j + 1] == '1'
        end
      end
      if status == 'running' or status == 'finished' or status == 'failed' or status == 'timeout' then
        taken = taken + 1
        out[#out + 1] = {id, qname, false, flat}
      elseif solo and taken > 0 then
        -- Runs alone: leave it first in line for the next claim.
        redis.call('LPUSH', qkey, id)
        count = taken
        break
      else
        taken = taken + 1
        if solo then
          count = taken -- nothing else joins it
        end
        claimed[#claimed + 1] = id
        local token = worker .. ':' .. claim_id .. ':' .. #claimed
        attempts = attempts + 1
        local b = solo and '0' or batch
        -- 'queue' records where the id came from (foreign clients may not set it).
        redis.call('HSET', jkey, 'status', 'running', 'started_at', now_s, 'worker', worker,
                   'lease', token, 'queue', qname, 'attempts', attempts, 'batch', b)
        if foreign then
          -- Written by another client (no 'queue' field): undo any expiry it set
          -- (the original design gave every record one hour), so the record
          -- cannot vanish while it runs. myrq's own queued records have none.
          redis.call('PERSIST', jkey)
        end
        redis.call('ZADD', KEYS[1], now_ms + lease_ms, id)
        out[#out + 1] = {id, qname, token, flat, now_s, attempts, b}
      end
    end
  end
  if stop or taken >= count then
    break
  end
end
if #claimed > 0 then
  redis.call('RPUSH', KEYS[2], unpack(claimed))
  redis.call('PEXPIRE', KEYS[2], lease_ms)
end
return out
