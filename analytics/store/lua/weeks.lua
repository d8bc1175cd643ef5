-- Builds this week and last week of one site again from their days, by the site's week start,
-- once that start has changed (or, after an undo, by the same start). A day's keys do not
-- depend on the week start; a week's do.
--
-- It acts only if the site still starts its weeks on ARGV[7] and the weeks still follow the
-- start the caller read (the closed hash's "w:start", ARGV[6]): else it changes nothing and
-- answers "moved", and the caller reads both again. So two changes racing, or a change and the
-- housekeeping, end with the weeks of the start the site has, built once.
--
-- KEYS[1]            closed hash: "w", the last week closed; "w:start", the start the week
--                    keys follow (absent: the site's own, never changed); "w:changes", how
--                    many changes of start were applied
-- KEYS[2]            the site's settings (JSON)
-- then, for each of the two weeks by the new start (this week, then last week):
--   its counts hash, visitors HyperLogLog, pages and referrers sorted sets, pages' errors hash
--   (5 keys), then the lists of the same week by the old start (pages, referrers, pages'
--   errors: 3 keys; the week's own lists again after an undo), then its days: (counts hash,
--   visitors HyperLogLog) pairs
-- then the counts hash of the week after this week, by the new start
-- then the weeks of the old start to retire: (counts hash, visitors HyperLogLog, pages,
--   referrers, pages' errors) each
-- ARGV[1]            how many days this week has so far (today included)
-- ARGV[2]            how many days last week has (7)
-- ARGV[3]            how many weeks of the old start follow
-- ARGV[4]            the name of the week before last week: the last week closed from now on
--                    if one after it was closed, so that the housekeeping closes last week
--                    (again) next, by the new start
-- ARGV[5]            how long the old start's weeks stay, ms: closed, for a process that has not
--                    yet seen the change (it reads them, and its late hits pass them by)
-- ARGV[6]            the closed hash's "w:start" as the caller read it, "" for none
-- ARGV[7]            the site's week start the weeks are built for
-- Returns {1, this week's pageviews, last week's pageviews}, {0} when the site starts its weeks
-- on another day or the weeks follow another start by now ("moved"), {-1} for no such site.
--
-- A week's pageviews and visits are the sums of its days'. Its visitors are too (visitor ids
-- rotate daily): the days still open are merged into the week's HyperLogLog, and the frozen
-- visitors of the closed days are kept beside it, in the field "carried", which reading and
-- closing add to the HyperLogLog's count.

local settings = redis.call('GET', KEYS[2])
if not settings then
  return { -1 }
end
local following = redis.call('HGET', KEYS[1], 'w:start') or ''
if following ~= ARGV[6] or cjson.decode(settings).week_start ~= ARGV[7] then
  return { 0 }
end

local this_days = tonumber(ARGV[1])
local last_days = tonumber(ARGV[2])
local old_weeks = tonumber(ARGV[3])

local function take(from, to)
  if from ~= to and redis.call('EXISTS', from) == 1 then redis.call('RENAME', from, to) end
end

local function rebuild(at, days)
  local counts, hll = KEYS[at], KEYS[at + 1]
  take(KEYS[at + 5], KEYS[at + 2])
  take(KEYS[at + 6], KEYS[at + 3])
  take(KEYS[at + 7], KEYS[at + 4])
  redis.call('DEL', counts, hll)
  local pageviews, visits, carried, open = 0, 0, 0, {}
  for d = 0, days - 1 do
    local day, day_hll = KEYS[at + 8 + 2 * d], KEYS[at + 9 + 2 * d]
    local c = redis.call('HMGET', day, 'pageviews', 'visits', 'visitors')
    pageviews = pageviews + (tonumber(c[1]) or 0)
    visits = visits + (tonumber(c[2]) or 0)
    if c[3] then
      carried = carried + tonumber(c[3])
    elseif redis.call('EXISTS', day_hll) == 1 then
      open[#open + 1] = day_hll
    end
  end
  if #open > 0 then redis.call('PFMERGE', hll, unpack(open)) end
  if pageviews > 0 or visits > 0 or carried > 0 then
    redis.call('HSET', counts, 'pageviews', pageviews, 'visits', visits)
    if carried > 0 then redis.call('HSET', counts, 'carried', carried) end
  end
  return pageviews, at + 8 + 2 * days
end

local this_pageviews, next_at = rebuild(3, this_days)
local last_pageviews, next_week = rebuild(next_at, last_days)
local first_old = next_week + 1
-- A week that has not begun holds nothing but, from an earlier change back within a week, the
-- mark this script leaves on the old start's weeks: it must not pass the week's hits by.
local ahead = KEYS[next_week]
if redis.call('HLEN', ahead) == 1 and redis.call('HEXISTS', ahead, 'visitors') == 1 then
  redis.call('DEL', ahead)
end

-- The old start's weeks: closed where they stand, whether they exist yet or not (a late hit
-- from a process that has not seen the change then passes them by), and left to expire: the
-- retention of closed weeks, by the new start, never names them.
for w = 0, old_weeks - 1 do
  local at = first_old + 5 * w
  local counts, hll = KEYS[at], KEYS[at + 1]
  local fields = redis.call('HMGET', counts, 'visitors', 'carried')
  if not fields[1] then
    local visitors = redis.call('PFCOUNT', hll) + (tonumber(fields[2]) or 0)
    redis.call('HSET', counts, 'visitors', visitors)
  end
  redis.call('DEL', hll, KEYS[at + 4])
  redis.call('PEXPIRE', counts, ARGV[5])
  redis.call('PEXPIRE', KEYS[at + 2], ARGV[5])
  redis.call('PEXPIRE', KEYS[at + 3], ARGV[5])
end

if old_weeks > 0 then
  -- A change of start: what a reset set aside before it belongs to weeks built again since.
  redis.call('HINCRBY', KEYS[1], 'w:changes', 1)
end
redis.call('HSET', KEYS[1], 'w:start', ARGV[7])
local closed = redis.call('HGET', KEYS[1], 'w')
if closed and closed > ARGV[4] then  -- never forward: a housekeeping behind catches up from it
  redis.call('HSET', KEYS[1], 'w', ARGV[4])
end
return { 1, this_pageviews, last_pageviews }
