-- The verdict last published for a listener ('ap') or a track ('tm'): kept only while its
-- hash is (an erasure in between must not bring a user hash back). KEYS and ARGV:
-- NoteKeys, NoteArgs (workers/state/scripts.py).
local subject = KEYS[1]

local field = ARGV[1]
local marker = ARGV[2]

if redis.call('TYPE', subject)['ok'] == 'hash' then redis.call('HSET', subject, field, marker) end
return 1
