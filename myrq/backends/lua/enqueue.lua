-- Store one or many jobs, each one as one atomic step, in one script call.
-- KEYS: queues set, then per job: job hash, queue list, notify list, scheduled
--       zset, deferred zset, then per job it depends on: that job's hash and
--       its dependents set
-- ARGV: notify cap, failure TTL ms for jobs canceled here (-1 forever), then
--       per job: job id, queue name, due ms (0: none), delay ms, 1 at the
--       front / 0 at the end, ttl ms (0: none), 1 allow failure / 0, number of
--       jobs it depends on, their ids, number of field/value pairs, field,
--       value, ...
-- Returns one entry per job: 1 stored, 0 refused (a scheduled, deferred,
-- pending or running job holds the id), or an error text when that job was
-- not stored (its keys are of the wrong type, or a job it depends on does not
-- exist); the others were. On a full Redis (maxmemory, noeviction) the first
-- write is refused before anything is written, and the whole call fails with
-- Redis's OOM error: nothing is stored.
--
-- A job is due at its due ms (absolute) or now + delay ms (Redis's clock).
-- Due later, it waits in the scheduled zset with status scheduled (a claim
-- moves it to its queue when due, see finish_and_claim.lua); due now, it goes
-- to the end of its queue, or the front. With a ttl, expires_at = due + ttl:
-- a claim after that cancels the job instead of running it.
--
-- Dependencies: a job that depends on jobs that have not ended waits deferred
-- (in the deferred zset, pending_deps counting them) and goes to its queue
-- when the last one finishes (see settle in _lib.lua); a job whose parent
-- already failed is canceled here, unless it allows failure. All of it is one
-- step, so a parent that ends while its child is enqueued is never missed.
--
-- Per job, every check that can fail runs before its record is written, and
-- the common case costs 4 commands: HMGET (the duplicate-id policy), RPUSH,
-- HSET, RPUSH of a wake-up token; SADD too when the queue was empty, DEL when
-- an ended record of the same id is replaced. The wake-up list is consumed by
-- idle workers, deleted by a worker that finds the queue empty, and cut back
-- to the cap past twice the cap (a queue that never drains).
--
-- A resend of this very call (a client that retried after a lost reply) finds
-- each job it stored with the same created_at and payload, in whatever status
-- (it may have run already): that counts as stored, and nothing is written.
local cap, canceled_ttl_ms = tonumber(ARGV[1]), tonumber(ARGV[2])
local prefix = string.sub(KEYS[1], 1, -7)  -- KEYS[1] is <prefix>queues
-- Redis's clock, read only by a job that needs it (a time, a ttl, dependencies):
-- a plain enqueue runs no TIME.
local now_ms, now_s = nil, nil
local function now()
  if not now_ms then
    now_ms, now_s = clock()
  end
  return now_ms
end
local out = {}
local a, k = 3, 2
local j = 0
while k <= #KEYS do
  j = j + 1
  local jkey, qkey, nkey, skey, dkey = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
  local id, qname = ARGV[a], ARGV[a + 1]
  local due, delay, front, ttl = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), ARGV[a + 4] == '1', tonumber(ARGV[a + 5])
  local allow_failure, nparents = ARGV[a + 6], tonumber(ARGV[a + 7])
  local parents_at, pkeys_at = a + 8, k + 5
  local nf = tonumber(ARGV[a + 8 + nparents])
  local first, last = a + 9 + nparents, a + 8 + nparents + 2 * nf
  a = last + 1
  k = k + 5 + 2 * nparents
  if due <= 0 then
    due = delay > 0 and now() + delay or 0
  end
  local later = due > 0 and due > now()
  local created, payload, failure_ttl = nil, nil, nil
  for i = first, last, 2 do
    if ARGV[i] == 'created_at' then
      created = ARGV[i + 1]
    elseif ARGV[i] == 'func' then
      payload = ARGV[i + 1]
    elseif ARGV[i] == 'failure_ttl' then
      failure_ttl = ARGV[i + 1]
    end
  end
  -- Checks, before any write for this job.
  local ok, cur = pcall(redis.call, 'HMGET', jkey, 'status', 'created_at', 'func')
  local status = ok and cur[1]
  local waiting, failed_parent, problem = {}, nil, nil
  if not ok then
    problem = 'WRONGTYPE key ' .. jkey .. ' is not a job hash'
  elseif not (created and cur[2] == created and cur[3] == payload) then
    for p = 0, nparents - 1 do
      local pid, pkey = ARGV[parents_at + p], KEYS[pkeys_at + 2 * p]
      local pok, pstatus = pcall(redis.call, 'HGET', pkey, 'status')
      if not pok or not pstatus then
        problem = 'NOPARENT ' .. pid
        break
      elseif pstatus == 'failed' or pstatus == 'timeout' or pstatus == 'canceled' or pstatus == 'stopped' then
        failed_parent = failed_parent or pid
      elseif pstatus ~= 'finished' then
        waiting[#waiting + 1] = p
      end
    end
  end
  if problem then
    out[j] = problem
  elseif created and cur[2] == created and cur[3] == payload then
    -- This very job, stored by an earlier send of this call: whatever became of
    -- it since (it may have run already), it is not stored again.
    out[j] = 1
  elseif status == 'pending' or status == 'running' or status == 'scheduled' or status == 'deferred' then
    out[j] = 0
  else
    local canceled = failed_parent and allow_failure ~= '1'
    local deferred = not canceled and #waiting > 0
    local pushed
    if canceled then
      pushed = redis.pcall('SADD', KEYS[1], qname)
    elseif deferred then
      pushed = redis.pcall('ZADD', dkey, now(), id)
    elseif later then
      pushed = redis.pcall('ZADD', skey, due, id)
    else
      pushed = redis.pcall(front and 'LPUSH' or 'RPUSH', qkey, id)
    end
    if type(pushed) == 'table' and pushed.err then
      if string.sub(pushed.err, 1, 3) == 'OOM' then
        return redis.error_reply(pushed.err)  -- only possible before any write
      end
      out[j] = 'WRONGTYPE: ' .. pushed.err
    else
      if status then
        -- An ended record under this id: replace it whole (and its expiry), and
        -- take it out of the registry of its old state.
        local old_queue = redis.call('HGET', jkey, 'queue')
        if old_queue and ENDED_STATES[status] then
          redis.call('ZREM', prefix .. status .. ':' .. old_queue, id)
        end
        redis.call('DEL', jkey)
      end
      hset_argv(jkey, first, last)
      if canceled then
        now()
        redis.call('HSET', jkey, 'status', 'canceled', 'ended_at', now_s, 'error',
          '{"type":"DependencyFailed","message":"a job it depends on (' .. failed_parent ..
          ') did not finish","traceback":""}')
        local kept_ms = ttl_ms_of(failure_ttl) or canceled_ttl_ms  -- its own setting wins
        registered(prefix, qname, id, 'canceled', kept_ms, now_ms)
        if kept_ms > 0 then
          redis.call('PEXPIRE', jkey, kept_ms)
        elseif kept_ms == 0 then
          redis.call('DEL', jkey)
        end
      elseif deferred then
        redis.call('HSET', jkey, 'status', 'deferred', 'pending_deps', #waiting)
        if allow_failure == '1' then
          redis.call('HSET', jkey, 'allow_failure', '1')
        end
        if ttl > 0 then
          redis.call('HSET', jkey, 'ttl_ms', ttl)
        end
        for _, p in ipairs(waiting) do
          redis.call('SADD', KEYS[pkeys_at + 2 * p + 1], id)
          redis.call('HSET', KEYS[pkeys_at + 2 * p], 'has_dependents', '1')
        end
        redis.pcall('SADD', KEYS[1], qname)
      else
        if ttl > 0 then
          redis.call('HSET', jkey, 'expires_at', math.max(due, now()) + ttl)
        end
        if later then
          redis.call('HSET', jkey, 'status', 'scheduled')
          if front then
            redis.call('HSET', jkey, 'at_front', '1')
          end
          redis.pcall('SADD', KEYS[1], qname)
        else
          if pushed == 1 then
            redis.pcall('SADD', KEYS[1], qname)
          end
          local n = redis.pcall('RPUSH', nkey, '1')
          if type(n) == 'number' and n > 2 * cap then
            redis.pcall('LTRIM', nkey, -cap, -1)
          end
        end
      end
      out[j] = 1
    end
  end
end
return out
