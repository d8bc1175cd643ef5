-- The top of one capped list (pages or referrers): the most viewed entries, ties by name.
-- KEYS[1]  sorted set: entry -> views
-- ARGV[1]  how many entries at most
-- Returns entry, views, entry, views, ...: every entry viewed more than the last one listed
-- (in any order), then the entries tied with the last one, by name, up to ARGV[1] in all.

local limit = tonumber(ARGV[1])
local top = redis.call('ZREVRANGE', KEYS[1], 0, limit - 1, 'WITHSCORES')
if #top < 2 * limit then
  return top
end
-- Redis orders a tie by name backwards here: the entries tied with the last one are read
-- again, forwards, so that a tie cut by the limit keeps the first names.
local last = top[#top]
local found = {}
for i = 1, #top, 2 do
  if tonumber(top[i + 1]) > tonumber(last) then
    found[#found + 1] = top[i]
    found[#found + 1] = top[i + 1]
  end
end
local tied = redis.call('ZRANGEBYSCORE', KEYS[1], last, last, 'WITHSCORES', 'LIMIT', 0,
  limit - #found / 2)
for i = 1, #tied do found[#found + 1] = tied[i] end
return found
