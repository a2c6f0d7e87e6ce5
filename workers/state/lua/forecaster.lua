-- The popularity forecaster, kept in Redis: a Bayesian linear regression (River's
-- BayesianLinearRegression with alpha = beta = 1) of a correction, in log space, to the
-- simple forecast, kept as its sufficient statistics with exponential forgetting. Mirrors
-- workers/core/models/popularity.py (PopularityModel); the store contract tests compare.

local MAX_CORRECTION = 3.0
local N = 4

local function log1p(x) return math.log(1 + x) end

-- (base, x) of the forecast features (popularity.features)
local function forecast_features(current, previous, elapsed)
  elapsed = math.min(1.0, math.max(elapsed, 0.0))
  local base = current + previous * (1.0 - elapsed)
  local trend = log1p(base) - log1p(previous)
  local volume = log1p(math.min(base, previous)) / 10.0
  return base, {1.0, trend, trend * volume, volume}
end

-- index of A[i][j] (i <= j) in the packed upper triangle
local function at(i, j)
  if i > j then i, j = j, i end
  return (i - 1) * N - (i - 1) * (i - 2) / 2 + (j - i) + 1
end

-- the posterior mean m solving (I + A) m = b (Cholesky, as popularity.solve does)
local function solve(a, b)
  local l = {}
  for i = 1, N do
    l[i] = {}
    for j = 1, i do
      local s = (i == j and 1.0 or 0.0) + a[at(i, j)]
      for k = 1, j - 1 do s = s - l[i][k] * l[j][k] end
      if i == j then l[i][j] = math.sqrt(s) else l[i][j] = s / l[j][j] end
    end
  end
  local y, m = {}, {}
  for i = 1, N do
    local s = b[i]
    for k = 1, i - 1 do s = s - l[i][k] * y[k] end
    y[i] = s / l[i][i]
  end
  for i = N, 1, -1 do
    local s = y[i]
    for k = i + 1, N do s = s - l[k][i] * m[k] end
    m[i] = s / l[i][i]
  end
  return m
end

local function correction(a, b, x)
  local m, c = solve(a, b), 0.0
  for i = 1, N do c = c + m[i] * x[i] end
  if c ~= c or c == math.huge or c == -math.huge then return 0.0 end
  return math.max(-MAX_CORRECTION, math.min(MAX_CORRECTION, c))
end

-- the model as stored: {trained, mae, naive_mae, a[10], b[4]}
local function load_forecaster(key)
  local raw = redis.call('HMGET', key, 'trained', 'mae', 'naive_mae', 'a', 'b')
  local model = {trained = tonumber(raw[1] or '0'), mae = tonumber(raw[2] or '0'),
                 naive_mae = tonumber(raw[3] or '0'), a = {}, b = {}}
  local i = 1
  for v in string.gmatch(raw[4] or '', '[^,]+') do model.a[i] = tonumber(v); i = i + 1 end
  i = 1
  for v in string.gmatch(raw[5] or '', '[^,]+') do model.b[i] = tonumber(v); i = i + 1 end
  for k = #model.a + 1, N * (N + 1) / 2 do model.a[k] = 0.0 end
  for k = #model.b + 1, N do model.b[k] = 0.0 end
  return model
end

-- one delayed label: a complete window (current), the one before it, and the plays of
-- the one after it (PopularityModel.learn_one)
local function learn_forecaster(key, model, current, previous, next_plays, forgetting, window)
  local base, x = forecast_features(current, previous, 1.0)
  local forecast = base
  if model.trained > 0 then
    forecast = math.max(0.0, math.exp(log1p(base) + correction(model.a, model.b, x)) - 1)
  end
  local n = math.min(model.trained + 1, window)
  model.mae = model.mae + (math.abs(forecast - next_plays) - model.mae) / n
  model.naive_mae = model.naive_mae + (math.abs(current - next_plays) - model.naive_mae) / n
  local scale = (current + 1.0) ^ 0.25
  local target = (log1p(next_plays) - log1p(base)) * scale
  for i = 1, N do x[i] = x[i] * scale end
  for i = 1, N do
    for j = i, N do model.a[at(i, j)] = forgetting * model.a[at(i, j)] + x[i] * x[j] end
    model.b[i] = forgetting * model.b[i] + x[i] * target
  end
  model.trained = model.trained + 1
  local a, b = {}, {}
  for i, v in ipairs(model.a) do a[i] = string.format('%.17g', v) end
  for i, v in ipairs(model.b) do b[i] = string.format('%.17g', v) end
  redis.call('HSET', key, 'trained', model.trained, 'mae', string.format('%.17g', model.mae),
             'naive_mae', string.format('%.17g', model.naive_mae),
             'a', table.concat(a, ','), 'b', table.concat(b, ','))
end
