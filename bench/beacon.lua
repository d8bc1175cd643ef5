-- wrk script: POST /api/v1/hit as a browser's navigator.sendBeacon sends it.
--
-- Every request is a page view of site "demo" on a new page path, from a new
-- client address in X-Forwarded-For (the server must trust one proxy:
-- ANALYTICS_TRUSTED_PROXIES=1). So every hit is a new visitor on a new page:
-- none is a reload (10 s guard) and no visitor or address reaches its per-minute
-- limit, and each one runs the whole counting script (all four windows).
--
-- Usage: wrk -t2 -c16 -d10s -s bench/beacon.lua http://127.0.0.1:PORT/api/v1/hit [-- FIRST SITES]
--
-- Optional arguments: FIRST, the number of the first wrk thread (default 0), so that a second
-- run on the same Redis sends other visitors and pages (give it the first run's thread count);
-- SITES, site ids separated by commas, taken in turn (default "demo").

local here = debug.getinfo(1, "S").source:match("^@(.*[/\\])") or "./"
dofile(here .. "report.lua")

local UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
  .. "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"

local threads = 0

function setup(thread)
  thread:set("thread_id", threads)
  threads = threads + 1
end

-- Per thread (each wrk thread has its own Lua state).
local n = 0

local sites = { "demo" }

function init(args)
  thread_id = (thread_id or 0) + (tonumber(args[1]) or 0)
  if args[2] and args[2] ~= "" then
    sites = {}
    for site in string.gmatch(args[2], "[^,]+") do sites[#sites + 1] = site end
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "text/plain;charset=UTF-8"
  wrk.headers["User-Agent"] = UA
  wrk.headers["Origin"] = "https://example.vn"
  wrk.headers["Accept-Language"] = "vi-VN,vi;q=0.9,en;q=0.8"
end

function request()
  n = n + 1
  -- Address 10.T.X.Y: T the wrk thread, X.Y a per-thread counter (65536 before reuse,
  -- far more than one run sends in a minute per thread).
  local ip = string.format("10.%d.%d.%d", thread_id % 256, math.floor(n / 256) % 256, n % 256)
  local path = string.format("/tin-tuc/%d/%d", thread_id, n)
  local body = string.format(
    '{"site":"%s","url":"https://example.vn%s","referrer":"https://www.google.com/","type":"pageview"}',
    sites[n % #sites + 1], path)
  wrk.headers["X-Forwarded-For"] = ip
  wrk.headers["Referer"] = "https://example.vn" .. path
  return wrk.format(nil, nil, nil, body)
end
