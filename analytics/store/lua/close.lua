-- Closes one finished period of one site, once: freezes its counts into the history,
-- drops its HyperLogLog, keeps the top of its pages and referrers lists for the time they are
-- still read, and drops the period that has just left the retention window.
-- KEYS[1]  closed hash: per grain, the name of the last period closed, and "<grain>:since"
-- KEYS[2]  counts hash of the period
-- KEYS[3]  visitors HyperLogLog of the period
-- KEYS[4]  history hash that keeps the period's frozen counts
-- KEYS[5]  counts hash of the period leaving retention
-- KEYS[6]  visitors HyperLogLog of the period leaving retention
-- KEYS[7]  pages sorted set of the period
-- KEYS[8]  referrers sorted set of the period
-- ARGV[1]  grain: "d", "w" or "m"
-- ARGV[2]  the period's name; names of one grain sort in time order
-- ARGV[3]  the name of the period leaving retention; its keys go only if it was closed here
-- ARGV[4]  how long the period's lists are kept from now, ms: while a window still shows it
-- ARGV[5]  how many of the most viewed pages its pages list keeps
-- ARGV[6]  how many of the most seen hosts its referrers list keeps
-- Returns 1 when it closed the period, 0 when it (or a later one) was closed already.

local last = redis.call('HGET', KEYS[1], ARGV[1])
if last and last >= ARGV[2] then
  return 0
end

local counts = redis.call('HMGET', KEYS[2], 'pageviews', 'visits', 'visitors')
local pageviews = tonumber(counts[1]) or 0
local visits = tonumber(counts[2]) or 0
local visitors = tonumber(counts[3]) or redis.call('PFCOUNT', KEYS[3])
if pageviews > 0 or visits > 0 or visitors > 0 then
  redis.call('HSET', KEYS[4], ARGV[2], pageviews .. ' ' .. visits .. ' ' .. visitors)
  -- The open windows (yesterday, last_week, last_month) read the frozen number from now on.
  redis.call('HSET', KEYS[2], 'visitors', visitors)
end
redis.call('DEL', KEYS[3])
redis.call('ZREMRANGEBYRANK', KEYS[7], 0, -1 - tonumber(ARGV[5]))
redis.call('ZREMRANGEBYRANK', KEYS[8], 0, -1 - tonumber(ARGV[6]))
redis.call('PEXPIRE', KEYS[7], ARGV[4])
redis.call('PEXPIRE', KEYS[8], ARGV[4])
-- The first close of a grain records where closing began; what lies before was never frozen
-- into the history, so retention must not drop it.
local since = redis.call('HGET', KEYS[1], ARGV[1] .. ':since')
if not since then
  since = ARGV[2]
  redis.call('HSET', KEYS[1], ARGV[1] .. ':since', since)
end
if ARGV[3] >= since then
  redis.call('DEL', KEYS[5], KEYS[6])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
