-- Store an audio stream's state after a chunk, if that chunk is newer than the stored one,
-- together with the chunk's record position and outputs: kept until that record's offset is
-- committed, so a chunk re-read after a crash is re-emitted rather than refused, however
-- many chunks the stream sent since. All of it or none of it: every argument and key type
-- is checked before the first write. KEYS and ARGV: StreamKeys, StreamArgs
-- (workers/state/scripts.py).
-- Both consumers of audio.chunks (the core worker's features, the tagger) save here, each
-- its own state (lane), and admit a stream the same way: by a marker both read, set by
-- whichever admits the stream first (the chunk it starts from), counted once against the
-- tenant's quota of the day of the chunk's *record* (not of either's clock), so a chunk one
-- refuses for the quota the other refuses too.
-- The tagger saves its stream's mean embedding (``item`` not empty) in the same step, in
-- the tenant's catalogue of its model: a new item counts against the same quota (past it
-- the item is not kept; the chunk's tags still are), an item unwritten for ``catalogue_ttl``
-- seconds leaves it (a few at each write), and leaves a tombstone that readers see for
-- ``gone_for`` ms; a reader older than that reads everything again (the floor).
-- Returns {1, previous seq or -1, catalogue version (0: no item), item kept (0/1)} when
-- saved, {0, previous seq} when the seq is not newer, {-1, why, detail} when refused (why:
-- quota | state).

local stream = KEYS[1]
local outputs_key = KEYS[2]
local quota = KEYS[3]
local admitted = KEYS[4]
local embeddings = KEYS[5]
local catalogue = KEYS[6]
local stamps = KEYS[7]
local written = KEYS[8]
local gone = KEYS[9]

local seq = ARGV[1]
local state = ARGV[2]
local ttl = ARGV[3]
local position = ARGV[4]
local outputs = ARGV[5]
local offset = ARGV[6]
local committed = ARGV[7]
local outputs_kept = ARGV[8]
local incarnation = ARGV[9]
local quota_limit = ARGV[10]
local quota_ttl = ARGV[11]
local item = ARGV[12]
local vector = ARGV[13]
local now = ARGV[14]
local catalogue_ttl = ARGV[15]
local gone_for = ARGV[16]

local NUMBERS = {{'seq', seq}, {'ttl', ttl}, {'offset', offset}, {'committed', committed},
                 {'outputs_kept', outputs_kept}, {'quota_limit', quota_limit},
                 {'quota_ttl', quota_ttl}, {'now', now}, {'catalogue_ttl', catalogue_ttl},
                 {'gone_for', gone_for}}
for _, item in ipairs(NUMBERS) do
  if integer(item[2]) == nil then return {-1, 'state', item[1] .. ' is not an integer'} end
end
local typed = {{stream, 'hash'}, {outputs_key, 'zset'}, {quota, 'string'}, {admitted, 'string'}}
for _, pair in ipairs(typed) do
  local t = redis.call('TYPE', pair[1])['ok']
  if t ~= 'none' and t ~= pair[2] then
    return {-1, 'state', 'key ' .. pair[1] .. ' holds a ' .. t .. ', not a ' .. pair[2]}
  end
end
local stored = redis.call('HGET', stream, 'seq')
local used = redis.call('GET', quota)
local from = redis.call('GET', admitted)
if (stored and integer(stored) == nil) or (used and integer(used) == nil)
    or (from and integer(from) == nil) then
  return {-1, 'state', 'stored seq, quota counter or admission is not an integer'}
end
local previous = tonumber(stored or '-1')
local n = tonumber(seq)
offset, committed = tonumber(offset), tonumber(committed)
if n <= previous then return {0, previous} end
local limit = tonumber(quota_limit)
-- admitted from an earlier chunk: nothing to count; else a new id, within the quota (a
-- chunk before the one the stream was admitted from was refused by the other consumer:
-- the day's quota, which only grows, refuses it here too)
local new = (from == false or n < tonumber(from)) and 1 or 0
if limit > 0 and new > 0 and tonumber(used or '0') + 1 > limit then
  return {-1, 'quota', 'tenant created ' .. (used or '0') .. ' ids that day'}
end
-- the catalogue's item: kept if known, or if the day's quota has room for it
local keep_item, fresh = false, 0
local shelf = {embeddings = embeddings, catalogue = catalogue, stamps = stamps,
               written = written, gone = gone, item = item}
if item ~= '' then
  local problem
  problem, fresh = catalogue_check(shelf)
  if problem then return {-1, 'state', problem} end
  local counted = tonumber(used or '0') + ((new > 0 and from == false) and 1 or 0)
  keep_item = not (limit > 0 and fresh > 0 and counted + 1 > limit)
end
-- from here on nothing can fail
if new > 0 and from == false then
  redis.call('INCRBY', quota, 1)
  redis.call('EXPIRE', quota, quota_ttl)
  redis.call('SET', admitted, n)
end
redis.call('EXPIRE', admitted, ttl)
redis.call('HSET', stream, 'seq', n, 'state', state)
redis.call('EXPIRE', stream, ttl)
redis.call('ZADD', outputs_key, offset, position .. '|' .. incarnation .. '|' .. seq .. '|' .. outputs)
if committed >= 0 then  -- below the committed offset nothing can be read again
  redis.call('ZREMRANGEBYSCORE', outputs_key, '-inf', '(' .. committed)
end
local kept = redis.call('ZCARD', outputs_key)
local most = tonumber(outputs_kept)
if kept > most then redis.call('ZREMRANGEBYRANK', outputs_key, 0, kept - most - 1) end
redis.call('EXPIRE', outputs_key, ttl)
local version = 0
if keep_item then
  if fresh > 0 then
    redis.call('INCRBY', quota, 1)
    redis.call('EXPIRE', quota, quota_ttl)
  end
  version = catalogue_write(shelf, vector, tonumber(now), tonumber(catalogue_ttl),
                            tonumber(gone_for))
end
return {1, previous, version, keep_item and 1 or 0}
