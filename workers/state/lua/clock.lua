-- A tenant's event time on one input topic, across the topic's partitions (which live on
-- different workers): each partition's newest event time, and the low watermark, the
-- oldest of them (Flink's), in field 'low'. listening.lua judges a track's late events
-- against 'low', so a backlog whose partitions drain at different speeds counts what live
-- traffic would. KEYS and ARGV: ClockKeys, ClockArgs (workers/state/scripts.py).
--
-- Fields: p<n> the newest event time of partition n; w<n> when it was last reported (the
-- worker's clock); q<n> when partition n was last reported to have records waiting (its
-- owner's lag, every second); since, when the clock started; low.
-- A partition holds the watermark back while it has records waiting, or was reported
-- within ``idle`` ms; a partition with records waiting and no event time yet makes the
-- watermark unknown (-1), as it is for the first ``idle`` ms of the clock: partitions that
-- have not said anything yet may be far behind. Returns the low watermark.

local clock = KEYS[1]

local now = ARGV[1]
local idle = ARGV[2]
local ttl = ARGV[3]
local waiting_for = ARGV[4]
local waiting = ARGV[5]
local times = {unpack(ARGV, 6)}

for _, v in ipairs({now, idle, ttl, waiting_for, unpack(times)}) do
  if integer(v) == nil then return redis.error_reply('clock: arguments must be integers') end
end
local t = redis.call('TYPE', clock)['ok']
if t ~= 'none' and t ~= 'hash' then
  return redis.error_reply('clock: key ' .. clock .. ' holds a ' .. t .. ', not a hash')
end
now, idle, waiting_for = tonumber(now), tonumber(idle), tonumber(waiting_for)
local since = tonumber(redis.call('HGET', clock, 'since') or now)
for i = 1, #times - 1, 2 do
  local p, newest = times[i], tonumber(times[i + 1])
  local held = tonumber(redis.call('HGET', clock, 'p' .. p) or newest)
  redis.call('HSET', clock, 'p' .. p, math.max(held, newest), 'w' .. p, now)
end
for p in string.gmatch(waiting, '[^,]+') do
  if integer(p) then redis.call('HSET', clock, 'q' .. p, now) end
end
local low = nil
if now - since >= idle then
  local fields = redis.call('HGETALL', clock)
  local at, heard, queued = {}, {}, {}
  for i = 1, #fields, 2 do
    local kind, n, value = string.sub(fields[i], 1, 1), string.sub(fields[i], 2), tonumber(fields[i + 1])
    if kind == 'p' then at[n] = value elseif kind == 'w' then heard[n] = value
    elseif kind == 'q' then queued[n] = value end
  end
  local unknown = false
  for n, value in pairs(queued) do
    if value >= now - waiting_for and at[n] == nil then unknown = true end
  end
  if not unknown then
    for n, value in pairs(at) do
      local waits = queued[n] ~= nil and queued[n] >= now - waiting_for
      if waits or (heard[n] or 0) >= now - idle then
        if low == nil or value < low then low = value end
      end
    end
  end
end
redis.call('HSET', clock, 'since', since, 'low', low or -1)
redis.call('EXPIRE', clock, ttl)
return low or -1
