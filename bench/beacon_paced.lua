-- wrk script: the beacon of bench/beacon.lua, paced: each connection waits before each request.
--
-- Arguments: FIRST SITES (as for beacon.lua) and PAUSE, the milliseconds a connection waits
-- before each request, a fraction allowed: connections * 1000 / target rate. wrk takes whole
-- milliseconds, so the fractions are carried over from one request to the next.
--
-- Usage: wrk -t2 -c32 -d10s -s bench/beacon_paced.lua URL -- FIRST SITES PAUSE
-- wrk times a request from when it is sent: a server that falls behind delays the next
-- requests instead of seeing them queue (no coordinated-omission correction, unlike wrk2).

local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./"
dofile(here .. "beacon.lua")

local beacon_init = init
local pause = 0
local carried = 0

function init(args)
  beacon_init(args)
  pause = tonumber(args[3]) or 0
end

function delay()
  carried = carried + pause
  local whole = math.floor(carried)
  carried = carried - whole
  return whole
end
