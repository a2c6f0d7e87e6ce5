-- The tenant's listener segments: River's KMeans rule on the listener's ten tail ranks
-- (core/models/segments.py: Segmenter, the reference). The centres live in one string,
-- {t}:model:segments: SEGMENTS x dims little-endian doubles (one GET and one SET per
-- event: 60 hash fields cost ~90 µs more per event, measured).
local SEGMENTS, SEGMENT_HALFLIFE = 6, 0.02
local GOLDEN, SQRT2 = 0.6180339887498949, 0.4142135623730951

-- the centres (fixed, spread-out starting points until learnt, or with no ``key``); nil if
-- the value is not SEGMENTS x dims doubles
local function load_segments(key, dims)
  local packed = key and redis.call('GET', key)
  local format = '<' .. string.rep('d', SEGMENTS * dims)
  local values = nil
  if packed then
    if #packed ~= 8 * SEGMENTS * dims then return nil end
    values = {struct.unpack(format, packed)}
  end
  local centres = {}
  for i = 0, SEGMENTS - 1 do
    local centre = {}
    for f = 0, dims - 1 do
      if values then
        centre[f + 1] = values[i * dims + f + 1]
      else
        centre[f + 1] = (0.5 + (i + 1) * GOLDEN + f * SQRT2) % 1.0
      end
    end
    centres[i + 1] = centre
  end
  return centres
end

-- the nearest centre (0-based; the first of equals), and, when learning, that centre moved
local function segment(key, centres, x, learning, ttl)
  local best, best_d = 0, nil
  for i, centre in ipairs(centres) do
    local d = 0
    for f, v in ipairs(x) do d = d + (centre[f] - v) * (centre[f] - v) end
    if best_d == nil or d < best_d then best, best_d = i - 1, d end
  end
  if learning then
    local centre = centres[best + 1]
    for f, v in ipairs(x) do centre[f] = centre[f] + SEGMENT_HALFLIFE * (v - centre[f]) end
    local flat = {}
    for _, c in ipairs(centres) do
      for _, v in ipairs(c) do flat[#flat + 1] = v end
    end
    redis.call('SET', key, struct.pack('<' .. string.rep('d', #flat), unpack(flat)), 'EX', ttl)
  end
  return best
end
