-- Finish any number of jobs, then take ids off the first non-empty queues and
-- lease them, as one step: a busy worker's only round trip per batch. With
-- count 0 it only finishes (Broker.finish); with no finishes it only claims
-- (Broker.dequeue). myrq/backends/store_steps.py is its Python copy.
-- KEYS: leases zset, claim record list, then for each queue in priority order:
--       queue list, notify list, scheduled zset, running zset; then per
--       finish: the job's hash, and its queue's list, notify list, scheduled
--       zset, running zset and the registry of the state it ends in
-- ARGV: worker name, lease ms, count (0: claim nothing), claim id, TTL ms of
--       records canceled here without a usable failure_ttl (-1: forever), the
--       expired-job error, number of queues, the queue names in order, number
--       of finishes, then per finish: job id, token, ttl ms (-1 keep forever,
--       0 delete), retry ms (-1: final; else run again after that many ms),
--       the state it ends in, number of field/value pairs, field, value, ...
-- Returns {{1 written / 0 fenced, per finish}, {error text, ...}, ms until the
--          next scheduled job of these queues is due or false (only when
--          nothing was claimed), {id, queue, token or false, flat record or
--          false[, started_at, attempts, batch | 'expired']}, ...}.
-- Other keys are named from the prefix of KEYS[1] (the leases key): job hashes
-- of claimed ids, and done:<id>, the list a waiting client blocks on. Under
-- Redis Cluster every key of one prefix shares a hash slot.
--
-- First write: ZREM of a finished job's lease, or ZREM of a due scheduled id,
-- or LPOP of a queue; all are allowed on a full Redis, so workers drain it.
--
-- Finish: fenced by the token (it must still hold a running job); writes the
-- worker's fields, keeps the lease field (holding nothing once the status is
-- final, it tells a worker whose reply was lost that the write was its own).
-- A final outcome sets the record's lifetime, enters the job in its state's
-- registry, settles the jobs that depend on it (has_dependents, see settle in
-- _lib.lua) and, if a client waits (field waiters), pushes to done:<id>. A
-- retry (retry ms >= 0) keeps the record, starts the claim count again
-- (attempts 0) and puts the id back: on its queue now, or in its scheduled
-- zset, due after retry ms.
--
-- Claim: first, per queue, due scheduled ids move to the queue (status
-- pending), at most 100 per call. A job past its expires_at (see enqueue.lua)
-- is canceled instead of claimed. The record returned for a claimed job is as
-- read before the claim; the caller applies the fields the claim wrote. A
-- claim costs LPOP, HGETALL, HSET and ZADD per job, and per call one
-- ZRANGEBYSCORE per queue, one LRANGE and, when it claimed any, one RPUSH
-- and PEXPIRE of the claim record: the ids it claimed, kept for a lease. A
-- resend of the same call (same claim id, after a lost reply) finds that
-- record and hands out the same jobs again instead of claiming more, so no job
-- is left leased to a claim nobody saw. Tokens are worker:claim id:n.
--
-- Concurrency keys (see ckey_admit in _lib.lua): a job whose key is full is
-- parked, not claimed; a call parks at most 100 and then stops, so a queue
-- full of one key's jobs costs one bounded step, not a scan.
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
local expired_ttl_ms, expired_error = tonumber(ARGV[5]), ARGV[6]
local nqueues = tonumber(ARGV[7])
local prefix = string.sub(KEYS[1], 1, -7)  -- KEYS[1] is <prefix>leases
local now_ms, now_s = clock()

-- A client waiting for this job (Broker.wait_for_end) is told it ended.
local function tell_waiters(id)
  local dkey = prefix .. 'done:' .. id
  redis.call('RPUSH', dkey, '1')
  redis.call('PEXPIRE', dkey, 60000)
end

local a = 8 + nqueues
local nfinish = tonumber(ARGV[a])
a = a + 1
local written = {}
for f = 1, nfinish do
  local k = 2 + 4 * nqueues + 6 * (f - 1)
  local jkey, qkey, nkey, skey, rkey, ekey = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5], KEYS[k + 6]
  local id, token, ttl, retry = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local state, nf = ARGV[a + 4], tonumber(ARGV[a + 5])
  local first, last = a + 6, a + 5 + 2 * nf
  a = last + 1
  local hok, cur = pcall(redis.call, 'HMGET', jkey, 'lease', 'status', 'waiters', 'has_dependents', 'ckey')
  if hok and cur[1] == token and cur[2] == 'running' and redis.call('ZREM', KEYS[1], id) == 1 then
    redis.call('ZREM', rkey, id)
    ckey_release(prefix, id, cur[5], 100)
    if retry >= 0 then
      hset_argv(jkey, first, last, 'attempts', '0')
      if retry == 0 then
        redis.call('RPUSH', qkey, id)
        wake(nkey, 100)
      else
        redis.call('ZADD', skey, now_ms + retry, id)
      end
    else
      if ttl == 0 then
        redis.call('DEL', jkey)
      else
        hset_argv(jkey, first, last)
        if ttl > 0 then
          redis.call('PEXPIRE', jkey, ttl)
        end
        redis.call('ZADD', ekey, ttl < 0 and '+inf' or now_ms + ttl, id)
      end
      if cur[3] == '1' then
        tell_waiters(id)
      end
      if cur[4] == '1' then
        settle(prefix, id, state == 'finished', now_ms, now_s, expired_ttl_ms, 100)
      end
    end
    written[f] = 1
  else
    written[f] = 0
  end
end
local errors = {}
local out = {written, errors, false}
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

-- Scheduled jobs now due move to the end of their queue (or its front).
local function promote(qkey, nkey, skey)
  local due = redis.call('ZRANGEBYSCORE', skey, '-inf', now_ms, 'LIMIT', 0, 100)
  local qtype = #due > 0 and redis.call('TYPE', qkey)['ok']
  if qtype and qtype ~= 'list' and qtype ~= 'none' then
    error('queue key ' .. qkey .. ' is not a list; its due jobs stay scheduled')
  end
  for _, id in ipairs(due) do
    redis.call('ZREM', skey, id)
    local ok, cur = pcall(redis.call, 'HMGET', prefix .. 'job:' .. id, 'status', 'at_front')
    if ok and cur[1] == 'scheduled' then
      redis.call('HSET', prefix .. 'job:' .. id, 'status', 'pending')
      redis.call(cur[2] == '1' and 'LPUSH' or 'RPUSH', qkey, id)
    end
  end
  if #due > 0 then
    wake(nkey, 100)  -- other idle workers may take some
  end
end

-- Not started within its ttl: canceled, not run (the record kept as failures are).
local function expire(id, jkey, qname, ttl_field, waiters, parent, ckey)
  redis.call('HSET', jkey, 'status', 'canceled', 'ended_at', now_s, 'error', expired_error)
  ckey_pass(prefix, ckey, 100)
  local ttl_ms = ttl_ms_of(ttl_field) or expired_ttl_ms
  registered(prefix, qname, id, 'canceled', ttl_ms, now_ms)
  if ttl_ms == 0 then
    redis.call('DEL', jkey)
  elseif ttl_ms > 0 then
    redis.call('PEXPIRE', jkey, ttl_ms)
  end
  if waiters then
    tell_waiters(id)
  end
  if parent then
    settle(prefix, id, false, now_ms, now_s, expired_ttl_ms, 100)
  end
end

local batch = count > 1 and '1' or '0'
local parked = 0   -- ids parked for a full concurrency key (at most 100 per call)
local taken = 0    -- ids taken off queues (claimed or dropped)
local claimed = {} -- ids claimed, in order
for i = 1, nqueues do
  local qkey, nkey, skey, rkey, qname = KEYS[4 * i - 1], KEYS[4 * i], KEYS[4 * i + 1], KEYS[4 * i + 2], ARGV[7 + i]
  local stop = false
  local sok, serr = pcall(promote, qkey, nkey, skey)
  if not sok then
    errors[#errors + 1] = 'cannot move due jobs of ' .. qname .. ': ' .. tostring(serr.err or serr)
    break
  end
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
      local status, attempts, foreign, solo, expires, ttl_field, waiters, parent = nil, 0, true, false, nil, nil, false, false
      local ckey, climit = nil, 1
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
        elseif k == 'expires_at' then
          expires = tonumber(flat[j + 1])
        elseif k == 'failure_ttl' then
          ttl_field = flat[j + 1]
        elseif k == 'waiters' then
          waiters = flat[j + 1] == '1'
        elseif k == 'has_dependents' then
          parent = flat[j + 1] == '1'
        elseif k == 'ckey' then
          ckey = flat[j + 1]
        elseif k == 'climit' then
          climit = math.max(count_of(flat[j + 1]), 1)
        end
      end
      if status == 'running' or status == 'scheduled' or status == 'deferred' or ENDED_STATES[status] then
        taken = taken + 1
        out[#out + 1] = {id, qname, false, flat}
      elseif expires and expires < now_ms then
        expire(id, jkey, qname, ttl_field, waiters, parent, ckey)
        taken = taken + 1
        out[#out + 1] = {id, qname, false, flat, 'expired'}
      elseif solo and taken > 0 then
        -- Runs alone: leave it first in line for the next claim.
        redis.call('LPUSH', qkey, id)
        count = taken
        break
      elseif ckey and not ckey_admit(prefix, id, ckey, climit) then
        -- Its key is full: parked in ckwait:<key> until a run of the key ends.
        parked = parked + 1
        if parked >= 100 then
          stop = true
          break
        end
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
        if expires then
          redis.call('HDEL', jkey, 'expires_at')  -- the ttl bounds the first start only
        end
        if foreign then
          -- Written by another client (no 'queue' field): undo any expiry it set
          -- (the original design gave every record one hour), so the record
          -- cannot vanish while it runs. myrq's own queued records have none.
          redis.call('PERSIST', jkey)
        end
        redis.call('ZADD', KEYS[1], now_ms + lease_ms, id)
        redis.call('ZADD', rkey, now_ms, id)
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
elseif taken == 0 then
  -- Nothing to hand out: when is the next scheduled job of these queues due?
  local next_ms = nil
  for i = 1, nqueues do
    local first_due = redis.call('ZRANGE', KEYS[4 * i + 1], 0, 0, 'WITHSCORES')
    if first_due[2] then
      local d = tonumber(first_due[2]) - now_ms
      next_ms = next_ms and math.min(next_ms, d) or d
    end
  end
  out[3] = next_ms and math.max(next_ms, 0) or false
  if parked >= 100 then
    out[3] = 0  -- stopped after parking 100: more may be claimable now
  end
end
return out
