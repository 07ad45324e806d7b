-- Ask the worker running a job to stop it. A running job gets stop=1, which
-- renew.lua reports to its worker's heartbeat; the worker then stops it (an
-- isolated job's process is killed) and records it stopped. A job that has not
-- started yet is not stopped but canceled (see cancel.lua; the caller does it).
-- KEYS: job hash.  Returns its status ('running' once marked), or false if none.
local ok, status = pcall(redis.call, 'HGET', KEYS[1], 'status')
if not ok or not status then return false end
if status == 'running' then
  redis.call('HSET', KEYS[1], 'stop', '1')
end
return status
