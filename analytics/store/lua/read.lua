-- Reads the online count and every requested window of one site in one atomic step, with the
-- days imported from an earlier counter that the windows cover added in.
-- KEYS[1]       online sorted set: visitor id -> last seen (ms)
-- KEYS[2..]     pairs (counts hash, visitors HyperLogLog), one pair per window
-- KEYS[#KEYS-1] with imports only: the imported days hash (date -> "pageviews visits visitors")
-- KEYS[#KEYS]   with imports only: the imported sums hash (pageviews, visits, visitors)
-- ARGV[1]       online since, ms: visitors last seen at or after this are online
-- ARGV[2..]     imports, when given: per window, "t" (the imported sums), or a count n followed
--               by the n dates (YYYY-MM-DD) the window covers
-- Returns {online, pageviews_1, visits_1, visitors_1, pageviews_2, ...}.
-- A closed period may carry its visitors frozen in the hash; that number wins over the HLL.
-- A week rebuilt after a change of week start (store/lua/weeks.lua) keeps the visitors of its
-- days closed before in "carried", added to its HLL's count.
-- A site that never imported a day has no imported sums hash: its imports are not looked up.

local imports = #ARGV > 1
local last = #KEYS
if imports then
  last = #KEYS - 2
end
local out = { redis.call('ZCOUNT', KEYS[1], ARGV[1], '+inf') }
for i = 2, last, 2 do
  local counts = redis.call('HMGET', KEYS[i], 'pageviews', 'visits', 'visitors', 'carried')
  out[#out + 1] = tonumber(counts[1]) or 0
  out[#out + 1] = tonumber(counts[2]) or 0
  out[#out + 1] = tonumber(counts[3])
    or redis.call('PFCOUNT', KEYS[i + 1]) + (tonumber(counts[4]) or 0)
end
if not imports or redis.call('EXISTS', KEYS[#KEYS]) == 0 then
  return out
end

local a = 2
for w = 1, (last - 1) / 2 do
  local at = 2 + (w - 1) * 3
  if ARGV[a] == 't' then
    local sums = redis.call('HMGET', KEYS[#KEYS], 'pageviews', 'visits', 'visitors')
    for m = 0, 2 do
      out[at + m] = out[at + m] + (tonumber(sums[m + 1]) or 0)
    end
    a = a + 1
  else
    local n = tonumber(ARGV[a])
    if n > 0 then
      local days = redis.call('HMGET', KEYS[#KEYS - 1], unpack(ARGV, a + 1, a + n))
      for _, day in ipairs(days) do
        if day then
          local p, v, u = string.match(day, '^(%d+) (%d+) (%d+)$')
          out[at] = out[at] + tonumber(p)
          out[at + 1] = out[at + 1] + tonumber(v)
          out[at + 2] = out[at + 2] + tonumber(u)
        end
      end
    end
    a = a + 1 + n
  end
end
return out
