-- Store an audio stream's state after a chunk, if that chunk is newer than the stored one,
-- together with the chunk's record position and outputs: kept until that record's offset is
-- committed, so a chunk re-read after a crash is re-emitted rather than refused, however
-- many chunks the stream sent since. All of it or none of it: every argument and key type
-- is checked before the first write.
-- KEYS: 1 {t}:stream:{stream} (hash seq, state)
--       2 {t}:stream-outputs:{partition}:{stream} (zset: score offset,
--         member "position|incarnation|seq|outputs")
--       3 {t}:quota:{today}
-- ARGV: 1 seq  2 state (bytes)  3 ttl_s  4 position  5 outputs (bytes)  6 offset
--       7 committed offset of the partition (-1: unknown)  8 outputs kept at most
--       9 incarnation  10 quota (new ids a day, 0: none, -1: not counted: the tagger's
--       copy of a stream the core worker counts)  11 quota_ttl_s
-- Returns {1, previous seq or -1} when saved, {0, previous seq} when the seq is not newer,
-- {-1, why, detail} when refused (why: quota | state).
for _, i in ipairs({1, 3, 6, 7, 8, 10, 11}) do
  if integer(ARGV[i]) == nil then return {-1, 'state', 'argument ' .. i .. ' is not an integer'} end
end
for i, wanted in ipairs({'hash', 'zset', 'string'}) do
  local t = redis.call('TYPE', KEYS[i])['ok']
  if t ~= 'none' and t ~= wanted then
    return {-1, 'state', 'key ' .. KEYS[i] .. ' holds a ' .. t .. ', not a ' .. wanted}
  end
end
local stored = redis.call('HGET', KEYS[1], 'seq')
local used = redis.call('GET', KEYS[3])
if (stored and integer(stored) == nil) or (used and integer(used) == nil) then
  return {-1, 'state', 'stored seq or quota counter is not an integer'}
end
local previous = tonumber(stored or '-1')
local seq, offset, committed = tonumber(ARGV[1]), tonumber(ARGV[6]), tonumber(ARGV[7])
if seq <= previous then return {0, previous} end
local quota = tonumber(ARGV[10])
local new = 1 - redis.call('EXISTS', KEYS[1])
if quota > 0 and new > 0 and tonumber(used or '0') + new > quota then
  return {-1, 'quota', 'tenant created ' .. (used or '0') .. ' ids today'}
end
-- from here on nothing can fail
if new > 0 and quota >= 0 then
  redis.call('INCRBY', KEYS[3], new)
  redis.call('EXPIRE', KEYS[3], ARGV[11])
end
redis.call('HSET', KEYS[1], 'seq', seq, 'state', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], offset, ARGV[4] .. '|' .. ARGV[9] .. '|' .. ARGV[1] .. '|' .. ARGV[5])
if committed >= 0 then  -- below the committed offset nothing can be read again
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. committed)
end
local kept = redis.call('ZCARD', KEYS[2])
local most = tonumber(ARGV[8])
if kept > most then redis.call('ZREMRANGEBYRANK', KEYS[2], 0, kept - most - 1) end
redis.call('EXPIRE', KEYS[2], ARGV[3])
return {1, previous}
