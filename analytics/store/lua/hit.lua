-- Records hits of one site, each atomically and in order: rate limits, reload guard, online set,
-- every window. The hits of one call share their periods and limits (one site, one local day,
-- one kind), so those are passed once; what is a hit's own comes three keys and three
-- arguments to a hit.
-- KEYS[1]        online sorted set: visitor id -> last seen (ms)
-- KEYS[2]        the site's settings: a site deleted since the caller read them counts nothing
-- KEYS[3..2+2P]  pairs (counts hash, visitors HyperLogLog), one pair per period the hits add to
-- then, for each hit i (from 0), at 3+2P+3i:
--   reload guard of (visitor, page): when its last view was counted (ms)
--   per-visitor hit counter for the hit's minute
--   per-network hit counter for the hit's minute
-- ARGV[1]        P, the number of periods
-- ARGV[2]        session timeout, ms: a pageview after a longer silence starts a visit
-- ARGV[3]        how long the online set remembers a visitor, ms
-- ARGV[4]        reload window, ms (0 turns the guard off)
-- ARGV[5]        hits allowed per visitor per minute
-- ARGV[6]        hits allowed per network per minute
-- then, for each hit i, at 7+3i:
--   now, ms since the epoch (the caller's clock decides; Redis never does)
--   "pageview" or "heartbeat"
--   visitor id
-- Returns one outcome per hit, in order: "counted", "heartbeat", "duplicate", "rate_limited"
-- or "unknown_site".

local periods = tonumber(ARGV[1])
local session_ms = tonumber(ARGV[2])
local keep_ms = tonumber(ARGV[3])
local reload_ms = tonumber(ARGV[4])
local per_visitor = tonumber(ARGV[5])
local per_network = tonumber(ARGV[6])
local hits = (#ARGV - 6) / 3
local outcomes = {}

if redis.call('EXISTS', KEYS[2]) == 0 then
  -- Deleted while another process still had it cached: write no key of it again.
  for i = 1, hits do outcomes[i] = 'unknown_site' end
  return outcomes
end

local function record(guard, by_visitor_key, by_network_key, now, kind, visitor)
  local by_visitor = redis.call('INCR', by_visitor_key)
  if by_visitor == 1 then redis.call('EXPIRE', by_visitor_key, 120) end
  local by_network = redis.call('INCR', by_network_key)
  if by_network == 1 then redis.call('EXPIRE', by_network_key, 120) end
  if by_visitor > per_visitor or by_network > per_network then
    return 'rate_limited'
  end

  local last_seen = redis.call('ZSCORE', KEYS[1], visitor)
  -- GT: a hit that reaches Redis late never moves last-seen backwards.
  redis.call('ZADD', KEYS[1], 'GT', now, visitor)
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - keep_ms))

  if kind == 'heartbeat' then
    return 'heartbeat'
  end

  -- The guard holds the time of the counted view; its TTL only cleans up, the clock decides.
  if reload_ms > 0 then
    local counted_at = tonumber(redis.call('GET', guard))
    if counted_at and math.abs(now - counted_at) < reload_ms then
      return 'duplicate'
    end
    redis.call('SET', guard, now, 'PX', reload_ms)
  end

  local visit = (not last_seen) or (tonumber(last_seen) < now - session_ms)
  for p = 3, 2 + 2 * periods, 2 do
    -- A period already closed (its visitors frozen) is history: a hit that reaches it late,
    -- from a process whose clock lags, counts in the periods still open and in the total.
    if redis.call('HEXISTS', KEYS[p], 'visitors') == 0 then
      redis.call('HINCRBY', KEYS[p], 'pageviews', 1)
      if visit then redis.call('HINCRBY', KEYS[p], 'visits', 1) end
      redis.call('PFADD', KEYS[p + 1], visitor)
    end
  end
  return 'counted'
end

local first_key = 3 + 2 * periods
for i = 0, hits - 1 do
  local k = first_key + 3 * i
  local a = 7 + 3 * i
  outcomes[i + 1] = record(KEYS[k], KEYS[k + 1], KEYS[k + 2], tonumber(ARGV[a]), ARGV[a + 1], ARGV[a + 2])
end
return outcomes
