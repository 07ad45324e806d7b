-- Store one or many jobs, each one as one atomic step, in one script call.
-- KEYS: queues set, then per job: job hash, queue list, notify list, scheduled zset
-- ARGV: notify cap, then per job: job id, queue name, due ms (0: none), delay
--       ms, 1 at the front / 0 at the end, ttl ms (0: none), number of
--       field/value pairs, field, value, ...
-- Returns one entry per job: 1 stored, 0 refused (a scheduled, pending or
-- running job holds the id), or an error text when that job's keys are of the
-- wrong type (it was not stored; the others were). On a full Redis
-- (maxmemory, noeviction) the first write is refused before anything is
-- written, and the whole call fails with Redis's OOM error: nothing is stored.
--
-- A job is due at its due ms (absolute) or now + delay ms (Redis's clock).
-- Due later, it waits in the scheduled zset with status scheduled (a claim
-- moves it to its queue when due, see finish_and_claim.lua); due now, it goes
-- to the end of its queue, or the front. With a ttl, expires_at = due + ttl:
-- a claim after that cancels the job instead of running it.
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
local cap = tonumber(ARGV[1])
local now_ms = clock()
local out = {}
local a = 2
for j = 1, (#KEYS - 1) / 4 do
  local jkey, qkey, nkey, skey = KEYS[4 * j - 2], KEYS[4 * j - 1], KEYS[4 * j], KEYS[4 * j + 1]
  local id, qname = ARGV[a], ARGV[a + 1]
  local due, delay, front, ttl = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), ARGV[a + 4] == '1', tonumber(ARGV[a + 5])
  local nf = tonumber(ARGV[a + 6])
  local first, last = a + 7, a + 6 + 2 * nf
  a = last + 1
  if due <= 0 then
    due = now_ms + delay
  end
  local later = due > now_ms
  local created, payload = nil, nil
  for i = first, last, 2 do
    if ARGV[i] == 'created_at' then
      created = ARGV[i + 1]
    elseif ARGV[i] == 'func' then
      payload = ARGV[i + 1]
    end
  end
  local ok, cur = pcall(redis.call, 'HMGET', jkey, 'status', 'created_at', 'func')
  local status = ok and cur[1]
  if not ok then
    out[j] = 'WRONGTYPE key ' .. jkey .. ' is not a job hash'
  elseif created and cur[2] == created and cur[3] == payload then
    -- This very job, stored by an earlier send of this call: whatever became of
    -- it since (it may have run already), it is not stored again.
    out[j] = 1
  elseif status == 'pending' or status == 'running' or status == 'scheduled' then
    out[j] = 0
  else
    local pushed
    if later then
      pushed = redis.pcall('ZADD', skey, due, id)
    else
      pushed = redis.pcall(front and 'LPUSH' or 'RPUSH', qkey, id)
    end
    if type(pushed) == 'table' and pushed.err then
      if string.sub(pushed.err, 1, 3) == 'OOM' then
        return redis.error_reply(pushed.err)  -- only possible before any write
      end
      out[j] = 'WRONGTYPE key ' .. (later and skey or qkey) .. ': ' .. pushed.err
    else
      if status then
        -- A finished or failed record under this id: replace it whole (and its
        -- expiry). A foreign hash without a status is written over field by field.
        redis.call('DEL', jkey)
      end
      hset_argv(jkey, first, last)
      if ttl > 0 then
        redis.call('HSET', jkey, 'expires_at', math.max(due, now_ms) + ttl)
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
      out[j] = 1
    end
  end
end
return out
