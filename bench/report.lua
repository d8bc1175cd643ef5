-- wrk's done(): one parseable line with the figures bench.load reads.
-- Used alone for the baseline (wrk -s bench/report.lua URL) and loaded by beacon.lua.
-- Times are in microseconds; errors_status counts answers that were not 2xx or 3xx.

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%d duration_us=%d bytes=%d"
      .. " p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%.1f"
      .. " errors_connect=%d errors_read=%d errors_write=%d errors_status=%d errors_timeout=%d\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
