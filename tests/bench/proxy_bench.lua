-- proxy_bench.lua — wrk script: POST TensorZero ChatInference rows (~400 bytes each) as
-- "INSERT INTO ChatInference FORMAT JSONEachRow" with the rows in the body, the gateway's
-- shape. BENCH_ROWS rows per request (default 1), database BENCH_DB (default bench);
-- BENCH_PING=1: GET /ping.
local rows = tonumber(os.getenv("BENCH_ROWS") or "1")
local db = os.getenv("BENCH_DB") or "bench"
local row = '{"id":"0192ced0-947e-74b3-a3d7-02fd2c54d637","function_name":"draft_email",' ..
  '"variant_name":"gpt4o_mini_v2","episode_id":"0192ced0-947e-74b3-a3d7-02fd2c54d600",' ..
  '"input":"{\\"system\\":{\\"tone\\":\\"friendly\\"},\\"messages\\":[{\\"role\\":\\"user\\",' ..
  '\\"content\\":[{\\"type\\":\\"text\\",\\"text\\":\\"Write a short reply to Bob.\\"}]}]}",' ..
  '"output":"[{\\"type\\":\\"text\\",\\"text\\":\\"Hi Bob, thanks for the note!\\"}]",' ..
  '"tool_params":"","inference_params":"{\\"chat_completion\\":{\\"temperature\\":0.2}}",' ..
  '"processing_time_ms":412,"tags":"{\\"user\\":\\"u-17\\"}","ttft_ms":null}'
local lines = {}
for i = 1, rows do lines[i] = row end
wrk.method = "POST"
wrk.path = "/?database=" .. db .. "&input_format_skip_unknown_fields=0"
wrk.headers["X-ClickHouse-User"] = "default"
wrk.headers["X-ClickHouse-Key"] = ""
wrk.body = "INSERT INTO ChatInference\nFORMAT JSONEachRow\n" .. table.concat(lines, "\n")
if os.getenv("BENCH_PING") then
  -- GET /ping instead: it touches neither the WAL nor a sink, so its latency is the loop's.
  wrk.method = "GET"
  wrk.path = "/ping"
  wrk.body = nil
end

done = function(summary, latency, requests)
  io.write(string.format("BENCH requests=%d non2xx=%d sockerr=%d duration_us=%d p50_us=%d p99_us=%d " ..
    "p999_us=%d max_us=%d\n",
    summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration, latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    latency.max))
end
