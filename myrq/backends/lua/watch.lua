-- Before a client blocks on done:<id>: if the job has ended (or is gone), say
-- so; else mark the record (waiters=1) so that the step that ends it pushes to
-- done:<id>. Checking and marking in one step leaves no gap for the end to slip
-- through unseen.
-- KEYS: job hash.  Returns the ended status, 'gone', or false (marked: block).
local ok, status = pcall(redis.call, 'HGET', KEYS[1], 'status')
if not ok then return 'gone' end
if not status then
  if redis.call('EXISTS', KEYS[1]) == 0 then return 'gone' end
end
if ENDED_STATES[status] then
  return status
end
redis.call('HSET', KEYS[1], 'waiters', '1')
return false
