-- Optionally finish a job, then take ids off the first non-empty queues and
-- lease them, as one step (one round trip per job for a busy worker).
-- KEYS: leases zset, then for each queue in priority order: queue list, notify
--       list; then, when finishing, the finished job's hash
-- ARGV: key prefix, worker name, lease ms, count, random nonce, number of queues,
--       the queue names in order, then, when finishing: job id, token,
--       ttl ms (-1 keep forever, 0 delete), field, value, ...
-- Returns {finished: 1 written / 0 fenced / -1 nothing to finish,
--          {id, queue, token or false, flat record or false[, started_at, attempts]}, ...}.
-- The record returned for a claimed job is as read before the claim; the
-- caller applies the fields the claim wrote (status, started_at, worker,
-- lease, queue, attempts), so a claim costs LPOP, HGETALL, HSET and ZADD.
local prefix, worker = ARGV[1], ARGV[2]
local lease_ms, count, nonce = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local nqueues = tonumber(ARGV[6])
local finished = -1
local fin = 7 + nqueues
if #ARGV >= fin then
  -- Finish: the token must still hold a running job (fencing).
  local jkey = KEYS[#KEYS]
  local id, token, ttl = ARGV[fin], ARGV[fin + 1], tonumber(ARGV[fin + 2])
  local cur = redis.call('HMGET', jkey, 'lease', 'status')
  if cur[1] == token and cur[2] == 'running' and redis.call('ZREM', KEYS[1], id) == 1 then
    if ttl == 0 then
      redis.call('DEL', jkey)
    else
      redis.call('HSET', jkey, unpack(ARGV, fin + 3))
      if ttl > 0 then
        redis.call('PEXPIRE', jkey, ttl)
      end
    end
    finished = 1
  else
    finished = 0
  end
end
local out = {finished}
if count < 1 then
  return out
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local started = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
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
    claimed = claimed + 1
    if not ok or #flat == 0 then
      -- No record (or not a hash, which no myrq client writes): report, touch nothing.
      out[#out + 1] = {id, qname, false, false}
    else
      local status, attempts, foreign = nil, 0, true
      for j = 1, #flat, 2 do
        if flat[j] == 'status' then
          status = flat[j + 1]
        elseif flat[j] == 'attempts' then
          attempts = tonumber(flat[j + 1]) or 0
        elseif flat[j] == 'queue' then
          foreign = false
        end
      end
      if status == 'running' or status == 'finished' or status == 'failed' or status == 'timeout' then
        out[#out + 1] = {id, qname, false, flat}
      else
        local token = worker .. ':' .. nonce .. ':' .. claimed
        -- 'queue' records where the id came from (foreign clients may not set it).
        attempts = math.max(0, math.min(math.floor(attempts), 1e9)) + 1
        redis.call('HSET', jkey, 'status', 'running', 'started_at', started,
                   'worker', worker, 'lease', token, 'queue', qname, 'attempts', attempts)
        if foreign then
          -- Written by another client (no 'queue' field): undo any expiry it set
          -- (the original design gave every record one hour), so the record
          -- cannot vanish while it runs. myrq's own queued records have none.
          redis.call('PERSIST', jkey)
        end
        redis.call('ZADD', KEYS[1], now_ms + lease_ms, id)
        out[#out + 1] = {id, qname, token, flat, started, attempts}
      end
    end
  end
  if claimed >= count then
    break
  end
end
return out
