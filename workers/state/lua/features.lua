-- A listener's and a track's features (workers/core/behaviour.py, the reference the store
-- contract tests compare this with), in the order of LISTENER_FEATURES and TRACK_FEATURES.

local LISTENER_FEATURES = {'near30', 'track_near30', 'track_concentration', 'track_thin',
                           'track_suspicion', 'sync', 'hour_spread', 'volume', 'repeat',
                           'top_share', 'few_skips', 'no_likes'}
-- pseudo-observations each is shrunk toward the reference mean with; the track-derived ones
-- count the listener's decayed listens (k), the others their listens
local LISTENER_PRIORS = {5.0, 2.0, 2.0, 2.0, 2.0, 2.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0}
local TRACK_FEATURES = {'near30', 'concentration', 'thin', 'suspicion', 'sync'}

local function hour_spread(hours)
  local total = 0
  for _, h in ipairs(hours) do total = total + h end
  if total == 0 then return 0.0 end
  local entropy = 0.0
  for _, h in ipairs(hours) do
    if h > 0 then entropy = entropy - (h / total) * math.log(h / total) end
  end
  return entropy / math.log(24)
end

-- u: the listener's counters, e: their evidence (evidence.lua)
local function listener_features(u, hours, distinct, e)
  local n = u.plays + u.skips
  local span_h = math.max(1.0, (u.last_ts - u.first_ts) / 3600000)
  local w = e.w
  if w <= 0 then w = 1.0 end
  local function share(count)
    if n > 0 then return count / n end
    return 0.0
  end
  local near30 = 0.0
  if e.k > 0 then near30 = e.r / e.k end
  return {
    near30,
    e.n / w, e.c / w, e.t / w, e.s / w, e.y / w,
    hour_spread(hours),
    n / span_h,
    math.max(0, n - distinct) / math.max(1, n - 1),
    share(u.top_track),
    1.0 - share(u.skips),
    1.0 - math.min(1.0, (u.likes + u.shares) / math.max(1, n)),
  }
end

local function track_features(t)
  local p, q = t.p, t.q
  if p <= 0 then p = 1.0 end
  if q <= 0 then q = 1.0 end
  return {t.n / p, math.log(math.max(1.0, t.p / math.max(t.a, 1e-9))), t.t / q, t.h / q, t.y / p}
end

-- (n x + prior mean) / (n + prior) per feature (behaviour.shrink)
local function shrink(x, means, priors, observed)
  local out = {}
  for i, v in ipairs(x) do
    out[i] = (observed[i] * v + priors[i] * means[i]) / (observed[i] + priors[i])
  end
  return out
end
