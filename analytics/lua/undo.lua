-- Undoes a reset: adds what it moved aside back onto the live keys, keeping hits since.
-- KEYS[1]           the reset's record (hash)
-- KEYS[2 .. 1+2n]   pairs (counts hash, visitors HyperLogLog) of the live periods
-- KEYS[2+2n ..]     pairs of the keys the reset moved them to, in the same order
-- Returns 1 when undone, 0 when it was undone already, -1 when there is no such reset.

if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
if redis.call('HGET', KEYS[1], 'undone') == '1' then
  return 0
end
local n = (#KEYS - 1) / 2
for i = 2, 1 + n, 2 do
  local counts, visitors = KEYS[i], KEYS[i + 1]
  local counts_aside, visitors_aside = KEYS[i + n], KEYS[i + 1 + n]
  local fields = redis.call('HGETALL', counts_aside)
  for f = 1, #fields, 2 do
    if fields[f] ~= 'visitors' then
      redis.call('HINCRBY', counts, fields[f], fields[f + 1])
    end
  end
  if redis.call('EXISTS', visitors_aside) == 1 then
    redis.call('PFMERGE', visitors, visitors, visitors_aside)
  end
  redis.call('DEL', counts_aside, visitors_aside)
end
redis.call('HSET', KEYS[1], 'undone', '1')
return 1
