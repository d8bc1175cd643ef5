-- Records hits of one site, each atomically and in order: rate limits, reload guard, online set,
-- every window. One call holds the hits of one site from one batch of one writer, and carries
-- that writer's sequence number: a call whose number the site has seen already was counted
-- before (the same batch sent again after a dropped connection, or replayed from the spool
-- after a crash) and counts nothing again.
-- KEYS[1]        online sorted set: visitor id -> last seen (ms)
-- KEYS[2]        the site's settings: a site deleted since the caller read them counts nothing
-- KEYS[3]        the writer's mark for this site: the last sequence number counted
-- KEYS[4..3+K]   pairs (counts hash, visitors HyperLogLog) of the periods the hits add to
-- then, for each hit i (from 0), at 4+K+3i:
--   reload guard of (visitor, page): when its last view was counted (ms)
--   per-visitor hit counter for the hit's minute
--   per-network hit counter for the hit's minute
-- ARGV[1]        K, the number of period keys (twice the number of pairs)
-- ARGV[2]        session timeout, ms: a pageview after a longer silence starts a visit
-- ARGV[3]        how long the online set remembers a visitor, ms
-- ARGV[4]        reload window, ms (0 turns the guard off)
-- ARGV[5]        hits allowed per visitor per minute
-- ARGV[6]        hits allowed per network per minute
-- ARGV[7]        this call's sequence number in its writer (rising, never reused)
-- ARGV[8]        how long the mark is kept, ms
-- then, for each hit i, at 9+5i:
--   now, ms since the epoch (the caller's clock decides; Redis never does)
--   "pageview" or "heartbeat"
--   visitor id
--   the first of the hit's period pairs (0 for the first pair of KEYS[4..])
--   how many pairs it adds to (0 for a heartbeat)
-- Returns one outcome per hit, in order: "counted", "heartbeat", "duplicate", "rate_limited",
-- "unknown_site", or "already_counted" for every hit of a call counted before.
-- The first write is the first hit's INCR: a Redis out of memory or read-only refuses the call
-- there, before anything is written.

local period_keys = tonumber(ARGV[1])
local session_ms = tonumber(ARGV[2])
local keep_ms = tonumber(ARGV[3])
local reload_ms = tonumber(ARGV[4])
local per_visitor = tonumber(ARGV[5])
local per_network = tonumber(ARGV[6])
local seq = tonumber(ARGV[7])
local mark_ms = tonumber(ARGV[8])
local hits = (#ARGV - 8) / 5
local outcomes = {}

if redis.call('EXISTS', KEYS[2]) == 0 then
  -- Deleted while another process still had it cached: write no key of it again.
  for i = 1, hits do outcomes[i] = 'unknown_site' end
  return outcomes
end

local mark = tonumber(redis.call('GET', KEYS[3]))
if mark and seq <= mark then
  for i = 1, hits do outcomes[i] = 'already_counted' end
  return outcomes
end

local function record(guard, by_visitor_key, by_network_key, now, kind, visitor, first, pairs)
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
  local from = 4 + 2 * first
  for p = from, from + 2 * pairs - 1, 2 do
    -- A period already closed (its visitors frozen) is history: a hit that reaches it late
    -- (from the spool, or from a process whose clock lags) counts in the periods still open
    -- and in the total.
    if redis.call('HEXISTS', KEYS[p], 'visitors') == 0 then
      redis.call('HINCRBY', KEYS[p], 'pageviews', 1)
      if visit then redis.call('HINCRBY', KEYS[p], 'visits', 1) end
      redis.call('PFADD', KEYS[p + 1], visitor)
    end
  end
  return 'counted'
end

local first_key = 4 + period_keys
for i = 0, hits - 1 do
  local k = first_key + 3 * i
  local a = 9 + 5 * i
  outcomes[i + 1] = record(KEYS[k], KEYS[k + 1], KEYS[k + 2], tonumber(ARGV[a]), ARGV[a + 1],
    ARGV[a + 2], tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]))
end
redis.call('SET', KEYS[3], seq, 'PX', mark_ms)
return outcomes
