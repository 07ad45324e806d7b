-- Delete up to a chunk of the pending jobs of a queue: their records and their
-- places on the queue. Ids whose record is not this queue's pending job (a
-- duplicate, or a job that moved on) only leave the list.
-- KEYS: queue list.  ARGV: chunk size, queue name, TTL ms of dependents
-- canceled here without a usable failure_ttl (-1 forever): jobs that waited
-- for a deleted job are canceled, as if it had failed.
-- Returns {jobs deleted, ids left on the queue}.
-- Job hashes are named from the prefix of KEYS[1] (<prefix>queue:<name>).
local prefix = string.sub(KEYS[1], 1, -(#ARGV[2] + 7))
local ids = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
redis.call('LTRIM', KEYS[1], #ids, -1)
local deleted = 0
for _, id in ipairs(ids) do
  local jkey = prefix .. 'job:' .. id
  local ok, cur = pcall(redis.call, 'HMGET', jkey, 'status', 'queue', 'has_dependents')
  if ok and cur[1] == 'pending' and (cur[2] == ARGV[2] or not cur[2]) then
    redis.call('DEL', jkey)
    deleted = deleted + 1
    if cur[3] == '1' then
      local now_ms, now_s = clock()
      settle(prefix, id, false, now_ms, now_s, tonumber(ARGV[3]), 100)
      redis.call('DEL', prefix .. 'dependents:' .. id)
    end
  end
end
return {deleted, redis.call('LLEN', KEYS[1])}
