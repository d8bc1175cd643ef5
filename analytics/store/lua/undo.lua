-- Undoes a reset: adds what it moved aside back onto the live keys, keeping hits since.
-- KEYS[1]           the reset's record (hash)
-- KEYS[2]           the site's closed hash: per grain, the name of the last period closed
-- KEYS[3 .. 2+5p]   the live keys of the p periods: (counts hash, visitors HyperLogLog, pages
--                   sorted set, referrers sorted set, pages' errors hash) each
-- KEYS[3+5p ..]     the keys the reset moved them to, in the same order
-- ARGV[1], ARGV[2]  how many entries a pages list and a referrers list keep at most
-- ARGV[3 ..]        pairs (grain, name) of the periods, in the same order
-- Returns 1 when undone, 0 when it was undone already, -1 when there is no such reset, and
-- -2 when one of its periods has been closed since: its counts are frozen into the history
-- and its HyperLogLog is gone, so adding back could not be exact; nothing is changed then.

if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
if redis.call('HGET', KEYS[1], 'undone') == '1' then
  return 0
end
for i = 3, #ARGV, 2 do
  local last = redis.call('HGET', KEYS[2], ARGV[i])
  if last and last >= ARGV[i + 1] then
    return -2
  end
end
-- Pages and referrers added back, as many as a list keeps: the most viewed; with the pages,
-- what each inherited (``errors``), kept for the pages still listed.
local function add_list(live, aside, cap, errors, errors_aside)
  if redis.call('EXISTS', aside) == 1 then
    redis.call('ZUNIONSTORE', live, 2, live, aside)
    redis.call('ZREMRANGEBYRANK', live, 0, -1 - cap)
    redis.call('DEL', aside)
  end
  if errors then
    local inherited = redis.call('HGETALL', errors_aside)
    for i = 1, #inherited, 2 do
      redis.call('HINCRBY', errors, inherited[i], inherited[i + 1])
    end
    redis.call('DEL', errors_aside)
    -- Only pages still listed keep what they inherited.
    local kept = redis.call('HKEYS', errors)
    for i = 1, #kept do
      if not redis.call('ZSCORE', live, kept[i]) then redis.call('HDEL', errors, kept[i]) end
    end
  end
end

local n = (#KEYS - 2) / 2
for i = 3, 2 + n, 5 do
  local counts, visitors = KEYS[i], KEYS[i + 1]
  local counts_aside, visitors_aside = KEYS[i + n], KEYS[i + 1 + n]
  add_list(KEYS[i + 2], KEYS[i + 2 + n], tonumber(ARGV[1]), KEYS[i + 4], KEYS[i + 4 + n])
  add_list(KEYS[i + 3], KEYS[i + 3 + n], tonumber(ARGV[2]), nil, nil)
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
