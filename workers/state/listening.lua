-- One listening event, applied atomically in one round trip.
-- KEYS (all in the tenant's hash slot):
--   1 {t}:seen:{event_id}   2 {t}:user:{uid}   3 {t}:user:{uid}:tracks (HLL)
--   4 {t}:track:{track}     5 {t}:track:{track}:listeners:{window} (HLL)
--   6 {t}:user:{uid}:plays (track -> listens, for catalogue concentration)
-- ARGV: 1 type  2 ms_played  3 track_id  4 hour  5 ts  6 user_id  7 window
--       8 seen_ttl_s  9 window_ttl_s  10 near_30s (0/1)  11 completed (0/1)
--       12 position of the record (topic:partition:offset)
-- Exactly-once effect: the event_id key remembers the record's position. The same record
-- again (a replay after a crash) changes nothing and returns the state with status 2; the
-- same event_id from another record is a duplicate: {0}.
-- Returns {0} for a duplicate, else
--   {1 applied | 2 replay, user fields..., distinct_tracks, rolled_from, counts(w), counts(w-1),
--    counts(r), counts(r-1), counts(r-2)}
--   where counts = plays, skips, likes, shares, listeners, near30
local FIELDS = {'events', 'plays', 'skips', 'likes', 'shares', 'near30', 'repeats',
                'ms_played', 'first_ts', 'last_ts', 'top_track'}
local COUNTS = {'plays', 'skips', 'likes', 'shares', 'listeners', 'near30'}

local kind, track, ts, window = ARGV[1], ARGV[3], tonumber(ARGV[5]), tonumber(ARGV[7])
local user, meta = KEYS[2], KEYS[4]
local status = 1
local seen = redis.call('GET', KEYS[1])
if seen then
  if seen ~= ARGV[12] then return {0} end
  status = 2
else
  redis.call('SET', KEYS[1], ARGV[12], 'EX', ARGV[8])
end
local rolled = -1
if status == 1 then
local plural = kind .. 's'

redis.call('HINCRBY', user, 'events', 1)
redis.call('HINCRBY', user, plural, 1)
if kind == 'play' or kind == 'skip' then
  redis.call('HINCRBY', user, 'ms_played', ARGV[2])
  redis.call('HINCRBY', user, 'near30', ARGV[10])
  redis.call('HINCRBY', user, 'h' .. ARGV[4], 1)
  if redis.call('HGET', user, 'last_track') == track then
    redis.call('HINCRBY', user, 'repeats', 1)
  end
  redis.call('HSET', user, 'last_track', track)
  redis.call('PFADD', KEYS[3], track)
  local listens = redis.call('HINCRBY', KEYS[6], track, 1)
  if listens > tonumber(redis.call('HGET', user, 'top_track') or '0') then
    redis.call('HSET', user, 'top_track', listens)
  end
end
local first = tonumber(redis.call('HGET', user, 'first_ts') or ts)
local last = tonumber(redis.call('HGET', user, 'last_ts') or ts)
redis.call('HSET', user, 'first_ts', math.min(first, ts), 'last_ts', math.max(last, ts))

redis.call('HINCRBY', meta, window .. ':' .. plural, 1)
if ARGV[11] == '1' then redis.call('HINCRBY', meta, window .. ':completions', 1) end
if ARGV[10] == '1' then redis.call('HINCRBY', meta, window .. ':near30', 1) end
if kind == 'play' then
  redis.call('PFADD', KEYS[5], ARGV[6])
  redis.call('EXPIRE', KEYS[5], ARGV[9])
  redis.call('HSET', meta, window .. ':listeners', redis.call('PFCOUNT', KEYS[5]))
end
local maxw = tonumber(redis.call('HGET', meta, 'maxw') or '-1')
if window > maxw then
  redis.call('HSET', meta, 'maxw', window)
  rolled = maxw
  -- keep the last few windows only
  for _, field in ipairs(redis.call('HKEYS', meta)) do
    local w = tonumber(string.match(field, '^(%-?%d+):'))
    if w and w < window - 4 then redis.call('HDEL', meta, field) end
  end
end
end  -- status == 1

local out = {status}
for _, v in ipairs(redis.call('HMGET', user, unpack(FIELDS))) do out[#out + 1] = tonumber(v or 0) end
for h = 0, 23 do out[#out + 1] = tonumber(redis.call('HGET', user, 'h' .. h) or 0) end
out[#out + 1] = redis.call('PFCOUNT', KEYS[3])
out[#out + 1] = rolled
for _, w in ipairs({window, window - 1, rolled, rolled - 1, rolled - 2}) do
  for _, c in ipairs(COUNTS) do
    out[#out + 1] = tonumber(redis.call('HGET', meta, w .. ':' .. c) or 0)
  end
end
return out
