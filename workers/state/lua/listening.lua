-- One listening event, applied atomically in one round trip: all of it or none of it.
-- Every argument and every key this script writes is checked before the first write, so a
-- bad value or a key of another type (written by someone else) refuses the event and
-- changes nothing; Redis does not roll a script back, so nothing may fail after a write.
--
-- KEYS and ARGV are declared by name in workers/state/scripts.py (ListeningKeys,
-- ListeningArgs), in the order of the block below; the store checks the two match. Every
-- key is in the tenant's hash slot. Named in ARGV, in the same slot: the references'
-- feature sets (prefix .. feature name), the listener's group's track (track_prefix .. id),
-- the co-listen sets of the track and of its neighbours in time (co_prefix .. track), the
-- previous epoch's popular set.
-- The models learn in this same script, from the event that teaches them, so a record is
-- learnt exactly once, whichever worker reads it how often (evidence.lua, reference.lua,
-- forecaster.lua, segments.lua).
-- Returns {0, why, detail} when refused (why: duplicate | erased | quota | state), else
--   {status, flags, user fields..., hours 0-23, distinct_tracks, rolled_from,
--    counts(w), counts(w-1),
--    listener reference size, per listener feature: value (shrunk), members at or above it,
--    mean, the tail's threshold and mean excess; the listener's burst share;
--    track reference size, per track feature: the same; the track's listens, suspicion,
--    verdict last published;
--    forecaster: trained, mae, naive_mae, seasonal_mae, the experts' forecasts of the
--      track's next window (naive, seasonal, level, recent) and their weights,
--    account: listens, group, group hash, verdict last published, the group's track's;
--    segment} (floats as strings)
--   status 1: applied now; 2: applied before by another record read (a replay);
--   3: applied before by this same worker (a retry whose reply was lost)
--   flags: 1 late (beyond the lateness bound), 2 early (held out of the live window)
--   counts = plays, skips, likes, shares, listeners, near30

local user = KEYS[1]
local user_tracks = KEYS[2]
local user_plays = KEYS[3]
local track_windows = KEYS[4]
local track_listeners = KEYS[5]
local erased = KEYS[6]
local quota = KEYS[7]
local forecaster = KEYS[8]
local recent = KEYS[9]
local popular = KEYS[10]
local segments = KEYS[11]
local clock = KEYS[12]
local listener_members = KEYS[13]
local listener_moments = KEYS[14]
local track_members = KEYS[15]
local track_moments = KEYS[16]
local seen_today = KEYS[17]
local seen_days = {unpack(KEYS, 18)}

local kind = ARGV[1]
local ms_played = ARGV[2]
local track_id = ARGV[3]
local hour = ARGV[4]
local ts = ARGV[5]
local user_id = ARGV[6]
local window = ARGV[7]
local seen_ttl = ARGV[8]
local window_ttl = ARGV[9]
local near30 = ARGV[10]
local completed = ARGV[11]
local position = ARGV[12]
local incarnation = ARGV[13]
local state_ttl = ARGV[14]
local record_time = ARGV[15]
local lateness = ARGV[16]
local early = ARGV[17]
local quota_limit = ARGV[18]
local quota_ttl = ARGV[19]
local kept_tracks = ARGV[20]
local event_id = ARGV[21]
local forgetting = ARGV[22]
local track_hash = ARGV[23]
local listener_hash = ARGV[24]
local listener_names = ARGV[25]
local track_names = ARGV[26]
local listener_prefix = ARGV[27]
local track_reference_prefix = ARGV[28]
local track_prefix = ARGV[29]
local reference_size = ARGV[30]
local qualifies = ARGV[31]
local co_prefix = ARGV[32]
local pop_weight = ARGV[33]
local pop_carry = ARGV[34]
local session_gap = ARGV[35]
local co_top = ARGV[36]
local pop_top = ARGV[37]
local recent_kept = ARGV[38]
local event_key = ARGV[39]
local listener_ts = ARGV[40]
local read_time = ARGV[41]
local window_ms = ARGV[42]
local max_windows = ARGV[43]
local co_origin = ARGV[44]
local co_half_life = ARGV[45]
local horizon = ARGV[46]

local FIELDS = {'events', 'plays', 'skips', 'likes', 'shares', 'near30', 'ms_played',
                'first_ts', 'last_ts', 'top_track'}
local COUNTS = {'plays', 'skips', 'likes', 'shares', 'listeners', 'near30'}
-- the listener's account fields: listens, their group (canonical target, its hash), the
-- verdict last published (workers/core/models/accounts.py)
local ACCOUNT = {'an', 'ag', 'ah', 'ap'}
local GROUP_CONCENTRATION, GROUP_ARRIVALS = 3.0, 3.0
-- the references' tails are refit every this many events learnt (reference.REFIT_EVERY)
local REFIT_EVERY = 64
local KEPT_WINDOWS = 4
local HOURS = {}
for h = 0, 23 do HOURS[h + 1] = 'h' .. h end

local function refuse(why, detail) return {0, why, detail} end

-- arguments
local track = track_id
if not (kind == 'play' or kind == 'skip' or kind == 'like' or kind == 'share') then
  return refuse('state', 'type ' .. tostring(kind))
end
local NUMBERS = {{'ms_played', ms_played}, {'hour', hour}, {'ts', ts}, {'window', window},
                 {'seen_ttl', seen_ttl}, {'window_ttl', window_ttl}, {'state_ttl', state_ttl},
                 {'record_time', record_time}, {'lateness', lateness},
                 {'quota', quota_limit}, {'quota_ttl', quota_ttl}, {'kept_tracks', kept_tracks},
                 {'reference_size', reference_size}, {'listener_ts', listener_ts},
                 {'track_hash', track_hash}, {'listener_hash', listener_hash},
                 {'read_time', read_time}, {'window_ms', window_ms},
                 {'max_windows', max_windows}, {'horizon', horizon}}
for _, item in ipairs(NUMBERS) do
  if integer(item[2]) == nil then return refuse('state', item[1] .. ' is not an integer') end
end
ms_played, hour, ts, window = tonumber(ms_played), tonumber(hour), tonumber(ts), tonumber(window)
seen_ttl, window_ttl, state_ttl = tonumber(seen_ttl), tonumber(window_ttl), tonumber(state_ttl)
record_time, lateness = tonumber(record_time), tonumber(lateness)
quota_limit, quota_ttl, kept_tracks = tonumber(quota_limit), tonumber(quota_ttl), tonumber(kept_tracks)
reference_size, listener_ts, read_time = tonumber(reference_size), tonumber(listener_ts),
  tonumber(read_time)
window_ms, max_windows, horizon = tonumber(window_ms), tonumber(max_windows), tonumber(horizon)
if listener_names ~= table.concat(LISTENER_FEATURES, ',')
    or track_names ~= table.concat(TRACK_FEATURES, ',') then
  return refuse('state', "the caller's features are not the script's")
end
local listener_ref = {members = listener_members, moments = listener_moments,
                      prefix = listener_prefix, features = LISTENER_FEATURES,
                      size = reference_size}
local track_ref = {members = track_members, moments = track_moments,
                   prefix = track_reference_prefix, features = TRACK_FEATURES,
                   size = reference_size}
if hour < 0 or hour > 23 or ms_played < 0 then return refuse('state', 'hour or ms_played') end
if not (near30 == '0' or near30 == '1') or not (completed == '0' or completed == '1')
    or not (early == '0' or early == '1') then
  return refuse('state', 'flags must be 0 or 1')
end
early = early == '1'

do
  local t = redis.call('TYPE', forecaster)['ok']
  if t ~= 'none' and t ~= 'hash' then
    return refuse('state', 'key ' .. forecaster .. ' holds a ' .. t .. ', not a hash')
  end
end
local wrong = reference_keys_ok(listener_ref) or reference_keys_ok(track_ref)
if wrong then return refuse('state', wrong) end
forgetting = tonumber(forgetting)

-- Every key is read before anything is written: a key of another type (written by someone
-- else) makes a read fail with WRONGTYPE, and the script stops with nothing changed. The
-- two HyperLogLogs are written without being read first, so they are checked here.
for _, key in ipairs({user_tracks, track_listeners}) do
  local t = redis.call('TYPE', key)['ok']
  if t ~= 'none' and (t ~= 'string' or redis.call('GETRANGE', key, 0, 3) ~= 'HYLL') then
    return refuse('state', 'key ' .. key .. ' is not a HyperLogLog')
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
local meta = track_windows
local plural = kind .. 's'
local problem = integers(user, {'events', plural, 'ms_played', 'near30', 'h' .. hour,
                                'first_ts', 'last_ts', 'top_track'})
  or integers(meta, {'maxw', window .. ':' .. plural, window .. ':completions',
                     window .. ':near30'})
  or integers(user_plays, {track})
-- the listener's account fields (an, ag, ah, ap), read once: checked here, used below
local acct = redis.call('HMGET', user, unpack(ACCOUNT))
for _, item in ipairs({{1, integer}, {3, integer}}) do
  local v = acct[item[1]]
  if v and item[2](v) == nil then
    problem = problem
      or ('account field ' .. ACCOUNT[item[1]] .. ' of ' .. user .. ' is not a number')
  end
end
-- the track's and the listener's evidence (evidence.lua), and the track's burst buckets
local track_before = load_track_evidence(meta)
local listener_before = load_listener_evidence(user)
if track_before == nil or listener_before == nil then
  problem = problem or 'the evidence of ' .. meta .. ' or ' .. user .. ' is not numbers'
end
local bucket = math.floor(listener_ts / BUCKET)
problem = problem or integers(meta, {'b' .. bucket, 'b' .. (bucket - 1)})
-- the listener's last listen, "track|bucket" (any other text: none)
local last_listen = redis.call('HGET', user, 'lb') or ""
-- the group's track, whose verdict the listener's judgement reads
if acct[2] and acct[2] ~= '' then
  local t = redis.call('TYPE', track_prefix .. acct[2])['ok']
  if t ~= 'none' and t ~= 'hash' then
    problem = problem or ('key ' .. track_prefix .. acct[2] .. ' holds a ' .. t .. ', not a hash')
  end
end
local segment_type = redis.call('TYPE', segments)['ok']
if segment_type ~= 'none' and segment_type ~= 'string' then
  problem = problem or ('key ' .. segments .. ' holds a ' .. segment_type .. ', not a string')
end
local centres = nil
if problem == nil then
  centres = load_segments(segment_type == 'string' and segments or nil, #LISTENER_FEATURES)
  if centres == nil then
    problem = 'the segment centres are not ' .. SEGMENTS .. ' x ' .. #LISTENER_FEATURES .. ' doubles'
  end
end
if problem then return refuse('state', problem) end

-- co-listening follows event time: a play takes its place among the listener's recent plays
-- by its time, pairs with its neighbours there, and undoes the pair those two formed (so the
-- order plays arrive in does not matter). Every set it writes is checked here.
local co = nil
local function parse_play(item)
  local t, at = string.match(item, '^(.*)|(%-?%d+)$')
  if t then return {track = t, ts = tonumber(at), item = item} end
  return nil
end
if qualifies == '1' then
  local pop_w, origin, half = tonumber(pop_weight), tonumber(co_origin), tonumber(co_half_life)
  local gap, co_n, pop_n, kept = integer(session_gap), integer(co_top), integer(pop_top),
    integer(recent_kept)
  if not (pop_w and origin and half and gap and co_n and pop_n and kept) then
    return refuse('state', 'co-listening arguments are not numbers')
  end
  co = {pop_w = pop_w, co_top = co_n, pop_top = pop_n, kept = kept, sets = {}, carry = nil,
        at = nil, pivot = nil}
  local recent_type = redis.call('TYPE', recent)['ok']
  if recent_type ~= 'none' and recent_type ~= 'list' then
    return refuse('state', 'key ' .. recent .. ' holds a ' .. recent_type .. ', not a list')
  end
  local wanted = {[popular] = 'zset'}
  local items = recent_type == 'list' and redis.call('LRANGE', recent, 0, -1) or {}
  local plays = {}
  for _, item in ipairs(items) do plays[#plays + 1] = parse_play(item) end
  -- newest first: the play goes before the first one at or before its time
  local at = #plays + 1
  for i, p in ipairs(plays) do
    if p.ts <= listener_ts then at = i; break end
  end
  co.at = at
  co.pivot = plays[at] and plays[at].item or nil
  if at <= kept then  -- beyond the kept plays its neighbours are not known
    local me = {track = track, ts = listener_ts}
    local newer, older = plays[at - 1], plays[at]
    local function pair(a, b, sign)  -- a before b in time
      if a and b and a.track ~= b.track and b.ts - a.ts <= gap then
        local w = sign * 2 ^ ((b.ts - origin) / half)
        co.sets[#co.sets + 1] = {co_prefix .. a.track, b.track, w}
        co.sets[#co.sets + 1] = {co_prefix .. b.track, a.track, w}
        wanted[co_prefix .. a.track], wanted[co_prefix .. b.track] = 'zset', 'zset'
      end
    end
    pair(older, newer, -1)
    pair(older, me, 1)
    pair(me, newer, 1)
  end
  for key, kind_wanted in pairs(wanted) do
    local t = redis.call('TYPE', key)['ok']
    if key == popular and t == 'none' and pop_carry ~= '' then  -- a new epoch's first play
      co.carry = pop_carry
      local old = redis.call('TYPE', pop_carry)['ok']
      if old ~= 'none' and old ~= 'zset' then
        return refuse('state', 'key ' .. pop_carry .. ' holds a ' .. old .. ', not a zset')
      end
    end
    if t ~= 'none' and t ~= kind_wanted then
      return refuse('state', 'key ' .. key .. ' holds a ' .. t .. ', not a ' .. kind_wanted)
    end
  end
end
local erased_at = redis.call('GET', erased)
local quota_used = redis.call('GET', quota)
local clock_type = redis.call('TYPE', clock)['ok']
local low = clock_type == 'hash' and redis.call('HGET', clock, 'low') or nil
if (erased_at and integer(erased_at) == nil) or (quota_used and integer(quota_used) == nil)
    or (clock_type ~= 'none' and clock_type ~= 'hash') or (low and integer(low) == nil) then
  return refuse('state', 'erasure, quota or event-time clock is not an integer')
end
-- the tenant's low watermark (clock.lua): below it, by the kept windows, a track's windows
-- are gone; unknown (-1) while its partitions have not all reported. A batch reports its
-- partitions' newest times before its records: capped at the record's own partition's
-- time as of it (horizon), a backlog's record is judged as it would be read alone
low = tonumber(low or '-1')
if low >= 0 and horizon >= 0 and horizon < low then low = horizon end

-- the same record again (a replay, or this worker's own retry), or the same event twice
local status = 1
for _, key in ipairs({seen_today, unpack(seen_days)}) do
  local seen = redis.call('HGET', key, event_key)
  if seen then
    local where, by = string.match(seen, '^(.*)|([^|]*)$')
    if where ~= position then
      return refuse('duplicate', 'event_id already applied from ' .. tostring(where))
    end
    status = (by == incarnation) and 3 or 2
    break
  end
end
-- published before the erasure by its timestamp, or read before it (whatever it says)
if status == 1 and erased_at and math.min(record_time, read_time) <= tonumber(erased_at) then
  return refuse('erased', 'listener erased at ' .. erased_at)
end

local flags, rolled = 0, -1
local listens = 0  -- the listener's listens of this track so far (0: beyond the kept ones)
local maxw = tonumber(redis.call('HGET', meta, 'maxw') or '-1')
-- late for the track: its window is older than the kept windows below the low watermark
-- (the slowest partition's time, not this track's newest: partitions drain at their own
-- pace in a backlog), or than the most windows a track keeps at all
local low_window = low >= 0 and math.floor(low / window_ms) or nil
local late_track = (low_window ~= nil and window < low_window - KEPT_WINDOWS)
  or (maxw >= 0 and window < maxw - max_windows)
if status == 1 then
  -- a quota on new ids: a tenant sending random ids cannot take the others' memory
  local new_ids = 1 - redis.call('EXISTS', user)
  if not late_track then new_ids = new_ids + 1 - redis.call('EXISTS', meta) end
  if quota_limit > 0 and new_ids > 0 and tonumber(quota_used or '0') + new_ids > quota_limit then
    return refuse('quota', 'tenant created ' .. (quota_used or '0') .. ' ids today')
  end
  -- from here on nothing can fail: every value was checked above
  if new_ids > 0 then
    redis.call('INCRBY', quota, new_ids)
    redis.call('EXPIRE', quota, quota_ttl)
  end
  redis.call('HSET', seen_today, event_key, position .. '|' .. incarnation)
  redis.call('EXPIRE', seen_today, seen_ttl)

  redis.call('HINCRBY', user, 'events', 1)
  redis.call('HINCRBY', user, plural, 1)
  if kind == 'play' or kind == 'skip' then
    redis.call('HINCRBY', user, 'ms_played', ms_played)
    redis.call('HINCRBY', user, 'near30', tonumber(near30))
    redis.call('HINCRBY', user, 'h' .. hour, 1)
    redis.call('PFADD', user_tracks, track)
    if redis.call('HEXISTS', user_plays, track) == 1
        or redis.call('HLEN', user_plays) < kept_tracks then
      listens = redis.call('HINCRBY', user_plays, track, 1)
    end
    if listens > tonumber(redis.call('HGET', user, 'top_track') or '0') then
      redis.call('HSET', user, 'top_track', listens)
    end
    redis.call('EXPIRE', user_tracks, state_ttl)
    redis.call('EXPIRE', user_plays, state_ttl)
  end
  -- event time: an event later than the lateness bound cannot pin first_ts back
  -- (listener_ts: ts, or the clock plus the allowed skew for a play dated ahead of it, so
  -- one such play cannot stretch the listener's span nor make their next plays late)
  local last = tonumber(redis.call('HGET', user, 'last_ts') or listener_ts)
  local effective = listener_ts
  if listener_ts < last - lateness then
    effective = last - lateness
    flags = 1
  end
  local first = tonumber(redis.call('HGET', user, 'first_ts') or effective)
  redis.call('HSET', user, 'first_ts', math.min(first, effective), 'last_ts',
             math.max(last, listener_ts))
  redis.call('EXPIRE', user, state_ttl)

  if late_track then
    flags = 1  -- its window is gone: the track's counts are not changed
  else
    redis.call('HINCRBY', meta, window .. ':' .. plural, 1)
    if completed == '1' then redis.call('HINCRBY', meta, window .. ':completions', 1) end
    if near30 == '1' then redis.call('HINCRBY', meta, window .. ':near30', 1) end
    if kind == 'play' then
      redis.call('PFADD', track_listeners, user_id)
      redis.call('EXPIRE', track_listeners, window_ttl)
      redis.call('HSET', meta, window .. ':listeners', redis.call('PFCOUNT', track_listeners))
    end
    if early then
      flags = flags + 2  -- counted in its own window, which it may not open early
    elseif window > maxw then
      redis.call('HSET', meta, 'maxw', window)
      rolled = maxw
      -- gone: windows below the watermark's kept ones (or beyond the most a track keeps)
      local keep_from = window - max_windows
      if low_window ~= nil then keep_from = math.max(keep_from, low_window - KEPT_WINDOWS) end
      keep_from = math.min(keep_from, window - KEPT_WINDOWS)
      for _, field in ipairs(redis.call('HKEYS', meta)) do
        local w = tonumber(string.match(field, '^(%-?%d+):'))
        if w and w < keep_from then redis.call('HDEL', meta, field) end
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
    local item = track .. '|' .. listener_ts
    if co.pivot then
      redis.call('LINSERT', recent, 'BEFORE', co.pivot, item)
    else
      redis.call('RPUSH', recent, item)
    end
    redis.call('LTRIM', recent, 0, co.kept - 1)
    redis.call('EXPIRE', recent, state_ttl)
    for _, pair in ipairs(co.sets) do
      local key, member, w = pair[1], pair[2], pair[3]
      local score = redis.call('ZINCRBY', key, num(w), member)
      if w < 0 and tonumber(score) <= -w * 1e-9 then  -- undone: the pair is gone
        redis.call('ZREM', key, member)
        redis.call('EXPIRE', key, state_ttl)
      else
        bounded(key, co.co_top, score, w)
      end
    end
    if co.carry then  -- a new epoch: the standings carry over, rescaled to its origin
      local old = redis.call('ZREVRANGE', co.carry, 0, co.pop_top - 1, 'WITHSCORES')
      for i = 1, #old, 2 do
        redis.call('ZADD', popular, num(tonumber(old[i + 1]) * 2 ^ -512), old[i])
      end
    end
    bounded(popular, co.pop_top, redis.call('ZINCRBY', popular, num(co.pop_w), track),
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
local distinct = redis.call('PFCOUNT', user_tracks)
out[#out + 1] = distinct
out[#out + 1] = rolled
local windows = {}
for _, w in ipairs({window, window - 1}) do
  for _, c in ipairs(COUNTS) do windows[#windows + 1] = w .. ':' .. c end
end
local counts = redis.call('HMGET', meta, unpack(windows))
for i, v in ipairs(counts) do
  counts[i] = tonumber(v or 0)
  out[#out + 1] = counts[i]
end

-- what the listen says about its track and its listener (first read only)
local tev, lev = track_before, listener_before
local a_n, a_g, a_h = tonumber(acct[1] or '0'), acct[2] or '', tonumber(acct[3] or '-1')
local published = acct[4] or ''
if status == 1 and (kind == 'play' or kind == 'skip') then
  a_n = a_n + 1
  local n = u.plays + u.skips
  local loyalty = 0.0
  if listens > 0 and n > 0 then loyalty = listens / n end
  local suspicion = math.max(0.0, ((tonumber(string.match(published, '^([^|]*)')) or 0.0) - 0.5) / 0.5)
  -- the same listener on the same track within a bucket of their last listen is not
  -- counted again in the track's buckets (one looper is not a crowd)
  local last_track, last_bucket = string.match(last_listen, '^(.*)|(%-?%d+)$')
  local again = last_track == track and math.abs(tonumber(last_bucket) - bucket) <= 1
  redis.call('HSET', user, 'lb', track .. '|' .. string.format('%d', bucket))
  local burst
  tev, burst = add_listen(meta, tev, listener_ts, near30 == '1', loyalty, suspicion,
                          listens, not again)
  lev = fold_listener(user, lev, tev, listener_ts, burst, near30 == '1', listens, loyalty)
  if burst or (tev.p / math.max(tev.a, 1e-9) >= GROUP_CONCENTRATION and tev.a >= GROUP_ARRIVALS) then
    local h = tonumber(track_hash)
    if a_h < 0 or h < a_h then a_g, a_h = track, h end
  end
  redis.call('HSET', user, 'an', a_n, 'ag', a_g, 'ah', string.format('%d', a_h))
  -- the groups of the listeners judged bots that push the track (the latest three)
  if a_g ~= '' and string.match(published, '^[^|]*|1') then
    local groups = {a_g}
    for g in string.gmatch(redis.call('HGET', meta, 'tg') or '', '[^,]+') do
      if g ~= a_g and #groups < 3 then groups[#groups + 1] = g end
    end
    redis.call('HSET', meta, 'tg', table.concat(groups, ','))
  end
  redis.call('EXPIRE', meta, state_ttl)
end

-- the listener and the track, judged against the tenant's references (read again after a
-- crash: judged again, learnt nothing), which then learn them (first read only)
local lx = listener_features(u, hours, distinct, lev)
local observed = {}
for i, prior in ipairs(LISTENER_PRIORS) do
  observed[i] = (prior == 2.0) and lev.k or (u.plays + u.skips)
end
local lxs = shrink(lx, reference_means(listener_ref), LISTENER_PRIORS, observed)
local lranks, ln, lpeak = reference_rank(listener_ref, lxs)
local tx = track_features(tev)
local tpriors, tobserved = {}, {}
for i = 1, #TRACK_FEATURES do tpriors[i], tobserved[i] = 5.0, tev.p end
local txs = shrink(tx, reference_means(track_ref), tpriors, tobserved)
local tranks, tn, tpeak = reference_rank(track_ref, txs)
local track_marker = redis.call('HGET', meta, 'tm') or ''
local inputs = listener_ref.read['inputs'] or 0
if status == 1 then
  inputs = redis.call('HINCRBY', listener_moments, 'inputs', 1)
  -- both references' keys renewed together, once an eighth of their time has passed (a
  -- reference's sums must never outlive its members)
  if redis.call('TTL', listener_moments) < state_ttl - state_ttl / 8 then
    reference_renew(listener_ref, state_ttl)
    reference_renew(track_ref, state_ttl)
  end
  if string.match(published, '^[^|]*|1') then
    reference_remove(listener_ref, listener_hash)
  elseif u.plays + u.skips >= 20 then
    reference_upsert(listener_ref, listener_hash, tonumber(listener_hash), lx, state_ttl)
  end
  if string.match(track_marker, '|1$') then
    reference_remove(track_ref, track_hash)
  elseif tev.p >= 20 then
    reference_upsert(track_ref, track_hash, tonumber(track_hash), tx, state_ttl)
  end
  if inputs % REFIT_EVERY == 0 then
    reference_refit(listener_ref)
    reference_refit(track_ref)
  end
end
out[#out + 1] = inputs
out[#out + 1] = ln
out[#out + 1] = lpeak
for i = 1, #LISTENER_FEATURES do
  out[#out + 1] = num(lxs[i])
  for _, v in ipairs({lranks[i][1], num(lranks[i][3]), num(lranks[i][4]), num(lranks[i][5])}) do
    out[#out + 1] = v
  end
end
out[#out + 1] = num(lx[6])
out[#out + 1] = tn
out[#out + 1] = tpeak
for i = 1, #TRACK_FEATURES do
  out[#out + 1] = num(txs[i])
  for _, v in ipairs({tranks[i][1], num(tranks[i][3]), num(tranks[i][4]), num(tranks[i][5])}) do
    out[#out + 1] = v
  end
end
for _, v in ipairs({num(tev.p), num(tev.s), track_marker, redis.call('HGET', meta, 'tg') or ''}) do
  out[#out + 1] = v
end

-- the popularity forecaster (forecaster.lua): a play teaches the tenant's profile and the
-- track's level; the track's forecasts the low watermark has passed are learnt once; the
-- experts forecast the next window, and that forecast waits for its label
local pop = {profile = P.load_profile(forecaster), series = P.load_series(meta)}
if status == 1 then
  local written = false
  if kind == 'play' and not late_track and not early then
    P.profile_add(forecaster, pop.profile, ts)
    P.series_add(meta, pop.series, ts, P.profile_share(pop.profile, P.hour_of(ts), ts), window,
                 P.day_windows(window_ms))
    written = true
  end
  if P.learn_labels(meta, pop.profile, pop.series, window, low_window, forgetting) then
    P.save_quality(forecaster, pop.profile)
    written = true
  end
  if written then redis.call('EXPIRE', forecaster, state_ttl) end
end
-- counts 1-6: the event's window; 7-12: the one before it
pop.experts = P.forecast_experts(meta, pop.profile, pop.series, ts, window, window_ms, counts[1],
                                 counts[7])
if status == 1 and not late_track and not early and (low_window == nil or window + 1 >= low_window - 1) then
  -- six significant digits: the field stays under Redis's 64-byte listpack value, so the
  -- track's hash stays compact (a longer value converts all of it to a hash table)
  local text = {}
  for i, v in ipairs(pop.experts) do text[i] = string.format('%.6g', v) end
  redis.call('HSET', meta, (window + 1) .. ':fc', table.concat(text, ','))  -- meta renewed above
end
pop.weights = P.hedge_weights(pop.profile, pop.series, forgetting)
for _, v in ipairs({pop.profile.trained, num(pop.profile.mae), num(pop.profile.naive_mae),
                    num(pop.profile.seasonal_mae)}) do
  out[#out + 1] = v
end
for _, v in ipairs(pop.experts) do out[#out + 1] = num(v) end
for _, v in ipairs(pop.weights) do out[#out + 1] = num(v) end
local group_marker = ''
if a_g ~= '' then group_marker = redis.call('HGET', track_prefix .. a_g, 'tm') or '' end
for _, v in ipairs({a_n, a_g, string.format('%d', a_h), published, group_marker}) do
  out[#out + 1] = v
end
-- the listener's segment among the tenant's, from where their features stand among the
-- reference listeners (learnt on first read)
local standing = {}
for i = 1, #LISTENER_FEATURES do standing[i] = 1.0 - lranks[i][1] / math.max(1, ln) end
out[#out + 1] = segment(segments, centres, standing, status == 1, state_ttl)
return out
