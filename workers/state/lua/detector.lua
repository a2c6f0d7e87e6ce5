-- The listening detector, kept in Redis: rank windows of behaviour features and of scores.
-- Mirrors workers/core/models/tailrank.py (RankDetector), which the store contract tests
-- compare it with. A window is a sorted set (member: the learning sequence number, score:
-- the value, signed so that higher is more suspicious); its oldest member is dropped as a
-- new one arrives.

-- Behaviour features of a listener (workers/core/behaviour.py), in BOT_DIRECTIONS' order.
local FEATURE_NAMES = {'plays_per_hour', 'near_30s_share', 'repeat_ratio', 'distinct_ratio',
                       'skip_rate', 'hour_spread', 'engagement', 'log_listens',
                       'top_track_share', 'track_near_30s_share'}
local DIRECTIONS = {1, 1, 1, -1, -1, 1, -1, 1, 1, 1}

local function behaviour(u, hours, distinct, track_plays, track_skips, track_near30)
  local listens = u.plays + u.skips
  local span_h = math.max(1.0, (u.last_ts - u.first_ts) / 3600000)
  local total = 0
  for _, h in ipairs(hours) do total = total + h end
  local entropy = 0.0
  if total > 0 then
    for _, h in ipairs(hours) do
      if h > 0 then entropy = entropy - (h / total) * math.log(h / total) end
    end
    entropy = entropy / math.log(24)
  end
  local track_listens = track_plays + track_skips
  local function share(n) if listens > 0 then return n / listens end return 0.0 end
  return {
    math.min(1.0, listens / span_h / 60.0),
    share(u.near30),
    math.max(0, listens - distinct) / math.max(1, listens - 1),
    listens > 0 and math.min(1.0, distinct / listens) or 1.0,
    share(u.skips),
    entropy,
    math.min(1.0, (u.likes + u.shares) / math.max(1, listens)),
    math.min(1.0, math.log(1 + listens) / 10.0),
    share(u.top_track),
    track_listens > 0 and track_near30 / track_listens or 0.0,
  }
end

local function num(v) return string.format('%.17g', v) end

-- share of a window of n values below v, ties counting half (ScoreCalibrator.rank).
-- Every window of a detector holds the same number of values (each learning step adds one
-- to each and drops the oldest of each), min(seq, window), so none is asked for its size.
local function rank(key, n, v)
  if n == 0 then return 0.0 end
  local below = redis.call('ZCOUNT', key, '-inf', '(' .. num(v))
  local ties = redis.call('ZCOUNT', key, num(v), num(v))
  return (below + 0.5 * ties) / n
end

-- the value below which a share q of a window of n values lies (ScoreCalibrator.quantile)
local function quantile(key, n, q)
  if n == 0 then return nil end
  local i = math.min(n - 1, math.floor(q * n))
  return tonumber(redis.call('ZRANGE', key, i, i, 'WITHSCORES')[2])
end

-- the detector's counters: {seq = learning steps, seen = inputs learnt, alarms = alarms}
local function detector_state(state_key)
  local raw = redis.call('HMGET', state_key, 'seq', 'seen', 'alarms')
  return {seq = tonumber(raw[1] or '0'), seen = tonumber(raw[2] or '0'),
          alarms = tonumber(raw[3] or '0')}
end

-- judge x against what was learnt so far: {score, percentile, threshold, warming, ranks}
local function judge(state, score_key, window_keys, x, top_k, alarm_rate, warmup, window)
  local n = math.min(state.seq, window)
  local ranks, sorted = {}, {}
  for i, v in ipairs(x) do
    ranks[i] = rank(window_keys[i], n, DIRECTIONS[i] * v)
    sorted[i] = ranks[i]
  end
  table.sort(sorted, function(a, b) return a > b end)
  local k, sum = math.min(top_k, #sorted), 0.0
  for i = 1, k do sum = sum + sorted[i] end
  local score = k > 0 and sum / k or 0.0
  local threshold = quantile(score_key, n, 1.0 - alarm_rate) or 1.0
  return {score = score, percentile = rank(score_key, n, score), threshold = threshold,
          warming = state.seen < warmup, ranks = ranks}
end

-- learn x (and its score) into the windows. The keys' time to live is renewed together
-- (so that they expire together) once an eighth of it has passed, not on every step.
local function learn(state, state_key, score_key, window_keys, x, score, window, alarm, ttl)
  state.seq = state.seq + 1
  state.seen = state.seen + 1
  if alarm then state.alarms = state.alarms + 1 end
  local seq = state.seq
  for i, v in ipairs(x) do
    redis.call('ZADD', window_keys[i], num(DIRECTIONS[i] * v), seq)
  end
  redis.call('ZADD', score_key, num(score), seq)
  if seq > window then
    for i = 1, #x do redis.call('ZREM', window_keys[i], seq - window) end
    redis.call('ZREM', score_key, seq - window)
  end
  redis.call('HSET', state_key, 'seq', seq, 'seen', state.seen, 'alarms', state.alarms)
  if redis.call('TTL', state_key) < ttl - ttl / 8 then
    redis.call('EXPIRE', state_key, ttl)
    redis.call('EXPIRE', score_key, ttl)
    for i = 1, #x do redis.call('EXPIRE', window_keys[i], ttl) end
  end
end
