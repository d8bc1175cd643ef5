-- Reads the online count and every requested window of one site in one atomic step.
-- KEYS[1]    online sorted set: visitor id -> last seen (ms)
-- KEYS[2..]  pairs (counts hash, visitors HyperLogLog), one pair per window
-- ARGV[1]    online since, ms: visitors last seen at or after this are online
-- Returns {online, pageviews_1, visits_1, visitors_1, pageviews_2, ...}.
-- A closed period may carry its visitors frozen in the hash; that number wins over the HLL.

local out = { redis.call('ZCOUNT', KEYS[1], ARGV[1], '+inf') }
for i = 2, #KEYS, 2 do
  local counts = redis.call('HMGET', KEYS[i], 'pageviews', 'visits', 'visitors')
  out[#out + 1] = tonumber(counts[1]) or 0
  out[#out + 1] = tonumber(counts[2]) or 0
  out[#out + 1] = tonumber(counts[3]) or redis.call('PFCOUNT', KEYS[i + 1])
end
return out
