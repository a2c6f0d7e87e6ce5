-- One listening event, applied atomically in one round trip: all of it or none of it.
-- Every argument and every key this script writes is checked before the first write, so a
-- bad value or a key of another type (written by someone else) refuses the event and
-- changes nothing; Redis does not roll a script back, so nothing may fail after a write.
--
-- KEYS (all in the tenant's hash slot; layout in keys.py):
--   1 {t}:seen:{today}:{uid} (hash event_id -> "position|incarnation"; written here)
--   2 {t}:user:{uid}  3 {t}:user-tracks:{uid} (HLL)  4 {t}:user-plays:{uid} (hash)
--   5 {t}:track:{track}  6 {t}:track-listeners:{window}:{track} (HLL)
--   7 {t}:erased:{digest of uid}  8 {t}:quota:{today}
--   9 {t}:detector:listening (hash: seq, seen, alarms)  10 its score window (zset)
--   11-20 its behaviour feature windows (zsets, FEATURE_NAMES' order)
--   21 {t}:model:popularity (hash: the forecaster's statistics)
--   22 {t}:recent:{uid} (list of "track|ts", newest first)  23 {t}:popular:{epoch} (zset)
--   24 {t}:model:segments (string: the listener segments' centres, segments.lua)
--   25.. {t}:seen:{day}:{uid} for the other days of the replay memory (read only)
--   (and, named in ARGV, in the same hash slot: the co-listen sets of the track and of the
--   listener's previous one, and the previous epoch's popular set)
-- ARGV: 1 type  2 ms_played  3 track_id  4 hour  5 ts  6 user_id  7 window
--       8 seen_ttl_s  9 window_ttl_s  10 near_30s (0/1)  11 completed (0/1)
--       12 position (topic:partition:offset)  13 incarnation of the calling worker
--       14 state_ttl_s  15 record time (ms, the Kafka timestamp)  16 lateness (ms)
--       17 early (0/1: ts beyond the worker's clock + skew)  18 quota (new ids a day, 0: none)
--       19 quota_ttl_s  20 tracks kept per user in {t}:user-plays
--       21 event_id  22 learn (0/1: 0 when degraded)  23 alarm_rate  24 warmup  25 top_k
--       26 window (of the detector)  27 forgetting (of the forecaster)
--       28 the track's hash (accounts.track_hash: picks a farm's canonical target)
--       29 qualifies (0/1: a play of 30 s or more)  30 co-listen weight  31 co-listen key
--       prefix (of this epoch)  32 popular weight  33 the previous epoch's popular key
--       34 session gap (ms)  35 co-listen top  36 popular top  37 recent plays kept
--       (core/colisten.py: forward-decayed weights, bounded sets)
-- The models learn in this same script, from the event that teaches them, so a record is
-- learnt exactly once, whichever worker reads it how often (detector.lua, forecaster.lua).
-- Returns {0, why, detail} when refused (why: duplicate | erased | quota | state), else
--   {status, flags, user fields..., hours 0-23, distinct_tracks, rolled_from,
--    counts(w), counts(w-1), counts(r), counts(r-1), counts(r-2),
--    score, percentile, threshold, warming (0/1), alarm (0/1), inputs learnt, alarms,
--    features x10, ranks x10,
--    forecaster: trained, mae, naive_mae, a x10, b x4,
--    account evidence: listens, concentration, track_near30, group, group_hash,
--    published, segment} (floats as strings)
--   status 1: applied now; 2: applied before by another record read (a replay);
--   3: applied before by this same worker (a retry whose reply was lost)
--   flags: 1 late (beyond the lateness bound), 2 early (held out of the live window)
--   counts = plays, skips, likes, shares, listeners, near30
local FIELDS = {'events', 'plays', 'skips', 'likes', 'shares', 'near30', 'ms_played',
                'first_ts', 'last_ts', 'top_track'}
local COUNTS = {'plays', 'skips', 'likes', 'shares', 'listeners', 'near30'}
-- the account evidence (workers/core/models/accounts.py: fold_evidence and its constants)
local ACCOUNT = {'an', 'ac', 'at', 'ag', 'ah', 'ap'}
local ALPHA, GROUP_CONCENTRATION, GROUP_LISTENERS = 0.05, 3.0, 3
local KEPT_WINDOWS = 4
local HOURS = {}
for h = 0, 23 do HOURS[h + 1] = 'h' .. h end

local function refuse(why, detail) return {0, why, detail} end

-- arguments
local kind, track, event_id = ARGV[1], ARGV[3], ARGV[21]
if not (kind == 'play' or kind == 'skip' or kind == 'like' or kind == 'share') then
  return refuse('state', 'type ' .. tostring(kind))
end
local NUMBERS = {{'ms_played', 2}, {'hour', 4}, {'ts', 5}, {'window', 7}, {'seen_ttl', 8},
                 {'window_ttl', 9}, {'state_ttl', 14}, {'record_time', 15}, {'lateness', 16},
                 {'quota', 18}, {'quota_ttl', 19}, {'kept_tracks', 20}}
for _, item in ipairs(NUMBERS) do
  if integer(ARGV[item[2]]) == nil then return refuse('state', item[1] .. ' is not an integer') end
end
local ms_played, hour, ts, window = tonumber(ARGV[2]), tonumber(ARGV[4]), tonumber(ARGV[5]),
  tonumber(ARGV[7])
local seen_ttl, window_ttl, state_ttl = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[14])
local record_time, lateness, quota = tonumber(ARGV[15]), tonumber(ARGV[16]), tonumber(ARGV[18])
local quota_ttl, kept_tracks = tonumber(ARGV[19]), tonumber(ARGV[20])
if hour < 0 or hour > 23 or ms_played < 0 then return refuse('state', 'hour or ms_played') end
if not (ARGV[10] == '0' or ARGV[10] == '1') or not (ARGV[11] == '0' or ARGV[11] == '1')
    or not (ARGV[17] == '0' or ARGV[17] == '1') then
  return refuse('state', 'flags must be 0 or 1')
end
local early = ARGV[17] == '1'

for i = 9, 21 do
  local wanted = (i == 9 or i == 21) and 'hash' or 'zset'
  local t = redis.call('TYPE', KEYS[i])['ok']
  if t ~= 'none' and t ~= wanted then
    return refuse('state', 'key ' .. KEYS[i] .. ' holds a ' .. t .. ', not a ' .. wanted)
  end
end
local learning = ARGV[22] == '1'
local alarm_rate, warmup, top_k = tonumber(ARGV[23]), tonumber(ARGV[24]), tonumber(ARGV[25])
local detector_window, forgetting = tonumber(ARGV[26]), tonumber(ARGV[27])

-- Every key is read before anything is written: a key of another type (written by someone
-- else) makes a read fail with WRONGTYPE, and the script stops with nothing changed. The
-- two HyperLogLogs are written without being read first, so they are checked here.
for _, i in ipairs({3, 6}) do
  local t = redis.call('TYPE', KEYS[i])['ok']
  if t ~= 'none' and (t ~= 'string' or redis.call('GETRANGE', KEYS[i], 0, 3) ~= 'HYLL') then
    return refuse('state', 'key ' .. KEYS[i] .. ' is not a HyperLogLog')
  end
end
local function integers(key, names)
  local values = redis.call('HMGET', key, unpack(names))
  for i, v in ipairs(values) do
    if v and integer(v) == nil then
      return 'field ' .. names[i] .. ' of ' .. key .. ' is not an integer'
    end
  end
  return nil
end
local user, meta = KEYS[2], KEYS[5]
local plural = kind .. 's'
local problem = integers(user, {'events', plural, 'ms_played', 'near30', 'h' .. hour,
                                'first_ts', 'last_ts', 'top_track'})
  or integers(meta, {'maxw', window .. ':' .. plural, window .. ':completions',
                     window .. ':near30'})
  or integers(KEYS[4], {track})
-- the listener's account evidence (an, ac, at, ag, ah, ap), read once: checked here, used below
local acct = redis.call('HMGET', user, unpack(ACCOUNT))
for _, item in ipairs({{1, integer}, {2, tonumber}, {3, tonumber}, {5, integer}}) do
  local v = acct[item[1]]
  if v and item[2](v) == nil then
    problem = problem
      or ('account evidence ' .. ACCOUNT[item[1]] .. ' of ' .. user .. ' is not a number')
  end
end
if integer(ARGV[28]) == nil then problem = 'track hash is not an integer' end
local segment_type = redis.call('TYPE', KEYS[24])['ok']
if segment_type ~= 'none' and segment_type ~= 'string' then
  problem = problem or ('key ' .. KEYS[24] .. ' holds a ' .. segment_type .. ', not a string')
end
local centres = nil
if problem == nil then
  centres = load_segments(segment_type == 'string' and KEYS[24] or nil, 10)
  if centres == nil then problem = 'the segment centres are not 60 doubles' end
end
if problem then return refuse('state', problem) end

-- co-listening: the listener's previous play, and every set it writes, checked here
local co = nil
if ARGV[29] == '1' then
  local co_w, pop_w = tonumber(ARGV[30]), tonumber(ARGV[32])
  local gap, co_top, pop_top, recent_kept = integer(ARGV[34]), integer(ARGV[35]),
    integer(ARGV[36]), integer(ARGV[37])
  if not (co_w and pop_w and gap and co_top and pop_top and recent_kept) then
    return refuse('state', 'co-listening arguments are not numbers')
  end
  co = {w = co_w, pop_w = pop_w, co_top = co_top, pop_top = pop_top, kept = recent_kept,
        sets = {}, carry = nil}
  local recent_type = redis.call('TYPE', KEYS[22])['ok']
  if recent_type ~= 'none' and recent_type ~= 'list' then
    return refuse('state', 'key ' .. KEYS[22] .. ' holds a ' .. recent_type .. ', not a list')
  end
  local wanted = {[KEYS[23]] = 'zset'}
  local last = recent_type == 'list' and redis.call('LINDEX', KEYS[22], 0)
  if last then
    local prev, prev_ts = string.match(last, '^(.*)|(%-?%d+)$')
    if prev and prev ~= track and math.abs(ts - tonumber(prev_ts)) <= gap then
      co.sets = {{ARGV[31] .. prev, track}, {ARGV[31] .. track, prev}}
      wanted[ARGV[31] .. prev], wanted[ARGV[31] .. track] = 'zset', 'zset'
    end
  end
  for key, kind_wanted in pairs(wanted) do
    local t = redis.call('TYPE', key)['ok']
    if key == KEYS[23] and t == 'none' and ARGV[33] ~= '' then  -- a new epoch's first play
      co.carry = ARGV[33]
      local old = redis.call('TYPE', ARGV[33])['ok']
      if old ~= 'none' and old ~= 'zset' then
        return refuse('state', 'key ' .. ARGV[33] .. ' holds a ' .. old .. ', not a zset')
      end
    end
    if t ~= 'none' and t ~= kind_wanted then
      return refuse('state', 'key ' .. key .. ' holds a ' .. t .. ', not a ' .. kind_wanted)
    end
  end
end
local erased_at = redis.call('GET', KEYS[7])
local quota_used = redis.call('GET', KEYS[8])
if (erased_at and integer(erased_at) == nil) or (quota_used and integer(quota_used) == nil) then
  return refuse('state', 'erasure or quota counter is not an integer')
end

-- the same record again (a replay, or this worker's own retry), or the same event twice
local status = 1
for i = 1, #KEYS do
  if i == 1 or i >= 25 then
    local seen = redis.call('HGET', KEYS[i], event_id)
    if seen then
      local position, incarnation = string.match(seen, '^(.*)|([^|]*)$')
      if position ~= ARGV[12] then
        return refuse('duplicate', 'event_id already applied from ' .. tostring(position))
      end
      status = (incarnation == ARGV[13]) and 3 or 2
      break
    end
  end
end
if status == 1 and erased_at and record_time <= tonumber(erased_at) then
  return refuse('erased', 'listener erased at ' .. erased_at)
end

local flags, rolled = 0, -1
local maxw = tonumber(redis.call('HGET', meta, 'maxw') or '-1')
local late_track = maxw >= 0 and window < maxw - KEPT_WINDOWS
if status == 1 then
  -- a quota on new ids: a tenant sending random ids cannot take the others' memory
  local new_ids = 1 - redis.call('EXISTS', user)
  if not late_track then new_ids = new_ids + 1 - redis.call('EXISTS', meta) end
  if quota > 0 and new_ids > 0 and tonumber(quota_used or '0') + new_ids > quota then
    return refuse('quota', 'tenant created ' .. (quota_used or '0') .. ' ids today')
  end
  -- from here on nothing can fail: every value was checked above
  if new_ids > 0 then
    redis.call('INCRBY', KEYS[8], new_ids)
    redis.call('EXPIRE', KEYS[8], quota_ttl)
  end
  redis.call('HSET', KEYS[1], event_id, ARGV[12] .. '|' .. ARGV[13])
  redis.call('EXPIRE', KEYS[1], seen_ttl)

  redis.call('HINCRBY', user, 'events', 1)
  redis.call('HINCRBY', user, plural, 1)
  if kind == 'play' or kind == 'skip' then
    redis.call('HINCRBY', user, 'ms_played', ms_played)
    redis.call('HINCRBY', user, 'near30', tonumber(ARGV[10]))
    redis.call('HINCRBY', user, 'h' .. hour, 1)
    redis.call('PFADD', KEYS[3], track)
    local listens = 0
    if redis.call('HEXISTS', KEYS[4], track) == 1
        or redis.call('HLEN', KEYS[4]) < kept_tracks then
      listens = redis.call('HINCRBY', KEYS[4], track, 1)
    end
    if listens > tonumber(redis.call('HGET', user, 'top_track') or '0') then
      redis.call('HSET', user, 'top_track', listens)
    end
    redis.call('EXPIRE', KEYS[3], state_ttl)
    redis.call('EXPIRE', KEYS[4], state_ttl)
  end
  -- event time: an event later than the lateness bound cannot pin first_ts back
  local last = tonumber(redis.call('HGET', user, 'last_ts') or ts)
  local effective = ts
  if ts < last - lateness then
    effective = last - lateness
    flags = 1
  end
  local first = tonumber(redis.call('HGET', user, 'first_ts') or effective)
  redis.call('HSET', user, 'first_ts', math.min(first, effective), 'last_ts',
             math.max(last, ts))
  redis.call('EXPIRE', user, state_ttl)

  if late_track then
    flags = 1  -- its window is gone: the track's counts are not changed
  else
    redis.call('HINCRBY', meta, window .. ':' .. plural, 1)
    if ARGV[11] == '1' then redis.call('HINCRBY', meta, window .. ':completions', 1) end
    if ARGV[10] == '1' then redis.call('HINCRBY', meta, window .. ':near30', 1) end
    if kind == 'play' then
      redis.call('PFADD', KEYS[6], ARGV[6])
      redis.call('EXPIRE', KEYS[6], window_ttl)
      redis.call('HSET', meta, window .. ':listeners', redis.call('PFCOUNT', KEYS[6]))
    end
    if early then
      flags = flags + 2  -- counted in its own window, which it may not open early
    elseif window > maxw then
      redis.call('HSET', meta, 'maxw', window)
      rolled = maxw
      for _, field in ipairs(redis.call('HKEYS', meta)) do
        local w = tonumber(string.match(field, '^(%-?%d+):'))
        if w and w < window - KEPT_WINDOWS then redis.call('HDEL', meta, field) end
      end
    end
    redis.call('EXPIRE', meta, state_ttl)
  end
  if co then
    -- a set can only outgrow its bound when a member is added (its score is then the
    -- increment itself): only then is it counted
    local function bounded(key, top, score, added)
      if tonumber(score) == added then
        local n = redis.call('ZCARD', key)
        if n > 2 * top then redis.call('ZREMRANGEBYRANK', key, 0, n - top - 1) end
      end
      redis.call('EXPIRE', key, state_ttl)
    end
    redis.call('LPUSH', KEYS[22], track .. '|' .. ts)
    redis.call('LTRIM', KEYS[22], 0, co.kept - 1)
    redis.call('EXPIRE', KEYS[22], state_ttl)
    for _, pair in ipairs(co.sets) do
      bounded(pair[1], co.co_top, redis.call('ZINCRBY', pair[1], num(co.w), pair[2]), co.w)
    end
    if co.carry then  -- a new epoch: the standings carry over, rescaled to its origin
      local old = redis.call('ZREVRANGE', co.carry, 0, co.pop_top - 1, 'WITHSCORES')
      for i = 1, #old, 2 do
        redis.call('ZADD', KEYS[23], num(tonumber(old[i + 1]) * 2 ^ -512), old[i])
      end
    end
    bounded(KEYS[23], co.pop_top, redis.call('ZINCRBY', KEYS[23], num(co.pop_w), track),
            co.pop_w)
  end
end

local out = {status, flags}
local u = {}
for i, v in ipairs(redis.call('HMGET', user, unpack(FIELDS))) do
  u[FIELDS[i]] = tonumber(v or 0)
  out[#out + 1] = u[FIELDS[i]]
end
local hours = {}
for i, v in ipairs(redis.call('HMGET', user, unpack(HOURS))) do
  hours[i] = tonumber(v or 0)
  out[#out + 1] = hours[i]
end
local distinct = redis.call('PFCOUNT', KEYS[3])
out[#out + 1] = distinct
out[#out + 1] = rolled
local windows = {}
for _, w in ipairs({window, window - 1, rolled, rolled - 1, rolled - 2}) do
  for _, c in ipairs(COUNTS) do windows[#windows + 1] = w .. ':' .. c end
end
local counts = redis.call('HMGET', meta, unpack(windows))
for i, v in ipairs(counts) do
  counts[i] = tonumber(v or 0)
  out[#out + 1] = counts[i]
end

-- the listener's account evidence: what the played track's audience looks like (first read)
local a_n, a_c, a_t = tonumber(acct[1] or '0'), tonumber(acct[2] or '0'), tonumber(acct[3] or '0')
local a_g, a_h = acct[4] or '', tonumber(acct[5] or '-1')
if status == 1 and (kind == 'play' or kind == 'skip') then
  a_n = a_n + 1
  local alpha = math.max(ALPHA, 1.0 / a_n)
  local conc = 1.0
  if counts[5] > 0 then conc = counts[1] / counts[5] end
  local track_listens = counts[1] + counts[2]
  local near30 = 0.0
  if track_listens > 0 then near30 = counts[6] / track_listens end
  a_c = a_c + alpha * (conc - a_c)
  a_t = a_t + alpha * (near30 - a_t)
  local h = tonumber(ARGV[28])
  if counts[5] >= GROUP_LISTENERS and conc >= GROUP_CONCENTRATION and (a_h < 0 or h < a_h) then
    a_g, a_h = track, h
  end
  redis.call('HSET', user, 'an', a_n, 'ac', num(a_c), 'at', num(a_t), 'ag', a_g,
             'ah', string.format('%d', a_h))
end

-- the listener, judged against the tenant's recent listeners, then learnt (first read only)
local window_keys = {}
for i = 1, 10 do window_keys[i] = KEYS[10 + i] end
local x = behaviour(u, hours, distinct, counts[1], counts[2], counts[6])
local detector = detector_state(KEYS[9])
local j = judge(detector, KEYS[10], window_keys, x, top_k, alarm_rate, warmup, detector_window)
local alarm = (not j.warming) and j.score > j.threshold
if status == 1 and learning then
  learn(detector, KEYS[9], KEYS[10], window_keys, x, j.score, detector_window, alarm, state_ttl)
end
for _, v in ipairs({j.score, j.percentile, j.threshold}) do out[#out + 1] = num(v) end
out[#out + 1] = j.warming and 1 or 0
out[#out + 1] = alarm and 1 or 0
out[#out + 1] = detector.seen
out[#out + 1] = detector.alarms
for _, v in ipairs(x) do out[#out + 1] = num(v) end
for _, v in ipairs(j.ranks) do out[#out + 1] = num(v) end

-- the popularity forecaster learns the delayed label of the window this event closed
local model = load_forecaster(KEYS[21])
if status == 1 and learning and rolled >= 0 then
  -- counts 13-18: the window that closed (r); 19-24: the one before it; 25-30: before that
  learn_forecaster(KEYS[21], model, counts[19], counts[25], counts[13], forgetting, 1000)
  redis.call('EXPIRE', KEYS[21], state_ttl)
end
out[#out + 1] = model.trained
out[#out + 1] = num(model.mae)
out[#out + 1] = num(model.naive_mae)
for _, v in ipairs(model.a) do out[#out + 1] = num(v) end
for _, v in ipairs(model.b) do out[#out + 1] = num(v) end
for _, v in ipairs({a_n, num(a_c), num(a_t), a_g, string.format('%d', a_h), acct[6] or ''}) do
  out[#out + 1] = v
end
-- the listener's segment among the tenant's, from their tail ranks (learnt on first read)
out[#out + 1] = segment(KEYS[24], centres, j.ranks, status == 1 and learning, state_ttl)
return out
