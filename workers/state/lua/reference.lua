-- A tenant's reference population (listeners or tracks): a bottom-k sample by hash of the
-- established ones not judged suspicious, one sorted set of values per feature, and their
-- sums. The reference is workers/core/models/reference.py (Reference), which the store
-- contract tests compare this with.
--
-- ref: {members = zset key (member -> hash), moments = hash key ('s1:f' the sums, 'u:f' and
--       'e:f' the tails: threshold and scale, 'peak' the most members it has held),
--       prefix = the features' sorted sets (prefix .. feature), features = names, size = k}

local TAIL_K, MIN_EXCESS = 10, 0.01
-- A member longer than zset-max-listpack-value (64 bytes by default), at -inf where no
-- rank or tail reaches it, keeps each feature's sorted set a skiplist from its first
-- member: in a listpack (up to 128 members) every ZCOUNT and ZADD parses each member's
-- score, 17.7 and 12.7 µs at 122 members against 0.8 and 1.9 µs in a skiplist (measured),
-- which made a small tenant's events the dearest.
local SKIPLIST = string.rep('~', 65)

local function reference_keys_ok(ref)
  local typed = {{ref.members, 'zset'}, {ref.moments, 'hash'}}
  for _, name in ipairs(ref.features) do typed[#typed + 1] = {ref.prefix .. name, 'zset'} end
  for _, item in ipairs(typed) do
    local t = redis.call('TYPE', item[1])['ok']
    if t ~= 'none' and t ~= item[2] then
      return 'key ' .. item[1] .. ' holds a ' .. t .. ', not a ' .. item[2]
    end
  end
  -- the moments, read once here, before anything is written: ranks and means use them
  local moments = {}
  local raw = redis.call('HGETALL', ref.moments)
  for i = 1, #raw, 2 do
    local v = tonumber(raw[i + 1])
    if v == nil then return 'a moment of ' .. ref.moments .. ' is not a number' end
    moments[raw[i]] = v
  end
  ref.read, ref.n = moments, redis.call('ZCARD', ref.members)
  return nil
end

-- the features' sums, in the order of ref.features
local function reference_sums(ref)
  local names = {}
  for i, name in ipairs(ref.features) do names[i] = 's1:' .. name end
  local raw = redis.call('HMGET', ref.moments, unpack(names))
  local sums = {}
  for i = 1, #ref.features do sums[i] = tonumber(raw[i] or '0') end
  return sums, names
end

-- per feature {at_least, size, mean, threshold, scale} of x (Reference.rank), the size
-- and the most members the reference has held, from the moments reference_keys_ok read
local function reference_rank(ref, x)
  local n, m = ref.n, ref.read
  local out = {}
  for i, name in ipairs(ref.features) do
    local mean = 0.0
    if n > 0 then mean = (m['s1:' .. name] or 0) / n end
    local at_least = redis.call('ZCOUNT', ref.prefix .. name, num(x[i]), '+inf')
    out[i] = {at_least, n, mean, m['u:' .. name] or 0, m['e:' .. name] or 0}
  end
  return out, n, math.max(n, m['peak'] or 0)
end

-- each feature's tail from its largest tenth (Reference.refit): the threshold u (the k-th
-- largest) and the scale (the median excess over u / ln 2, at least MIN_EXCESS)
local function reference_refit(ref)
  local n = redis.call('ZCARD', ref.members)
  local fields = {}
  for _, name in ipairs(ref.features) do
    if n < TAIL_K then
      redis.call('HDEL', ref.moments, 'u:' .. name, 'e:' .. name)
    else
      local k = math.max(TAIL_K, math.floor(n / 10))
      local top = redis.call('ZREVRANGE', ref.prefix .. name, 0, k - 1, 'WITHSCORES')
      local threshold = tonumber(top[#top])
      local excesses = {}
      for j = 2, #top - 2, 2 do excesses[#excesses + 1] = tonumber(top[j]) - threshold end
      table.sort(excesses)
      local m = #excesses
      local median
      if m % 2 == 1 then
        median = excesses[(m + 1) / 2]
      else
        median = (excesses[m / 2] + excesses[m / 2 + 1]) / 2.0
      end
      fields[#fields + 1] = 'u:' .. name
      fields[#fields + 1] = num(threshold)
      fields[#fields + 1] = 'e:' .. name
      fields[#fields + 1] = num(math.max(MIN_EXCESS, median / math.log(2.0)))
    end
  end
  if #fields > 0 then redis.call('HSET', ref.moments, unpack(fields)) end
end

-- the feature means (for shrinking a new listener's values toward them), from the moments
-- reference_keys_ok read
local function reference_means(ref)
  local means = {}
  for i, name in ipairs(ref.features) do
    means[i] = 0.0
    if ref.n > 0 then means[i] = (ref.read['s1:' .. name] or 0) / ref.n end
  end
  return means
end

local function reference_remove(ref, member)
  if not redis.call('ZSCORE', ref.members, member) then return end
  redis.call('ZREM', ref.members, member)
  local sums, names = reference_sums(ref)
  local fields = {}
  for i, name in ipairs(ref.features) do
    local key = ref.prefix .. name
    local old = tonumber(redis.call('ZSCORE', key, member))
    redis.call('ZREM', key, member)
    fields[#fields + 1] = names[i]
    fields[#fields + 1] = num(sums[i] - old)
  end
  redis.call('HSET', ref.moments, unpack(fields))
end

-- let member in (or update it) if its hash is small enough (Reference.upsert); a new
-- member gives every key its time to live (reference_renew keeps them alive together)
local function reference_upsert(ref, member, hashed, x, ttl)
  local known = redis.call('ZSCORE', ref.members, member)
  if not known then
    local n = redis.call('ZCARD', ref.members)
    if n >= ref.size then
      local largest = redis.call('ZRANGE', ref.members, -1, -1, 'WITHSCORES')
      if hashed >= tonumber(largest[2]) then return end
    end
    redis.call('ZADD', ref.members, hashed, member)
  end
  local sums, names = reference_sums(ref)
  local fields = {}
  for i, name in ipairs(ref.features) do
    local key = ref.prefix .. name
    local s1 = sums[i]
    if known then
      local old = redis.call('ZSCORE', key, member)
      if old then s1 = s1 - tonumber(old) end
    end
    redis.call('ZADD', key, num(x[i]), member)
    fields[#fields + 1] = names[i]
    fields[#fields + 1] = num(s1 + x[i])
    if not known then
      redis.call('ZADD', key, 'NX', '-inf', SKIPLIST)
      redis.call('EXPIRE', key, ttl)
    end
  end
  local n = redis.call('ZCARD', ref.members)
  if not known and n > tonumber(redis.call('HGET', ref.moments, 'peak') or '0') then
    fields[#fields + 1] = 'peak'
    fields[#fields + 1] = math.min(n, ref.size)
  end
  redis.call('HSET', ref.moments, unpack(fields))
  if n > ref.size then
    reference_remove(ref, redis.call('ZRANGE', ref.members, -1, -1)[1])
  end
  if not known then
    redis.call('EXPIRE', ref.members, ttl)
    redis.call('EXPIRE', ref.moments, ttl)
  end
end

-- every key of the reference lives as long as the others (renewed together)
local function reference_renew(ref, ttl)
  redis.call('EXPIRE', ref.members, ttl)
  redis.call('EXPIRE', ref.moments, ttl)
  for _, name in ipairs(ref.features) do redis.call('EXPIRE', ref.prefix .. name, ttl) end
end
