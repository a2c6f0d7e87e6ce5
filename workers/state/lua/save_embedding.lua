-- A track's (or stream's) audio embedding: stored, stamped with the tenant's new version
-- (readers fetch what changed since theirs), every key's time to live renewed.
local embeddings = KEYS[1]
local version = KEYS[2]
local stamps = KEYS[3]

local item = ARGV[1]
local vector = ARGV[2]
local ttl = ARGV[3]

local v = redis.call('INCR', version)
redis.call('HSET', embeddings, item, vector)
redis.call('ZADD', stamps, v, item)
redis.call('EXPIRE', embeddings, ttl)
redis.call('EXPIRE', version, ttl)
redis.call('EXPIRE', stamps, ttl)
return v
