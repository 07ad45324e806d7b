-- Shared by every script: myrq/backends/redis.py puts this text in front of
-- each one when it loads it. Python's copy of these rules is myrq/schema.py.
--
-- Full Redis: with maxmemory and noeviction, Redis refuses a script's commands
-- that may grow memory until the script has written something. Every script
-- that must keep working on a full server (claim, renew, finish, release,
-- reap, delete) therefore writes first with a command that cannot grow memory
-- (LPOP, ZREM, DEL); its header says which. Only enqueue is refused.

-- A counter field (attempts): decimal digits with an optional '-'; anything
-- else counts as 0. Clamped to 0 .. 1e9.
local function count_of(v)
  if v and string.match(v, '^%-?%d+$') then
    return math.max(0, math.min(tonumber(v), 1e9))
  end
  return 0
end

-- A lifetime field in seconds (failure_ttl), as milliseconds: nil when absent
-- or not a plain decimal number, -1 when negative (keep forever), else the
-- seconds rounded up to whole ms, at most ten years.
local MAX_MS = 315360000000
local function ttl_ms_of(v)
  if not v or not (string.match(v, '^%-?%d+%.?%d*$') or string.match(v, '^%-?%.%d+$')) then
    return nil
  end
  local s = tonumber(v)
  if s < 0 then
    return -1
  end
  return math.min(math.ceil(s * 1000), MAX_MS)
end

-- Redis's clock: milliseconds since the epoch, and seconds as text (6 decimals).
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000),
         t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
end

-- HSET the field/value pairs ARGV[first..last], then one more pair if given
-- (it wins over the same field in ARGV), in slices: unpack() cannot take a
-- record of thousands of fields at once.
local SLICE = 400
local function hset_argv(key, first, last, field, value)
  local i = first
  while i <= last do
    local stop = math.min(i + SLICE - 1, last)
    redis.call('HSET', key, unpack(ARGV, i, stop))
    i = stop + 1
  end
  if field then
    redis.call('HSET', key, field, value)
  end
end

-- Push a wake-up token for idle workers, keeping the list at most cap long.
-- Best effort: a foreign key of another type there must not stop the step.
local function wake(nkey, cap)
  if type(redis.pcall('RPUSH', nkey, '1')) == 'number' then
    redis.pcall('LTRIM', nkey, -cap, -1)
  end
end

-- Back on its queue as pending, without the claim's fields, with a wake-up
-- token for an idle worker (the wake-up list kept at most cap long).
local function requeue(id, jkey, qkey, nkey, cap, front)
  redis.call('HSET', jkey, 'status', 'pending')
  redis.call('HDEL', jkey, 'lease', 'worker', 'started_at')
  redis.call(front and 'LPUSH' or 'RPUSH', qkey, id)
  wake(nkey, cap)
end

-- Registries: per queue, a sorted set of the ids in each ended state, scored by
-- when the record expires (ms; '+inf' when kept forever), so a count is a
-- ZCOUNT from now and stale ids are trimmed by score. Running ids are in
-- running:<queue> (scored by their claim), deferred ones in deferred:<queue>.
local ENDED_STATES = {finished = true, failed = true, timeout = true, canceled = true, stopped = true}

-- Record that job id of queue qname ended in state status, kept ttl_ms (-1
-- forever, 0 not kept), given the key prefix and Redis's now in ms.
local function registered(prefix, qname, id, status, ttl_ms, now_ms)
  if ttl_ms ~= 0 and ENDED_STATES[status] then
    redis.call('ZADD', prefix .. status .. ':' .. qname, ttl_ms < 0 and '+inf' or now_ms + ttl_ms, id)
  end
end

-- One dependent of pid, which ended (pok: it finished): released when pok (or
-- when it allows failure) and pid was the last job it waited for, else canceled
-- (its own dependents are added to todo, to be canceled in turn). A kid that is
-- not deferred (gone, canceled, released already) is left alone. Returns 1 if
-- it changed the kid, else 0.
local function settle_kid(prefix, kid, pid, pok, now_ms, now_s, default_ttl_ms, cap, todo)
  local kkey = prefix .. 'job:' .. kid
  local got, cur = pcall(redis.call, 'HMGET', kkey, 'status', 'queue', 'allow_failure', 'ttl_ms', 'failure_ttl', 'waiters', 'has_dependents')
  if not (got and cur[1] == 'deferred') then
    return 0
  end
  local kq = cur[2] or 'default'
  if pok or cur[3] == '1' then
    if redis.call('HINCRBY', kkey, 'pending_deps', -1) <= 0 then
      redis.call('ZREM', prefix .. 'deferred:' .. kq, kid)
      redis.call('HSET', kkey, 'status', 'pending')
      if cur[4] then
        redis.call('HSET', kkey, 'expires_at', now_ms + tonumber(cur[4]))
      end
      redis.call('RPUSH', prefix .. 'queue:' .. kq, kid)
      wake(prefix .. 'notify:' .. kq, cap)
    end
  else
    redis.call('ZREM', prefix .. 'deferred:' .. kq, kid)
    redis.call('HSET', kkey, 'status', 'canceled', 'ended_at', now_s, 'error',
      '{"type":"DependencyFailed","message":"a job it depends on (' .. pid ..
      ') did not finish","traceback":""}')
    local ttl_ms = ttl_ms_of(cur[5]) or default_ttl_ms
    registered(prefix, kq, kid, 'canceled', ttl_ms, now_ms)
    if ttl_ms == 0 then
      redis.call('DEL', kkey)
    elseif ttl_ms > 0 then
      redis.call('PEXPIRE', kkey, ttl_ms)
    end
    if cur[6] == '1' then
      redis.call('RPUSH', prefix .. 'done:' .. kid, '1')
      redis.call('PEXPIRE', prefix .. 'done:' .. kid, 60000)
    end
    if cur[7] == '1' then
      todo[#todo + 1] = {kid, false}
    end
  end
  return 1
end

-- Settle the dependents of each {id, ok} of todo, and so on down the chain.
-- Every key is named from the prefix. A member of dependents:<id> that starts
-- with the byte 0x1f is a dependent kept on another shard of the sharded layout
-- (myrq/backends/redis_sharded_deps.py): no key of it may be touched here, so
-- '<member> 0x1f <id> 0x1f <1 finished | 0 not>' goes to this shard's outbox
-- list, which the sharded broker carries over (docs/redis-keys.md). Job ids
-- never hold control characters. Returns the number of jobs it changed.
local function settle_all(prefix, todo, now_ms, now_s, default_ttl_ms, cap)
  local changed = 0
  while #todo > 0 and changed < 10000 do
    local item = table.remove(todo)
    local pid, pok = item[1], item[2]
    local dkey = prefix .. 'dependents:' .. pid
    local kids = redis.call('SMEMBERS', dkey)
    redis.call('DEL', dkey)
    for _, kid in ipairs(kids) do
      if string.byte(kid, 1) == 31 then
        redis.call('RPUSH', prefix .. 'outbox', kid .. '\031' .. pid .. '\031' .. (pok and '1' or '0'))
      else
        changed = changed + settle_kid(prefix, kid, pid, pok, now_ms, now_s, default_ttl_ms, cap, todo)
      end
    end
  end
  return changed
end

-- A job ended: its dependents (dependents:<id>) are released when it finished
-- (or when they allow failure), else canceled, and so on down the chain.
local function settle(prefix, id, ok, now_ms, now_s, default_ttl_ms, cap)
  return settle_all(prefix, {{id, ok}}, now_ms, now_s, default_ttl_ms, cap)
end

-- Concurrency keys: a job with a field ckey runs only while fewer than its
-- climit (default 1) jobs of that key run, across every worker. ckey:<key> is
-- the set of the ids running with the key; ckwait:<key> the list of ids a claim
-- took off their queue because the key was full. Both are named from the prefix
-- (under Redis Cluster a key's jobs must share it). The step that ends a run
-- (finish, retry, release, reap, delete) frees the slot and puts the first
-- waiting job that is still pending back at the front of its queue.

-- May job id of key run now? If so it takes a slot. Members of the set whose
-- record no longer runs (a release missed, whatever the cause) are dropped
-- first, so a slot is never held for ever.
local function ckey_admit(prefix, id, key, limit)
  local set = prefix .. 'ckey:' .. key
  if redis.call('SCARD', set) >= limit then
    for _, member in ipairs(redis.call('SMEMBERS', set)) do
      local ok, st = pcall(redis.call, 'HGET', prefix .. 'job:' .. member, 'status')
      if not (ok and st == 'running') then
        redis.call('SREM', set, member)
      end
    end
    if redis.call('SCARD', set) >= limit then
      redis.call('RPUSH', prefix .. 'ckwait:' .. key, id)
      return false
    end
  end
  redis.call('SADD', set, id)
  return true
end

-- Job id of key stopped running: free its slot, and hand it to the first job
-- waiting for the key that is still pending (at the front of its queue).
local function ckey_release(prefix, id, key, cap)
  if not key then
    return
  end
  redis.call('SREM', prefix .. 'ckey:' .. key, id)
  local wait = prefix .. 'ckwait:' .. key
  for _ = 1, 100 do
    local next_id = redis.call('LPOP', wait)
    if not next_id then
      return
    end
    local ok, cur = pcall(redis.call, 'HMGET', prefix .. 'job:' .. next_id, 'status', 'queue')
    if ok and cur[1] == 'pending' then
      local q = cur[2] or 'default'
      redis.call('LPUSH', prefix .. 'queue:' .. q, next_id)
      wake(prefix .. 'notify:' .. q, cap)
      return
    end
  end
end

-- A pending job of key left its queue without running (canceled, or its ttl
-- passed): if it had been woken for a free slot, the turn goes on to the next
-- waiting job, or the jobs behind it would wait for a run that never comes. A
-- key still full wakes nobody (the run that holds it will), so the order of the
-- waiting jobs is kept.
local function ckey_pass(prefix, key, cap)
  if not key then
    return
  end
  local wait = prefix .. 'ckwait:' .. key
  for _ = 1, 100 do
    local next_id = redis.call('LINDEX', wait, 0)
    if not next_id then
      return
    end
    local ok, cur = pcall(redis.call, 'HMGET', prefix .. 'job:' .. next_id, 'status', 'queue', 'climit')
    if ok and cur[1] == 'pending' then
      if redis.call('SCARD', prefix .. 'ckey:' .. key) >= math.max(count_of(cur[3]), 1) then
        return
      end
      redis.call('LPOP', wait)
      local q = cur[2] or 'default'
      redis.call('LPUSH', prefix .. 'queue:' .. q, next_id)
      wake(prefix .. 'notify:' .. q, cap)
      return
    end
    redis.call('LPOP', wait)  -- no longer waiting (canceled, deleted): dropped
  end
end
