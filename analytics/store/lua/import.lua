-- Imports daily counts of an earlier counter into one site: each day given replaces what was
-- imported for it before (never what was counted live), and the running sums follow, so that an
-- import run twice counts once.
-- KEYS[1]  imported days hash: date -> "pageviews visits visitors"
-- KEYS[2]  imported sums hash: pageviews, visits, visitors, and since (the earliest day)
-- ARGV     quadruples: date (YYYY-MM-DD), pageviews, visits, visitors
-- Returns how many days it imported.

local pageviews, visits, visitors = 0, 0, 0
local since = redis.call('HGET', KEYS[2], 'since')
for i = 1, #ARGV, 4 do
  local day = ARGV[i]
  local old = redis.call('HGET', KEYS[1], day)
  if old then
    local p, v, u = string.match(old, '^(%d+) (%d+) (%d+)$')
    pageviews = pageviews - tonumber(p)
    visits = visits - tonumber(v)
    visitors = visitors - tonumber(u)
  end
  local p, v, u = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  if p > 0 or v > 0 or u > 0 then
    redis.call('HSET', KEYS[1], day, ARGV[i + 1] .. ' ' .. ARGV[i + 2] .. ' ' .. ARGV[i + 3])
  else
    redis.call('HDEL', KEYS[1], day)
  end
  pageviews = pageviews + p
  visits = visits + v
  visitors = visitors + u
  if not since or day < since then
    since = day
  end
end
-- Sums of at most a few thousand days of at most 10^12 each: exact in Lua's doubles.
redis.call('HINCRBY', KEYS[2], 'pageviews', string.format('%d', pageviews))
redis.call('HINCRBY', KEYS[2], 'visits', string.format('%d', visits))
redis.call('HINCRBY', KEYS[2], 'visitors', string.format('%d', visitors))
if since then
  redis.call('HSET', KEYS[2], 'since', since)
end
return #ARGV / 4
