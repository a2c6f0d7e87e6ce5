-- The account verdict last published for a listener (AccountEvidence.published): kept only
-- while the listener is (an erasure in between must not bring a user hash back).
local user = KEYS[1]
local marker = ARGV[1]
if redis.call('TYPE', user)['ok'] == 'hash' then redis.call('HSET', user, 'ap', marker) end
return 1
