-- Counts one failed authentication of a network and says how many it has had in the last
-- minute, in one atomic call: the count is what decides, so that a burst of failures sent at
-- once sees exactly the limit checked. The window slides over two one-minute buckets: this
-- minute's count, and the previous minute's weighted by the share of it still in the window.
-- KEYS[1]  this minute's count of the network (a keyed hash of it, never its address)
-- KEYS[2]  the previous minute's count
-- ARGV[1]  the share of the previous minute still in the window, per 60,000 (ms left of it)
-- ARGV[2]  how long a bucket is kept, ms (its own minute and the next)
-- Returns the failures in the window, this one included.
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local previous = tonumber(redis.call('GET', KEYS[2]) or '0')
return count + math.floor(previous * tonumber(ARGV[1]) / 60000)
