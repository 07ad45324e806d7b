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
