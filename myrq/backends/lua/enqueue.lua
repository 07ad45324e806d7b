-- Store a job hash and push its id, as one step.
-- KEYS: job hash, queue list, queues set, notify list
-- ARGV: job id, queue name, notify cap, field, value, field, value, ...
-- Returns 1 when enqueued, 0 when a pending/running job holds the id.
local jtype = redis.call('TYPE', KEYS[1])['ok']
if jtype ~= 'none' and jtype ~= 'hash' then
  return redis.error_reply('WRONGTYPE key ' .. KEYS[1] .. ' holds a ' .. jtype .. ', not a job hash')
end
for i = 2, 4, 2 do
  local t = redis.call('TYPE', KEYS[i])['ok']
  if t ~= 'none' and t ~= 'list' then
    return redis.error_reply('WRONGTYPE key ' .. KEYS[i] .. ' holds a ' .. t .. ', not a list')
  end
end
local stype = redis.call('TYPE', KEYS[3])['ok']
if stype ~= 'none' and stype ~= 'set' then
  return redis.error_reply('WRONGTYPE key ' .. KEYS[3] .. ' holds a ' .. stype .. ', not a set')
end
if jtype == 'hash' then
  local status = redis.call('HGET', KEYS[1], 'status')
  if status == 'pending' or status == 'running' then
    return 0
  end
  redis.call('DEL', KEYS[1])
end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('HSETNX', KEYS[1], 'status', 'pending')
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('RPUSH', KEYS[4], '1')
redis.call('LTRIM', KEYS[4], -tonumber(ARGV[3]), -1)
return 1
