-- A tenant's catalogue of one tagger model's embeddings (helpers for stream.lua and
-- embedding.lua): items by id, a version bumped at every change (readers fetch what changed
-- since theirs), items unwritten for the catalogue's time to live leave it a few at a time
-- and leave a tombstone readers see for ``gone_for`` ms; a reader older than the 'floor'
-- (the newest tombstone dropped) reads everything again.

-- c: {embeddings, catalogue, stamps, written, gone, item}. Nil when writing may go ahead,
-- else why not; and 1 when the item is new to the catalogue (it counts against the quota).
local function catalogue_check(c)
  for _, pair in ipairs({{c.embeddings, 'hash'}, {c.catalogue, 'hash'}, {c.stamps, 'zset'},
                         {c.written, 'zset'}, {c.gone, 'zset'}}) do
    local t = redis.call('TYPE', pair[1])['ok']
    if t ~= 'none' and t ~= pair[2] then
      return 'key ' .. pair[1] .. ' holds a ' .. t .. ', not a ' .. pair[2], 0
    end
  end
  local meta = redis.call('HMGET', c.catalogue, 'version', 'floor')
  if (meta[1] and integer(meta[1]) == nil) or (meta[2] and integer(meta[2]) == nil) then
    return 'catalogue version or floor is not an integer', 0
  end
  return nil, 1 - redis.call('HEXISTS', c.embeddings, c.item)
end

-- the item written (checked first), the expired items and old tombstones let go; the
-- catalogue's version after it
local function catalogue_write(c, vector, now, ttl, gone_for)
  local version = redis.call('HINCRBY', c.catalogue, 'version', 1)
  redis.call('HSET', c.embeddings, c.item, vector)
  redis.call('ZADD', c.stamps, version, c.item)
  redis.call('ZADD', c.written, now, c.item)
  redis.call('ZREM', c.gone, c.item)
  for _, old in ipairs(redis.call('ZRANGEBYSCORE', c.written, '-inf',
                                  '(' .. string.format('%d', now - ttl * 1000), 'LIMIT', 0, 50)) do
    version = redis.call('HINCRBY', c.catalogue, 'version', 1)
    redis.call('HDEL', c.embeddings, old)
    redis.call('ZREM', c.written, old)
    redis.call('ZADD', c.stamps, version, old)
    redis.call('ZADD', c.gone, now, old)
  end
  local floor = tonumber(redis.call('HGET', c.catalogue, 'floor') or '0')
  for _, old in ipairs(redis.call('ZRANGEBYSCORE', c.gone, '-inf',
                                  '(' .. string.format('%d', now - gone_for), 'LIMIT', 0, 50)) do
    floor = math.max(floor, tonumber(redis.call('ZSCORE', c.stamps, old) or '0'))
    redis.call('ZREM', c.stamps, old)
    redis.call('ZREM', c.gone, old)
  end
  redis.call('HSET', c.catalogue, 'floor', floor)
  for _, key in ipairs({c.embeddings, c.catalogue, c.stamps, c.written, c.gone}) do
    redis.call('EXPIRE', key, ttl)
  end
  return version
end
