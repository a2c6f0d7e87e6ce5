-- Advance an audio stream's sequence number. KEYS: 1 {t}:stream:{stream}
-- ARGV: 1 seq  2 ttl_s. Returns {accepted (0/1), previous seq or -1}.
local previous = tonumber(redis.call('HGET', KEYS[1], 'seq') or '-1')
local seq = tonumber(ARGV[1])
if seq <= previous then return {0, previous} end
redis.call('HSET', KEYS[1], 'seq', seq)
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {1, previous}
