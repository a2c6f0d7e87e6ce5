-- Store an audio stream's state after a chunk, if that chunk is newer than the stored one,
-- together with the chunk's record position and outputs (kept for the last few chunks, so
-- a chunk re-read after a crash is re-emitted rather than refused).
-- KEYS: 1 {t}:stream:{stream}  2 {t}:stream:{stream}:recent
-- ARGV: 1 seq  2 state (bytes)  3 ttl_s  4 position  5 outputs (bytes)  6 chunks kept
-- Returns {accepted (0/1), previous seq or -1}.
local previous = tonumber(redis.call('HGET', KEYS[1], 'seq') or '-1')
local seq = tonumber(ARGV[1])
if seq <= previous then return {0, previous} end
redis.call('HSET', KEYS[1], 'seq', seq, 'state', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('LPUSH', KEYS[2], ARGV[1] .. '|' .. ARGV[4] .. '|' .. ARGV[5])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[6]) - 1)
redis.call('EXPIRE', KEYS[2], ARGV[3])
return {1, previous}
