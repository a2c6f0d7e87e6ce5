-- The popularity forecaster, kept in Redis: a daily profile per tenant, a level and a ring
-- of a day's windows per track, three experts weighed by Hedge on delayed labels. Mirrors
-- workers/core/models/popularity.py (Profile, Series, experts, weights) on the same fields;
-- the store contract tests compare the two stores event by event. Values that are not
-- numbers read as absent: nothing here can fail once the script has written.

local P = {}  -- one local for the whole model (a script may hold 200)
P.HOUR_MS, P.DAY_MS = 3600000, 86400000
P.PROFILE_HALF_LIFE, P.LEVEL_HALF_LIFE = 7 * P.DAY_MS, P.DAY_MS
P.RECENT_HALF_LIFE = 3 * P.HOUR_MS
P.RESCALE = 256
P.N = 4  -- naive, seasonal, level, recent
P.TRACK_FORGETTING = 1.0 - 1.0 / 48.0
P.ETA = math.sqrt(8.0 * math.log(P.N) / 48.0)
P.PRIOR_LABELS = 12.0
P.LOSS_CAP = 3.0  -- a label's loss: |f - a| / sqrt(the experts' mean + 1), at most this
P.QUALITY_WINDOW = 1000
P.LABELS_BEHIND = 4  -- the kept windows (KEPT_WINDOWS): older forecasts are gone
P.PROFILE_FIELDS = {'po', 'l1', 'l2', 'l3', 'l4', 'trained', 'mae', 'naive_mae', 'seasonal_mae'}
for h = 0, 23 do P.PROFILE_FIELDS[#P.PROFILE_FIELDS + 1] = 'p' .. h end

-- 2 to the x, bounded above (an event dated years from a sum's origin): popularity._p2
function P.p2(x) return 2.0 ^ math.min(x, 1000.0) end

function P.hour_of(ts) return math.floor(ts / P.HOUR_MS) % 24 end

function P.day_windows(window_ms)
  if window_ms < P.HOUR_MS or P.DAY_MS % window_ms ~= 0 then return 0 end
  return P.DAY_MS / window_ms
end

function P.number(v, default)
  local x = tonumber(v or '')
  if x == nil or x ~= x then return default end
  return x
end

-- the tenant's profile, losses and quality (popularity.Profile)
function P.load_profile(key)
  local raw = redis.call('HMGET', key, unpack(P.PROFILE_FIELDS))
  local p = {origin = P.number(raw[1], -1), losses = {}, hours = {},
             trained = P.number(raw[6], 0), mae = P.number(raw[7], 0.0),
             naive_mae = P.number(raw[8], 0.0), seasonal_mae = P.number(raw[9], 0.0)}
  for i = 1, P.N do p.losses[i] = P.number(raw[1 + i], 0.0) end
  for h = 0, 23 do p.hours[h + 1] = P.number(raw[10 + h], 0.0) end
  return p
end

-- one play at ts (Profile.add): writes the hour (every hour when the origin moves)
function P.profile_add(key, p, ts)
  local moved = false
  if p.origin < 0 then
    p.origin = ts
  elseif ts - p.origin > P.RESCALE * P.PROFILE_HALF_LIFE then
    for h = 1, 24 do p.hours[h] = p.hours[h] * P.p2(-P.RESCALE) end
    p.origin = p.origin + P.RESCALE * P.PROFILE_HALF_LIFE
    moved = true
  end
  local h = P.hour_of(ts) + 1
  p.hours[h] = p.hours[h] + P.p2((ts - p.origin) / P.PROFILE_HALF_LIFE)
  if moved then
    local fields = {}
    for i = 1, 24 do fields[#fields + 1] = 'p' .. (i - 1); fields[#fields + 1] = num(p.hours[i]) end
    redis.call('HSET', key, unpack(fields))
  end
  redis.call('HSET', key, 'po', string.format('%d', p.origin), 'p' .. (h - 1), num(p.hours[h]))
end

-- hours of the slot observed from the origin to now, decayed (Profile.exposure)
function P.exposure(p, hour, now)
  if p.origin < 0 or now <= p.origin then return 0.0 end
  local first = p.origin
  local last_start = now - (now - hour * P.HOUR_MS) % P.DAY_MS
  local first_start = first - (first - hour * P.HOUR_MS) % P.DAY_MS
  if first_start + P.HOUR_MS <= first then first_start = first_start + P.DAY_MS end
  if first_start > last_start then return 0.0 end
  local k = math.floor((last_start - first_start) / P.DAY_MS)
  local decay = P.p2(-(now - last_start) / P.PROFILE_HALF_LIFE)
  if k == 0 then
    return (math.min(now, last_start + P.HOUR_MS) - math.max(first, last_start)) / P.HOUR_MS * decay
  end
  local r = P.p2(-P.DAY_MS / P.PROFILE_HALF_LIFE)
  local seen_last = math.min(1.0, (now - last_start) / P.HOUR_MS)
  local seen_first = (first_start + P.HOUR_MS - math.max(first, first_start)) / P.HOUR_MS
  local total = (1.0 - r ^ (k + 1)) / (1.0 - r) - (1.0 - seen_last)
  return (total - (1.0 - seen_first) * r ^ k) * decay
end

-- the hour's plays per observed hour against the day's (Profile.share)
function P.profile_share(p, hour, now)
  if p.origin < 0 then return 1.0 end
  now = math.max(now, p.origin)  -- never read before the sum's origin
  local f = P.p2(-(now - p.origin) / P.PROFILE_HALF_LIFE)
  local total = 0.0
  for h = 1, 24 do total = total + p.hours[h] end
  local observed = P.PROFILE_HALF_LIFE / P.HOUR_MS / math.log(2.0) * (1.0 - f)
  if total <= 0.0 or observed <= 0.0 then return 1.0 end
  local mean = total * f / observed
  return (p.hours[hour + 1] * f + mean) / (P.exposure(p, hour, now) + 1.0) / mean
end

-- Hedge's weights for a track, after PRIOR_LABELS of the tenant's mean loss (popularity.weights)
function P.hedge_weights(p, s, forgetting)
  local seen = p.trained
  if p.trained > 0 and forgetting < 1.0 then
    seen = (1.0 - forgetting ^ p.trained) / (1.0 - forgetting)
  end
  local logs, high = {}, nil
  for i = 1, P.N do
    local prior = 0.0
    if seen > 0.0 then prior = P.PRIOR_LABELS * p.losses[i] / seen end
    logs[i] = -P.ETA * (prior + s.losses[i])
    if high == nil or logs[i] > high then high = logs[i] end
  end
  local raw, total = {}, 0.0
  for i = 1, P.N do raw[i] = math.exp(logs[i] - high) end
  for i = 1, P.N do total = total + raw[i] end
  local w = {}
  for i = 1, P.N do w[i] = raw[i] / total end
  return w
end

function P.combine(forecast, w)
  local out = 0.0
  for i = 1, P.N do out = out + forecast[i] * w[i] end
  return out
end

-- one delayed label of the track s (Profile.learn): the tenant's and the track's losses
function P.profile_learn(p, s, forecast, actual, forgetting)
  local mixed = P.combine(forecast, P.hedge_weights(p, s, forgetting))
  p.trained = p.trained + 1
  local n = math.min(p.trained, P.QUALITY_WINDOW)
  p.mae = p.mae + (math.abs(mixed - actual) - p.mae) / n
  p.naive_mae = p.naive_mae + (math.abs(forecast[1] - actual) - p.naive_mae) / n
  p.seasonal_mae = p.seasonal_mae + (math.abs(forecast[2] - actual) - p.seasonal_mae) / n
  local scale = 0.0
  for i = 1, P.N do scale = scale + forecast[i] end
  scale = math.sqrt(scale / P.N + 1.0)
  for i = 1, P.N do
    local loss = math.min(P.LOSS_CAP, math.abs(forecast[i] - actual) / scale)
    p.losses[i] = forgetting * p.losses[i] + loss
    s.losses[i] = P.TRACK_FORGETTING * s.losses[i] + loss
  end
end

-- the track's level and first play (popularity.Series; its ring is read slot by slot)
function P.load_series(key)
  local raw = redis.call('HMGET', key, 'pf', 'lo', 'lv', 'lr', 'k1', 'k2', 'k3', 'k4')
  local s = {first = P.number(raw[1], -1), origin = P.number(raw[2], -1),
             level = P.number(raw[3], 0.0), recent = P.number(raw[4], 0.0), losses = {}}
  for i = 1, P.N do s.losses[i] = P.number(raw[4 + i], 0.0) end
  return s
end

-- a ring slot: window, plays (-1, 0 when empty or not "window:plays")
function P.ring_slot(key, slot)
  local w, n = string.match(redis.call('HGET', key, 'q' .. slot) or '', '^(%-?%d+):(%d+)$')
  if w == nil then return -1, 0 end
  return tonumber(w), tonumber(n)
end

-- one play at ts in window (Series.add)
function P.series_add(key, s, ts, share, window, days)
  if s.first < 0 then s.first = ts else s.first = math.min(s.first, ts) end
  if s.origin < 0 then
    s.origin = ts
  elseif ts - s.origin > P.RESCALE * P.RECENT_HALF_LIFE then
    s.level = s.level * P.p2(-P.RESCALE * P.RECENT_HALF_LIFE / P.LEVEL_HALF_LIFE)
    s.recent = s.recent * P.p2(-P.RESCALE)
    s.origin = s.origin + P.RESCALE * P.RECENT_HALF_LIFE
  end
  s.level = s.level + P.p2((ts - s.origin) / P.LEVEL_HALF_LIFE) / share
  s.recent = s.recent + P.p2((ts - s.origin) / P.RECENT_HALF_LIFE) / share
  redis.call('HSET', key, 'pf', string.format('%d', s.first), 'lo', string.format('%d', s.origin),
             'lv', num(s.level), 'lr', num(s.recent))
  if days > 0 then
    local slot = window % days
    local w, n = P.ring_slot(key, slot)
    if w == window then
      redis.call('HSET', key, 'q' .. slot, string.format('%d:%d', window, n + 1))
    elseif w < window then
      redis.call('HSET', key, 'q' .. slot, string.format('%d:1', window))
    end
  end
end

-- plays per average hour as of now, over the last day or (recent) hours (Series.rate)
function P.series_rate(s, now, recent)
  if s.origin < 0 then return 0.0 end
  now = math.max(now, s.origin)
  local half, total = P.LEVEL_HALF_LIFE, s.level
  if recent then half, total = P.RECENT_HALF_LIFE, s.recent end
  local life = 1.0 - P.p2(-(now - s.first) / half)
  local exposure = math.max(1.0, half / P.HOUR_MS / math.log(2.0) * life)
  return total * P.p2(-(now - s.origin) / half) / exposure
end

-- naive, seasonal naive, level and recent level forecasts of window + 1 (popularity.experts)
function P.forecast_experts(key, p, s, ts, window, window_ms, current, previous)
  local elapsed = math.min(1.0, math.max(0.0, (ts - window * window_ms + 1) / window_ms))
  local naive = current + previous * (1.0 - elapsed)
  local nxt = window + 1
  local seasonal = naive
  local days = P.day_windows(window_ms)
  if days > 0 then
    local w, n = P.ring_slot(key, nxt % days)
    if w == nxt - days then
      seasonal = n
    elseif s.first >= 0 and s.first <= (nxt - days) * window_ms then
      seasonal = 0.0
    end
  end
  local scale = window_ms / P.HOUR_MS
  local rate = P.series_rate(s, ts, false)
  local expected = rate * P.profile_share(p, P.hour_of((window - 1) * window_ms), ts) * scale
  local boost = math.max(0.0, (previous + 1.0) / (expected + 1.0) - 1.0) * 0.5 ^ scale
  local ahead = P.profile_share(p, P.hour_of(nxt * window_ms), ts) * scale
  return {naive, seasonal, rate * ahead * (1.0 + boost), P.series_rate(s, ts, true) * ahead}
end

-- the track's forecasts the low watermark and this event have passed by a whole window,
-- learnt once each (oldest first): the watermark counts a batch's newest times before the
-- batch is applied, so the windows just behind it may still be counting
function P.learn_labels(key, p, s, window, low_window, forgetting)
  if low_window == nil then return false end
  local fields = {}
  for x = window - P.LABELS_BEHIND, window + 1 do
    fields[#fields + 1] = x .. ':fc'
    fields[#fields + 1] = x .. ':plays'
  end
  local raw = redis.call('HMGET', key, unpack(fields))
  local learnt = false
  for i = 0, P.LABELS_BEHIND + 1 do
    local x = window - P.LABELS_BEHIND + i
    local fc = raw[2 * i + 1]
    if fc and x < math.min(low_window, window) - 1 then
      local f = {}
      for v in string.gmatch(fc, '[^,]+') do f[#f + 1] = tonumber(v) end
      if #f == P.N then
        P.profile_learn(p, s, f, P.number(raw[2 * i + 2], 0), forgetting)
        learnt = true
      end
      redis.call('HDEL', key, x .. ':fc')
    end
  end
  if learnt then
    redis.call('HSET', key, 'k1', num(s.losses[1]), 'k2', num(s.losses[2]), 'k3', num(s.losses[3]),
               'k4', num(s.losses[4]))
  end
  return learnt
end

function P.save_quality(key, p)
  redis.call('HSET', key, 'l1', num(p.losses[1]), 'l2', num(p.losses[2]), 'l3', num(p.losses[3]),
             'l4', num(p.losses[4]), 'trained', p.trained, 'mae', num(p.mae),
             'naive_mae', num(p.naive_mae), 'seasonal_mae', num(p.seasonal_mae))
end
