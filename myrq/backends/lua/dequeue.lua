-- Take ids off the first non-empty queues and lease them, as one step.
-- KEYS: leases zset, then for each queue in priority order: queue list, notify list
-- ARGV: key prefix, worker name, lease ms, count, random nonce, then the queue names in order
-- Returns a list of {id, queue, token or nil, flat record or nil}.
local prefix, worker = ARGV[1], ARGV[2]
local lease_ms, count, nonce = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local started = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
local out = {}
local nqueues = (#KEYS - 1) / 2
for i = 1, nqueues do
  local qkey, nkey, qname = KEYS[2 * i], KEYS[2 * i + 1], ARGV[5 + i]
  while #out < count do
    local id = redis.call('LPOP', qkey)
    if not id then
      -- The queue is empty now, so any wake-up token left for it is stale.
      redis.call('DEL', nkey)
      break
    end
    local jkey = prefix .. 'job:' .. id
    if redis.call('TYPE', jkey)['ok'] ~= 'hash' then
      -- No record (or not a hash, which no myrq client writes): report, touch nothing.
      out[#out + 1] = {id, qname, false, false}
    else
      local status = redis.call('HGET', jkey, 'status')
      if status == 'running' or status == 'finished' or status == 'failed' or status == 'timeout' then
        out[#out + 1] = {id, qname, false, redis.call('HGETALL', jkey)}
      else
        local attempts = redis.call('HINCRBY', jkey, 'attempts', 1)
        local token = worker .. ':' .. nonce .. ':' .. (#out + 1)
        -- 'queue' records where the id came from (foreign clients may not set it);
        -- PERSIST undoes an expiry a foreign client put on a queued record.
        redis.call('HSET', jkey, 'status', 'running', 'started_at', started,
                   'worker', worker, 'lease', token, 'queue', qname)
        redis.call('PERSIST', jkey)
        redis.call('ZADD', KEYS[1], now_ms + lease_ms, id)
        out[#out + 1] = {id, qname, token, redis.call('HGETALL', jkey)}
      end
    end
  end
  if #out >= count then
    break
  end
end
return out
