-- One page's own views in several periods, read at one instant: its count in each period's
-- pages list less what it inherited on entering the list when it was full.
-- KEYS[2i-1], KEYS[2i]  the pages sorted set and the pages' errors hash of period i
-- ARGV[1]               the page's path
-- Returns one count per period, 0 where the page is not listed.

local views = {}
for i = 1, #KEYS, 2 do
  local count = tonumber(redis.call('ZSCORE', KEYS[i], ARGV[1])) or 0
  local inherited = tonumber(redis.call('HGET', KEYS[i + 1], ARGV[1])) or 0
  views[#views + 1] = math.max(0, count - inherited)
end
return views
