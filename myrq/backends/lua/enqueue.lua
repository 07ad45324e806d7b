-- Store one or many jobs, each one as one atomic step, in one script call.
-- KEYS: queues set, then per job: job hash, queue list, notify list
-- ARGV: notify cap, then per job: job id, queue name, number of field/value
--       pairs, field, value, ...
-- Returns one integer per job: 1 enqueued, 0 refused (a pending/running job
-- holds the id). A key of the wrong type stops the batch with an error; the
-- jobs before it are stored (each job is atomic, the batch is not).
--
-- Per job, every check that can fail runs before its record is written, and
-- the common case costs 4 commands: HGET (the duplicate-id policy), RPUSH,
-- HSET, RPUSH of a wake-up token; SADD too when the queue was empty, DEL when
-- an ended record of the same id is replaced. The wake-up list is consumed by
-- idle workers, deleted by a worker that finds the queue empty, and cut back
-- to the cap past twice the cap (a queue that never drains).
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
    return redis.error_reply('WRONGTYPE key ' .. jkey .. ' is not a job hash')
  end
  if status == 'pending' or status == 'running' then
    out[j] = 0
  else
    local pushed = redis.pcall('RPUSH', qkey, id)
    if type(pushed) == 'table' and pushed.err then
      return redis.error_reply('WRONGTYPE key ' .. qkey .. ' is not a list: ' .. pushed.err)
    end
    if status then
      -- A finished or failed record under this id: replace it whole (and its
      -- expiry). A foreign hash without a status is written over field by field.
      redis.call('DEL', jkey)
    end
    redis.call('HSET', jkey, unpack(ARGV, first, last))
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
return out
