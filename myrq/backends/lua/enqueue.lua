-- Store one or many jobs, each one as one atomic step, in one script call.
-- KEYS: queues set, then per job: job hash, queue list, notify list
-- ARGV: notify cap, then per job: job id, queue name, number of field/value
--       pairs, field, value, ...
-- Returns one entry per job: 1 stored, 0 refused (a pending/running job holds
-- the id), or an error text when that job's keys are of the wrong type (it was
-- not stored; the others were). On a full Redis (maxmemory, noeviction) the
-- first RPUSH is refused before anything is written, and the whole call
-- fails with Redis's OOM error: nothing is stored.
--
-- Per job, every check that can fail runs before its record is written, and
-- the common case costs 4 commands: HGET (the duplicate-id policy), RPUSH,
-- HSET, RPUSH of a wake-up token; SADD too when the queue was empty, DEL when
-- an ended record of the same id is replaced. The wake-up list is consumed by
-- idle workers, deleted by a worker that finds the queue empty, and cut back
-- to the cap past twice the cap (a queue that never drains).
--
-- A resend of this very call (a client that retried after a lost reply) finds
-- each job it stored pending or running with the same created_at and payload:
-- that counts as stored, not refused.
local cap = tonumber(ARGV[1])
local out = {}
local a = 2
for j = 1, (#KEYS - 1) / 3 do
  local jkey, qkey, nkey = KEYS[3 * j - 1], KEYS[3 * j], KEYS[3 * j + 1]
  local id, qname, nf = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  local first, last = a + 3, a + 2 + 2 * nf
  a = last + 1
  local ok, status = pcall(redis.call, 'HGET', jkey, 'status')
  if not ok then
    out[j] = 'WRONGTYPE key ' .. jkey .. ' is not a job hash'
  elseif status == 'pending' or status == 'running' then
    local created, payload = nil, nil
    for i = first, last, 2 do
      if ARGV[i] == 'created_at' then
        created = ARGV[i + 1]
      elseif ARGV[i] == 'func' then
        payload = ARGV[i + 1]
      end
    end
    local cur = redis.call('HMGET', jkey, 'created_at', 'func')
    out[j] = (created and cur[1] == created and cur[2] == payload) and 1 or 0
  else
    local pushed = redis.pcall('RPUSH', qkey, id)
    if type(pushed) == 'table' and pushed.err then
      if string.sub(pushed.err, 1, 3) == 'OOM' then
        return redis.error_reply(pushed.err)  -- only possible before any write
      end
      out[j] = 'WRONGTYPE key ' .. qkey .. ' is not a list: ' .. pushed.err
    else
      if status then
        -- A finished or failed record under this id: replace it whole (and its
        -- expiry). A foreign hash without a status is written over field by field.
        redis.call('DEL', jkey)
      end
      hset_argv(jkey, first, last)
      if pushed == 1 then
        redis.pcall('SADD', KEYS[1], qname)
      end
      local n = redis.pcall('RPUSH', nkey, '1')
      if type(n) == 'number' and n > 2 * cap then
        redis.call('LTRIM', nkey, -cap, -1)
      end
      out[j] = 1
    end
  end
end
return out
