-- Record a live worker for a while (see ``myrq workers``), replacing its record.
-- KEYS: workers zset, the worker's hash.
-- ARGV: ttl ms, worker name, field, value, ...
-- First write: DEL of the old record, so it works on a full Redis too.
local ttl_ms = tonumber(ARGV[1])
local now_ms = clock()
redis.call('DEL', KEYS[2])
hset_argv(KEYS[2], 3, #ARGV)
redis.call('PEXPIRE', KEYS[2], ttl_ms)
redis.call('ZADD', KEYS[1], now_ms + ttl_ms, ARGV[2])
return 1
