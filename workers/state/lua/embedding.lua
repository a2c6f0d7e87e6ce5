-- One item's embedding written to a tenant's catalogue outside the tagger (catalogue.lua):
-- a new item counts against the tenant's quota of the day. KEYS and ARGV: EmbeddingKeys,
-- EmbeddingArgs (workers/state/scripts.py). Returns {catalogue version, kept (0/1)}, or
-- {-1, why, detail}.

local embeddings = KEYS[1]
local catalogue = KEYS[2]
local stamps = KEYS[3]
local written = KEYS[4]
local gone = KEYS[5]
local quota = KEYS[6]

local item = ARGV[1]
local vector = ARGV[2]
local now = ARGV[3]
local catalogue_ttl = ARGV[4]
local gone_for = ARGV[5]
local quota_limit = ARGV[6]
local quota_ttl = ARGV[7]

for _, v in ipairs({now, catalogue_ttl, gone_for, quota_limit, quota_ttl}) do
  if integer(v) == nil then return {-1, 'state', 'arguments must be integers'} end
end
local t = redis.call('TYPE', quota)['ok']
local used = t == 'string' and redis.call('GET', quota) or nil
if (t ~= 'none' and t ~= 'string') or (used and integer(used) == nil) then
  return {-1, 'state', 'the quota counter is not an integer'}
end
local shelf = {embeddings = embeddings, catalogue = catalogue, stamps = stamps,
               written = written, gone = gone, item = item}
local problem, fresh = catalogue_check(shelf)
if problem then return {-1, 'state', problem} end
local limit = tonumber(quota_limit)
if limit > 0 and fresh > 0 and tonumber(used or '0') + 1 > limit then return {0, 0} end
if fresh > 0 then
  redis.call('INCRBY', quota, 1)
  redis.call('EXPIRE', quota, quota_ttl)
end
return {catalogue_write(shelf, vector, tonumber(now), tonumber(catalogue_ttl),
                        tonumber(gone_for)), 1}
