-- Records one hit of one site atomically: rate limits, reload guard, online set, every window.
-- KEYS[1]    online sorted set: visitor id -> last seen (ms)
-- KEYS[2]    reload guard of (visitor, page): when its last view was counted (ms)
-- KEYS[3]    per-visitor hit counter for the current minute
-- KEYS[4]    per-network hit counter for the current minute
-- KEYS[5]    the site's settings: a site deleted since the caller read them counts nothing
-- KEYS[6..]  pairs (counts hash, visitors HyperLogLog), one pair per period the hit adds to
-- ARGV[1]    now, ms since the epoch (the caller's clock decides; Redis never does)
-- ARGV[2]    "pageview" or "heartbeat"
-- ARGV[3]    visitor id
-- ARGV[4]    session timeout, ms: a pageview after a longer silence starts a visit
-- ARGV[5]    how long the online set remembers a visitor, ms
-- ARGV[6]    reload window, ms (0 turns the guard off)
-- ARGV[7]    hits allowed per visitor per minute
-- ARGV[8]    hits allowed per network per minute
-- Returns "counted", "heartbeat", "duplicate", "rate_limited" or "unknown_site".

if redis.call('EXISTS', KEYS[5]) == 0 then
  -- Deleted while another process still had it cached: write no key of it again.
  return 'unknown_site'
end

local now = tonumber(ARGV[1])
local visitor = ARGV[3]

local by_visitor = redis.call('INCR', KEYS[3])
if by_visitor == 1 then redis.call('EXPIRE', KEYS[3], 120) end
local by_network = redis.call('INCR', KEYS[4])
if by_network == 1 then redis.call('EXPIRE', KEYS[4], 120) end
if by_visitor > tonumber(ARGV[7]) or by_network > tonumber(ARGV[8]) then
  return 'rate_limited'
end

local last_seen = redis.call('ZSCORE', KEYS[1], visitor)
-- GT: a hit that reaches Redis late never moves last-seen backwards.
redis.call('ZADD', KEYS[1], 'GT', now, visitor)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[5])))

if ARGV[2] == 'heartbeat' then
  return 'heartbeat'
end

-- The guard holds the time of the counted view; its TTL only cleans up, the clock decides.
local reload_ms = tonumber(ARGV[6])
if reload_ms > 0 then
  local counted_at = tonumber(redis.call('GET', KEYS[2]))
  if counted_at and math.abs(now - counted_at) < reload_ms then
    return 'duplicate'
  end
  redis.call('SET', KEYS[2], now, 'PX', reload_ms)
end

local visit = (not last_seen) or (tonumber(last_seen) < now - tonumber(ARGV[4]))
for i = 6, #KEYS, 2 do
  -- A period already closed (its visitors frozen) is history: a hit that reaches it late,
  -- from a process whose clock lags, counts in the periods still open and in the total.
  if redis.call('HEXISTS', KEYS[i], 'visitors') == 0 then
    redis.call('HINCRBY', KEYS[i], 'pageviews', 1)
    if visit then redis.call('HINCRBY', KEYS[i], 'visits', 1) end
    redis.call('PFADD', KEYS[i + 1], visitor)
  end
end
return 'counted'
