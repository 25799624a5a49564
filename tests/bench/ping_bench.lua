-- ping_bench.lua — wrk script: GET /ping, printing the same BENCH line as proxy_bench.lua.
-- /ping touches neither the WAL nor a sink, so its latency is the proxy loop's alone.
wrk.method = "GET"
wrk.path = "/ping"

done = function(summary, latency, requests)
  io.write(string.format("BENCH requests=%d non2xx=%d sockerr=%d duration_us=%d p50_us=%d p99_us=%d " ..
    "p999_us=%d max_us=%d\n",
    summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration, latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    latency.max))
end
