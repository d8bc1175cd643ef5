-- Resets windows of one site by moving their keys aside, so that an undo can bring them back.
-- KEYS[1]           the reset's record (hash)
-- KEYS[2 .. 1+n]    the n keys of the periods reset (counts hash, visitors HyperLogLog, pages
--                   and referrers sorted sets, and pages' errors hash of each)
-- KEYS[2+n ..]      the keys they are moved to, in the same order
-- ARGV[1]           how long the moved keys and the record are kept, seconds
-- ARGV[2..]         field, value pairs of the record
-- Returns how many keys were moved.

local n = (#KEYS - 1) / 2
local moved = 0
for i = 2, 1 + n do
  local aside = KEYS[i + n]
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('RENAME', KEYS[i], aside)
    redis.call('EXPIRE', aside, ARGV[1])
    moved = moved + 1
  end
end
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return moved
