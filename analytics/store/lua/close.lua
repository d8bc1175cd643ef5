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
-- KEYS[9]  the period's pages' errors: what each page inherited when it entered the full list
-- KEYS[10] pages sorted set of the period leaving retention
-- KEYS[11] referrers sorted set of the period leaving retention
-- KEYS[12] pages' errors of the period leaving retention
-- ARGV[1]  grain: "d", "w" or "m"
-- ARGV[2]  the period's name; names of one grain sort in time order
-- ARGV[3]  the name of the period leaving retention; its keys go only if it was closed here
-- ARGV[4]  how long the period's lists are kept from now, ms: while a window still shows it
-- ARGV[5]  how many of the most viewed pages its pages list keeps
-- ARGV[6]  how many of the most seen hosts its referrers list keeps
-- ARGV[7]  the week start the caller closes by: a week is not closed while the week keys follow
--          another (the closed hash's "w:start"; store/lua/weeks.lua brings them to it first)
-- Returns 1 when it closed the period, 0 when it (or a later one) was closed already.

local last = redis.call('HGET', KEYS[1], ARGV[1])
if last and last >= ARGV[2] then
  return 0
end
if ARGV[1] == 'w' then
  local following = redis.call('HGET', KEYS[1], 'w:start')
  if following and following ~= ARGV[7] then
    return 0
  end
end

local counts = redis.call('HMGET', KEYS[2], 'pageviews', 'visits', 'visitors', 'carried')
local pageviews = tonumber(counts[1]) or 0
local visits = tonumber(counts[2]) or 0
-- "carried": a week rebuilt after a change of week start keeps the visitors of its days that
-- were closed then beside its HLL (store/lua/weeks.lua).
local visitors = tonumber(counts[3])
  or redis.call('PFCOUNT', KEYS[3]) + (tonumber(counts[4]) or 0)
if pageviews > 0 or visits > 0 or visitors > 0 then
  redis.call('HSET', KEYS[4], ARGV[2], pageviews .. ' ' .. visits .. ' ' .. visitors)
end
-- The open windows (yesterday, last_week, last_month) read the frozen number from now on; and
-- the field marks the period closed, empty or not, so that a hit reaching it late counts in
-- the periods still open instead (store/lua/hit.lua).
redis.call('HSET', KEYS[2], 'visitors', visitors)
redis.call('DEL', KEYS[3])
-- A closed list keeps each page's own count (less what it inherited), and its top only.
local errors = redis.call('HGETALL', KEYS[9])
for i = 1, #errors, 2 do
  local count = redis.call('ZSCORE', KEYS[7], errors[i])
  if count then
    redis.call('ZADD', KEYS[7], math.max(0, tonumber(count) - tonumber(errors[i + 1])), errors[i])
  end
end
redis.call('DEL', KEYS[9])
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
  redis.call('DEL', KEYS[5], KEYS[6], KEYS[10], KEYS[11], KEYS[12])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
