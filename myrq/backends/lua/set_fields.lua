-- Write fields of an existing job without touching its state (meta, a
-- callback's error): nothing is written when the job is gone, so a late write
-- never re-creates a deleted or expired record.
-- KEYS: job hash.  ARGV: field, value, ...  Returns 1, or 0 when there is no job.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
hset_argv(KEYS[1], 1, #ARGV)
return 1
