-- Store an audio stream's state after a chunk, if that chunk is newer than the stored one.
-- KEYS: 1 {t}:stream:{stream}   ARGV: 1 seq  2 state (bytes)  3 ttl_s
-- Returns {accepted (0/1), previous seq or -1}.
local previous = tonumber(redis.call('HGET', KEYS[1], 'seq') or '-1')
local seq = tonumber(ARGV[1])
if seq <= previous then return {0, previous} end
redis.call('HSET', KEYS[1], 'seq', seq, 'state', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, previous}
