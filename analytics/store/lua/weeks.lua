-- Rebuilds this week and last week of one site after its week start changed, from their days:
-- a day's keys do not depend on the week start, a week's do. Atomic, and running it again
-- gives the same weeks (the days are read again), so two processes doing it at once agree.
-- KEYS[1]            closed hash: per grain, the name of the last period closed
-- then, for each of the two new weeks (this week, then last week):
--   its counts hash, visitors HyperLogLog, pages and referrers sorted sets, pages' errors hash
--   (5 keys), then the same week under the old start's lists: pages, referrers, pages' errors
--   (3 keys), then its days: (counts hash, visitors HyperLogLog) pairs
-- then the old start's weeks still kept, newest first: (counts hash, visitors HyperLogLog,
--   pages, referrers, pages' errors) each
-- ARGV[1]            how many days this week has so far (today included)
-- ARGV[2]            how many days last week has (7)
-- ARGV[3]            how many of the old start's weeks follow
-- ARGV[4]            the name of the week before last week: the last week closed from now on,
--                    once weeks are being closed, so that the housekeeping closes last week
--                    next, by the new start
-- ARGV[5]            how long the old start's weeks stay, ms: closed, for a process that has not
--                    yet seen the change (it reads them, and its late hits pass them by)
-- Returns the pageviews of the two new weeks.
--
-- A week's pageviews and visits are the sums of its days'. Its visitors are too (visitor ids
-- rotate daily): the days still open are merged into the week's HyperLogLog, and the frozen
-- visitors of the closed days are kept beside it, in the field "carried", which reading and
-- closing add to the HyperLogLog's count.

local this_days = tonumber(ARGV[1])
local last_days = tonumber(ARGV[2])
local old_weeks = tonumber(ARGV[3])

local function open_visitors(counts, hll)
  local fields = redis.call('HMGET', counts, 'visitors', 'carried')
  if fields[1] then return nil end  -- closed already
  return redis.call('PFCOUNT', hll) + (tonumber(fields[2]) or 0)
end

local function take(from, to)
  if redis.call('EXISTS', from) == 1 then redis.call('RENAME', from, to) end
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

local this_pageviews, next_at = rebuild(2, this_days)
local last_pageviews = rebuild(next_at, last_days)
-- The old start's weeks: closed where they stand (their lists, taken above, are gone), and
-- left to expire.
local first_old = 2 + 8 * 2 + 2 * (this_days + last_days)
for w = 0, old_weeks - 1 do
  local at = first_old + 5 * w
  local counts, hll = KEYS[at], KEYS[at + 1]
  local visitors = open_visitors(counts, hll)
  if visitors and redis.call('EXISTS', counts, hll) > 0 then
    redis.call('HSET', counts, 'visitors', visitors)
  end
  redis.call('DEL', hll, KEYS[at + 4])
  redis.call('PEXPIRE', counts, ARGV[5])
  redis.call('PEXPIRE', KEYS[at + 2], ARGV[5])
  redis.call('PEXPIRE', KEYS[at + 3], ARGV[5])
end

if redis.call('HEXISTS', KEYS[1], 'w') == 1 then
  redis.call('HSET', KEYS[1], 'w', ARGV[4])
end
return { this_pageviews, last_pageviews }
