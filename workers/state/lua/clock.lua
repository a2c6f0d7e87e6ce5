-- A tenant's event time on one input topic, across the topic's partitions (which live on
-- different workers): each partition's newest event time, and the low watermark, the
-- oldest of them (Flink's), in field 'low'. A partition silent for ``idle`` ms does not
-- hold it back (Flink's idleness); for the first ``idle`` ms after the clock starts the
-- watermark is unknown (-1): the partitions that have not reported yet may be far behind.
-- listening.lua judges a track's late events against 'low', so a backlog whose partitions
-- drain at different speeds counts what live traffic would. KEYS and ARGV: ClockKeys,
-- ClockArgs (workers/state/scripts.py). Returns the low watermark.

local clock = KEYS[1]

local now = ARGV[1]
local idle = ARGV[2]
local ttl = ARGV[3]
local times = {unpack(ARGV, 4)}

for _, v in ipairs({now, idle, ttl, unpack(times)}) do
  if integer(v) == nil then return redis.error_reply('clock: arguments must be integers') end
end
local t = redis.call('TYPE', clock)['ok']
if t ~= 'none' and t ~= 'hash' then
  return redis.error_reply('clock: key ' .. clock .. ' holds a ' .. t .. ', not a hash')
end
now, idle = tonumber(now), tonumber(idle)
local since = tonumber(redis.call('HGET', clock, 'since') or now)
for i = 1, #times - 1, 2 do
  local p, newest = times[i], tonumber(times[i + 1])
  local held = tonumber(redis.call('HGET', clock, 'p' .. p) or newest)
  redis.call('HSET', clock, 'p' .. p, math.max(held, newest), 'w' .. p, now)
end
local low = nil
if now - since >= idle then
  local fields = redis.call('HGETALL', clock)
  local heard = {}
  for i = 1, #fields, 2 do
    local name, value = fields[i], tonumber(fields[i + 1])
    if string.sub(name, 1, 1) == 'w' then heard[string.sub(name, 2)] = value end
  end
  for i = 1, #fields, 2 do
    local name, value = fields[i], tonumber(fields[i + 1])
    if string.sub(name, 1, 1) == 'p' and (heard[string.sub(name, 2)] or 0) >= now - idle then
      if low == nil or value < low then low = value end
    end
  end
end
redis.call('HSET', clock, 'since', since, 'low', low or -1)
redis.call('EXPIRE', clock, ttl)
return low or -1
