-- What a listen says about its track and its listener, as decayed sums (order-free): the
-- reference is workers/core/models/evidence.py, which the store contract tests compare
-- this with. Every value is read and checked before the script writes anything.

local HALF_LIFE, BUCKET, BURST_MIN, BURST_RATE, BUCKETS_KEPT = 86400000, 600000, 3, 4.0, 6
local PUSHED_FROM, PUSHED_AT = 0.2, 0.5
local MIN_SPAN, MAX_SPAN = 6.0, HALF_LIFE / BUCKET / math.log(2.0)
local TRACK_EVIDENCE = {'e_at', 'e_p', 'e_a', 'e_n', 'e_t', 'e_s', 'e_y', 'e_bmax', 'e_f',
                        'e_q', 'e_h'}
local LISTENER_EVIDENCE = {'v_at', 'v_k', 'v_w', 'v_n', 'v_c', 'v_t', 'v_s', 'v_y', 'v_r'}

-- a term x dated ts, as it counts in a sum kept at at >= ts
local function term(x, at, ts)
  if ts >= at then return x end
  return x * 2 ^ (-(at - ts) / HALF_LIFE)
end

-- the fields as numbers (nil: one is not a number)
local function numbers(raw)
  local out = {}
  for i, v in ipairs(raw) do
    if v then
      out[i] = tonumber(v)
      if out[i] == nil or out[i] ~= out[i] then return nil end
    else
      out[i] = 0
    end
  end
  return out
end

-- the track's evidence (TRACK_EVIDENCE fields), or nil when a field is not a number
local function load_track_evidence(key)
  local v = numbers(redis.call('HMGET', key, unpack(TRACK_EVIDENCE)))
  if v == nil then return nil end
  return {at = v[1], p = v[2], a = v[3], n = v[4], t = v[5], s = v[6], y = v[7], bmax = v[8],
          f = v[9], q = v[10], h = v[11]}
end

-- the listener's evidence (LISTENER_EVIDENCE fields), or nil
local function load_listener_evidence(key)
  local v = numbers(redis.call('HMGET', key, unpack(LISTENER_EVIDENCE)))
  if v == nil then return nil end
  return {at = v[1], k = v[2], w = v[3], n = v[4], c = v[5], t = v[6], s = v[7], y = v[8],
          r = v[9]}
end

-- counted listens in the bucket and the one before it against the track's usual rate
-- (evidence.is_burst)
local function is_burst(together, usual, bucket, first)
  if together < BURST_MIN then return false end
  local before = math.max(0.0, usual - (together - 1))
  local span = (bucket - 1) - math.floor(first / BUCKET)
  span = math.min(MAX_SPAN, math.max(MIN_SPAN, span))
  return together >= BURST_RATE * 2.0 * before / span + 1.0
end

-- one more listen of the track (evidence.add_listen): writes it, returns (evidence, burst);
-- listens: the listener's listens of the track with this one (0: beyond the kept ones),
-- counted: not the same listener again within a bucket of their last play of it
local function add_listen(key, e, ts, near30, loyalty, suspicion, listens, counted)
  local at = math.max(e.at, ts)
  local scale = 1.0
  if e.at ~= 0 then scale = 2 ^ (-(at - e.at) / HALF_LIFE) end
  local usual = e.p * scale
  local bucket = math.floor(ts / BUCKET)
  local began = ts
  if e.f ~= 0 then began = math.min(e.f, ts) end
  local newest = math.max(e.bmax, bucket)
  if e.bmax == 0 then newest = bucket end
  local together = 0
  if bucket > newest - BUCKETS_KEPT then
    if counted then
      together = redis.call('HINCRBY', key, 'b' .. bucket, 1)
    else
      together = tonumber(redis.call('HGET', key, 'b' .. bucket) or '0')
    end
    if bucket - 1 > newest - BUCKETS_KEPT then
      together = together + tonumber(redis.call('HGET', key, 'b' .. (bucket - 1)) or '0')
    end
  end
  if newest > e.bmax and e.bmax ~= 0 then
    for old = e.bmax - BUCKETS_KEPT + 1, newest - BUCKETS_KEPT do
      redis.call('HDEL', key, 'b' .. old)
    end
  end
  local burst = counted and is_burst(together, usual, bucket, began)
  local one = term(1.0, at, ts)
  local harmonic = one / math.max(1, listens)
  local out = {at = at, p = e.p * scale + one, a = e.a * scale, n = e.n * scale,
               t = e.t * scale + harmonic * loyalty, s = e.s * scale + one * suspicion,
               y = e.y * scale, bmax = newest, f = began, q = e.q * scale + harmonic,
               h = e.h * scale + harmonic * suspicion}
  if listens == 1 then out.a = out.a + one end
  if near30 then out.n = out.n + one end
  if burst then out.y = out.y + one end
  redis.call('HSET', key, 'e_at', string.format('%d', out.at), 'e_p', num(out.p),
             'e_a', num(out.a), 'e_n', num(out.n), 'e_t', num(out.t), 'e_s', num(out.s),
             'e_y', num(out.y), 'e_bmax', string.format('%d', out.bmax),
             'e_f', string.format('%d', out.f), 'e_q', num(out.q), 'e_h', num(out.h))
  return out, burst
end

-- 1 + 1/2 + ... + 1/n (evidence.harmonic)
local function harmonic(n)
  if n <= 16 then
    local total = 0.0
    for i = 1, n do total = total + 1.0 / i end
    return total
  end
  return math.log(n) + 0.5772156649015329 + 1.0 / (2.0 * n) - 1.0 / (12.0 * n * n)
end

-- the track's concentration, thin-audience and near-30 s shares without this listener
-- (evidence.others)
local function others(track, listens, loyalty)
  local own = math.max(1, listens)
  local arrivals = track.a - 1.0
  local rest = track.p - own
  local concentration = 0.0
  if arrivals >= 1.0 then
    concentration = math.log(math.max(1.0, math.max(0.0, rest) / arrivals))
  end
  local own_q = harmonic(own)
  local q = track.q - own_q
  local thin = 0.0
  if q >= 1.0 then thin = math.max(0.0, track.t - own_q * loyalty) / q end
  local near30 = 0.0
  if rest >= 1.0 then near30 = math.max(0.0, track.n - own) / rest end
  return concentration, thin, near30
end

-- the listener's evidence after one more listen of a track (evidence.fold_listener)
local function fold_listener(key, e, track, ts, burst, near30, listens, loyalty)
  local at = math.max(e.at, ts)
  local scale = 1.0
  if e.at ~= 0 then scale = 2 ^ (-(at - e.at) / HALF_LIFE) end
  local w = term(1.0 / math.log(5.0 + track.p), at, ts)
  local q = math.max(track.q, 1e-9)
  local concentration, thin, others_near30 = others(track, listens, loyalty)
  local pushed = (track.h / q - PUSHED_FROM) / (PUSHED_AT - PUSHED_FROM)
  pushed = math.min(1.0, math.max(0.0, pushed))
  local out = {
    at = at,
    k = e.k * scale + term(1.0, at, ts),
    w = e.w * scale + w,
    n = e.n * scale,
    c = e.c * scale + w * concentration,
    t = e.t * scale + w * thin,
    s = e.s * scale + w * pushed,
    y = e.y * scale,
  }
  out.r = e.r * scale
  if near30 then
    out.n = out.n + w * others_near30
    -- a repeated stop just past 30 s, weighed by the track's other listens (royalty_weight)
    if listens >= 2 then
      out.r = out.r + term(math.log(5.0) / math.log(5.0 + math.max(0.0, track.p - listens)), at, ts)
    end
  end
  if burst then out.y = out.y + w end
  redis.call('HSET', key, 'v_at', string.format('%d', out.at), 'v_k', num(out.k),
             'v_w', num(out.w), 'v_n', num(out.n), 'v_c', num(out.c), 'v_t', num(out.t),
             'v_s', num(out.s), 'v_y', num(out.y), 'v_r', num(out.r))
  return out
end
