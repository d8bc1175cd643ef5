-- Records hits of one site, each atomically and in order: the limits of its network, the
-- reload guard, the online set, every window. One call holds the hits of one site from one
-- batch of one writer, and carries that writer's sequence number: a call whose number the
-- site has seen already was counted before (the same batch sent again after a dropped
-- connection, or replayed from the spool after a crash) and counts nothing again.
-- KEYS[1]        online sorted set: visitor id -> last seen (ms)
-- KEYS[2]        the site's settings: a site deleted since the caller read them counts nothing
-- KEYS[3]        the writer's mark for this site: the last sequence number counted
-- KEYS[4..3+K]   pairs (counts hash, visitors HyperLogLog) of the periods the hits add to
-- KEYS[4+K..3+5K/2] triples (pages sorted set, referrers sorted set, pages' errors hash) of
--                the same periods, in order
-- then, for each hit i (from 0), at 4+5K/2+4i:
--   reload guard of (visitor, page): when its last view was counted (ms)
--   the limits hash of the hit's network: per kind of hit and minute, how many it had
--   the same network's limits hash of the day before (its name changes with the day's salt),
--   read only, in the first minutes of a day; else the limits hash again
--   the network's online visitors: visitor id -> last seen (ms)
-- ARGV[1]        K, the number of period keys (twice the number of pairs)
-- ARGV[2]        session timeout, ms: a pageview after a longer silence starts a visit
-- ARGV[3]        how long the online set remembers a visitor, ms
-- ARGV[4]        reload window, ms (0 turns the guard off)
-- ARGV[5]        the limits' window, in whole minutes (W)
-- ARGV[6..9]     what one network may add in any W minutes: new visitors, visits, pageviews,
--                heartbeats
-- ARGV[10]       the site's online window, ms: a network keeps at most ARGV[6] online in it
-- ARGV[11]       this call's sequence number in its writer (rising, never reused)
-- ARGV[12]       how long the mark is kept, ms
-- ARGV[13]       how many pages a period's pages set keeps at most
-- ARGV[14]       how many hosts a period's referrers set keeps at most
-- ARGV[15]       the layout of this call's keys and arguments: "hit/3", this one
-- then, for each hit i, at 16+7i:
--   now, ms since the epoch (the caller's clock decides; Redis never does)
--   "pageview" or "heartbeat"
--   visitor id
--   the first of the hit's period pairs (0 for the first pair of KEYS[4..])
--   how many pairs it adds to (0 for a heartbeat)
--   the page's path
--   the referrer's host, "" when it has none worth counting (none, or the site's own)
-- Returns one outcome per hit, in order: "counted", "heartbeat", "duplicate", "rate_limited",
-- "unknown_site", or "already_counted" for every hit of a call counted before.
--
-- The limits count, per network, each kind in the minute it happened, and a hit is held back
-- when the W minutes before its own minute and its own minute (W + 1 in all) already hold the
-- limit: a window a little longer than W minutes, never shorter, so no W minutes anywhere ever
-- hold more. Everything is
-- decided before anything is written: a hit held back writes no key. The first write is the
-- first counted hit's: a Redis out of memory or read-only refuses the call there, before
-- anything is written.
--
-- Pages and referrers are counted the Space-Saving way (Metwally, Agrawal and El Abbadi, 2005):
-- a set holds at most its cap of entries; a new entry in a full set takes the place of the
-- least viewed one and inherits its count, plus one. An entry's count is then never below its
-- true count and above it by at most the least count in the set, so whatever is viewed much
-- more often than the tail is listed, in its right order, whatever clients send. What a page
-- inherited is kept beside it (its error), so that its own count, the views since it entered
-- the list, can be told too: exact for a page new to the list, never above the true count.
--
-- A call in another layout (a spooled call of an older version) is refused whole, before
-- anything is written: the caller converts it.

local period_keys = tonumber(ARGV[1])
local session_ms = tonumber(ARGV[2])
local keep_ms = tonumber(ARGV[3])
local reload_ms = tonumber(ARGV[4])
local window = tonumber(ARGV[5])
local allowed = {v = tonumber(ARGV[6]), s = tonumber(ARGV[7]), p = tonumber(ARGV[8]),
  h = tonumber(ARGV[9])}
local online_ms = tonumber(ARGV[10])
local seq = tonumber(ARGV[11])
local mark_ms = tonumber(ARGV[12])
local max_pages = tonumber(ARGV[13])
local max_referrers = tonumber(ARGV[14])
local hits = (#ARGV - 15) / 7
if ARGV[15] ~= 'hit/3' or hits ~= math.floor(hits)
    or #KEYS ~= 3 + 5 * period_keys / 2 + 4 * hits then
  return redis.error_reply('ERR hit call layout: ' .. #KEYS .. ' keys, ' .. #ARGV .. ' args')
end
local outcomes = {}

if redis.call('EXISTS', KEYS[2]) == 0 then
  -- Deleted while another process still had it cached: write no key of it again.
  for i = 1, hits do outcomes[i] = 'unknown_site' end
  return outcomes
end

local wrote = false
local mark = tonumber(redis.call('GET', KEYS[3]))
if mark and seq <= mark then
  for i = 1, hits do outcomes[i] = 'already_counted' end
  return outcomes
end

-- How many of each kind the network had in the W + 1 minutes up to ``minute`` (its hash, and
-- the day before's under its old name), and the fields of minutes no window reaches any more.
local function recent(limits, before, minute)
  local totals = {v = 0, s = 0, p = 0, h = 0}
  local stale = {}
  local function add(key, own)
    local fields = redis.call('HGETALL', key)
    for i = 1, #fields, 2 do
      local field = fields[i]
      if tonumber(string.sub(field, 2)) >= minute - window then
        local kind = string.sub(field, 1, 1)
        totals[kind] = totals[kind] + tonumber(fields[i + 1])
      elseif own then
        stale[#stale + 1] = field
      end
    end
  end
  add(limits, true)
  if before ~= limits then add(before, false) end
  return totals, stale
end

-- One more view of ``member`` in the capped sorted set ``key``; ``errors``, where given, keeps
-- what each entry inherited.
local function bump(key, member, cap, errors)
  if redis.call('ZADD', key, 'XX', 'INCR', 1, member) then return end
  if redis.call('ZCARD', key) < cap then
    redis.call('ZADD', key, 1, member)
    if errors then redis.call('HDEL', errors, member) end  -- inherits nothing
    return
  end
  local least = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  redis.call('ZREM', key, least[1])
  redis.call('ZADD', key, tonumber(least[2]) + 1, member)
  if errors then
    redis.call('HDEL', errors, least[1])
    redis.call('HSET', errors, member, least[2])
  end
end

local function record(guard, limits, before, net_online, now, kind, visitor, first, pairs, path,
                      referrer)
  local last_seen = redis.call('ZSCORE', KEYS[1], visitor)
  local pageview = kind == 'pageview'
  if pageview and reload_ms > 0 then
    -- The guard holds the time of the counted view; its TTL only cleans up, the clock decides.
    local counted_at = tonumber(redis.call('GET', guard))
    if counted_at and math.abs(now - counted_at) < reload_ms then
      redis.call('ZADD', KEYS[1], 'GT', now, visitor)
      wrote = true
      return 'duplicate'
    end
  end

  local visit = pageview and ((not last_seen) or (tonumber(last_seen) < now - session_ms))
  local minute = math.floor(now / 60000)
  local adds = {}
  if not last_seen then adds[#adds + 1] = 'v' end
  if visit then adds[#adds + 1] = 's' end
  adds[#adds + 1] = pageview and 'p' or 'h'
  local had, stale = recent(limits, before, minute)
  for _, what in ipairs(adds) do
    if had[what] >= allowed[what] then
      return 'rate_limited'
    end
  end
  local seen = tonumber(redis.call('ZSCORE', net_online, visitor))
  if not seen or seen < now - online_ms then
    -- One more of the network online: not past what it may keep online at once.
    if redis.call('ZCOUNT', net_online, now - online_ms, '+inf') >= allowed.v then
      return 'rate_limited'
    end
  end

  wrote = true
  for _, what in ipairs(adds) do
    redis.call('HINCRBY', limits, what .. minute, 1)
  end
  if #stale > 0 then  -- gone, however far apart the network's hits came
    redis.call('HDEL', limits, unpack(stale))
  end
  redis.call('PEXPIRE', limits, (window + 1) * 60000)
  redis.call('ZADD', net_online, 'GT', now, visitor)
  redis.call('ZREMRANGEBYSCORE', net_online, '-inf', '(' .. (now - online_ms))
  redis.call('PEXPIRE', net_online, online_ms)
  -- GT: a hit that reaches Redis late never moves last-seen backwards.
  redis.call('ZADD', KEYS[1], 'GT', now, visitor)
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - keep_ms))
  if not pageview then
    return 'heartbeat'
  end
  if reload_ms > 0 then
    redis.call('SET', guard, now, 'PX', reload_ms)
  end
  local from = 4 + 2 * first
  for p = from, from + 2 * pairs - 1, 2 do
    -- A period already closed (its visitors frozen) is history: a hit that reaches it late
    -- (from the spool, or from a process whose clock lags) counts in the periods still open
    -- and in the total.
    if redis.call('HEXISTS', KEYS[p], 'visitors') == 0 then
      redis.call('HINCRBY', KEYS[p], 'pageviews', 1)
      if visit then redis.call('HINCRBY', KEYS[p], 'visits', 1) end
      redis.call('PFADD', KEYS[p + 1], visitor)
      local lists = 4 + period_keys + 3 * (p - 4) / 2
      if path ~= '' then bump(KEYS[lists], path, max_pages, KEYS[lists + 2]) end
      if referrer ~= '' then bump(KEYS[lists + 1], referrer, max_referrers, nil) end
    end
  end
  return 'counted'
end

local first_key = 4 + 5 * period_keys / 2
for i = 0, hits - 1 do
  local k = first_key + 4 * i
  local a = 16 + 7 * i
  outcomes[i + 1] = record(KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], tonumber(ARGV[a]),
    ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]), ARGV[a + 5],
    ARGV[a + 6])
end
if wrote then  -- a call that wrote nothing (every hit held back) leaves no trace either
  redis.call('SET', KEYS[3], seq, 'PX', mark_ms)
end
return outcomes
