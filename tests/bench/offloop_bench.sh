#!/usr/bin/env bash
# offloop_bench.sh — small-INSERT latency while large bodies arrive (a benchmark, not a test).
# wrk POSTs one ~400-byte ChatInference row per request (proxy_bench.lua, 16 connections) for
# SECONDS, alone, then while a second client POSTs a 64 MiB JSONEachRow body in a loop, then
# while it POSTs the same body gzip'd; for each, p50/p99/p999/max of the small inserts and how
# many large bodies were taken. sluice runs with a clickhouse sink (a Debian clickhouse-server
# 18.16 on loopback) that is paused, so the figures are the proxy's and the WAL's, not
# ClickHouse parsing 64 MiB. With SLUICE_BIN_BEFORE set, each figure is measured for both
# builds in turn in the same window. A second pass measures GET /ping (4 connections) under
# the same loads: /ping touches neither the WAL nor a sink, so its tail is the loop's alone,
# while an INSERT's also holds the WAL writer's time (a 64 MiB record is one commit). BENCH_SYNC: the wal.sync modes to run (default
# "none,always"; none keeps WAL commit-path changes out of the comparison), BENCH_LOADS which
# loads (default "alone,64MiB,64MiB-gzip").
# Usage: tests/bench/offloop_bench.sh [SECONDS]   (SLUICE_BIN defaults to build/sluice)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
export SLUICE_SOURCE="$src" BENCH_SECS="${1:-10}" BENCH_LUA="$here/proxy_bench.lua"
export SLUICE_BIN="${SLUICE_BIN:-$src/build/sluice}" SLUICE_BIN_BEFORE="${SLUICE_BIN_BEFORE:-}"
export BENCH_SYNC="${BENCH_SYNC:-none,always}" BENCH_LOADS="${BENCH_LOADS:-alone,64MiB,64MiB-gzip}"
command -v wrk >/dev/null || { echo "offloop_bench: wrk is not installed"; exit 1; }
exec python3 -u - <<'PY'
import gzip, http.client, os, re, subprocess, sys, threading, time
sys.path.insert(0, os.path.join(os.environ["SLUICE_SOURCE"], "tests", "e2e"))
import harness as h

secs = int(os.environ["BENCH_SECS"])
lua = os.environ["BENCH_LUA"]
builds = [("after", os.environ["SLUICE_BIN"])]
if os.environ["SLUICE_BIN_BEFORE"]:
    builds.insert(0, ("before", os.environ["SLUICE_BIN_BEFORE"]))
syncs = [s for s in os.environ["BENCH_SYNC"].split(",") if s]
ROW = ('{"id":"0192ced0-947e-74b3-a3d7-02fd2c54d637","function_name":"draft_email",'
       '"variant_name":"gpt4o_mini_v2","episode_id":"0192ced0-947e-74b3-a3d7-02fd2c54d600",'
       '"input":"{\\"system\\":{\\"tone\\":\\"friendly\\"},\\"messages\\":[{\\"role\\":\\"user\\",'
       '\\"content\\":[{\\"type\\":\\"text\\",\\"text\\":\\"Write a short reply to Bob.\\"}]}]}",'
       '"output":"[{\\"type\\":\\"text\\",\\"text\\":\\"Hi Bob, thanks for the note!\\"}]",'
       '"tool_params":"","inference_params":"{\\"chat_completion\\":{\\"temperature\\":0.2}}",'
       '"processing_time_ms":412,"tags":"{\\"user\\":\\"u-17\\"}","ttft_ms":null}\n').encode()
BIG = ROW * ((64 << 20) // len(ROW))
BIG_GZ = gzip.compress(BIG, 6)
LARGE = {"alone": None, "64MiB": (BIG, {}), "64MiB-gzip": (BIG_GZ, {"Content-Encoding": "gzip"})}
LARGE = {k: LARGE[k] for k in os.environ["BENCH_LOADS"].split(",") if k}
QUERY = "/?database=bench&query=INSERT%20INTO%20ChatInference%20FORMAT%20JSONEachRow"

def wrk(url, conns, dur, ping=False):
    env = dict(os.environ, BENCH_ROWS="1")
    if ping:
        env["BENCH_PING"] = "1"
    out = subprocess.run(["wrk", "-t2", "-c%d" % conns, "-d%ds" % dur, "--timeout", "10s",
                          "-s", lua, url + "/"], capture_output=True, text=True, env=env).stdout
    m = re.search(r"BENCH requests=(\d+) non2xx=(\d+) sockerr=(\d+) duration_us=(\d+) "
                  r"p50_us=(\d+) p99_us=(\d+) p999_us=(\d+) max_us=(\d+)", out)
    if not m:
        raise RuntimeError("wrk output not understood:\n" + out)
    req, non2xx, sockerr, dur_us, p50, p99, p999, mx = map(int, m.groups())
    return {"rps": req / (dur_us / 1e6), "p50": p50 / 1e3, "p99": p99 / 1e3,
            "p999": p999 / 1e3, "max": mx / 1e3, "errors": non2xx + sockerr}

class Large(threading.Thread):
    """POSTs body in a loop on one keep-alive connection until stopped."""
    def __init__(self, port, body, headers):
        super().__init__(daemon=True)
        self.port, self.body, self.headers = port, body, headers
        self.stop_ev = threading.Event()
        self.ok = self.failed = 0
        self.secs = []

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        while not self.stop_ev.is_set():
            t0 = time.monotonic()
            try:
                conn.request("POST", QUERY, self.body, self.headers)
                r = conn.getresponse()
                r.read()
                if r.status == 200:
                    self.ok += 1
                else:
                    self.failed += 1
            except (OSError, http.client.HTTPException):
                self.failed += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            self.secs.append(time.monotonic() - t0)
        conn.close()

td = h.TempDir("sluice-offloop-bench-")
procs = []
try:
    ch = h.ClickHouse18(td.sub("ch"))
    ch.query("CREATE DATABASE IF NOT EXISTS bench")
    ch.query(h.BENCH_SCHEMA)
    print("%d s per run, 16 connections of one-row INSERTs; large body %.1f MiB (%.1f MiB "
          "gzip'd); load average at start %s (a shared 2-core machine: compare figures of this "
          "run only)" % (secs, len(BIG) / 2**20, len(BIG_GZ) / 2**20,
                         open("/proc/loadavg").read().split()[0]))
    print("%-6s %-12s %-6s %-6s %9s %8s %8s %8s %8s %7s %12s" % (
        "sync", "load", "build", "req", "req/s", "p50 ms", "p99 ms", "p999 ms", "max ms", "errors",
        "large ok/err"))
    for sync in syncs:
        inst = {}
        for name, binpath in builds:
            h.SLUICE_BIN = binpath
            s = h.Sluice(td.sub("%s-%s" % (name, sync)), h.bench_config(ch.url, sync, "16GiB", "  max_body_bytes: 80MiB\n"))
            procs.append(s)
            st, _, body = h.http_request(s.admin_url + "/v1/sinks/ch/pause", "POST", b"")
            assert st == 200, body
            inst[name] = s
        for load, large in LARGE.items():
            for name, _ in builds:
                s = inst[name]
                t = None
                if large:
                    t = Large(s.port, large[0], large[1])
                    t.start()
                    time.sleep(0.5)  # the first large body is on its way
                r = wrk(s.url, 16, secs)
                rp = wrk(s.url, 4, max(2, secs // 2), ping=True)
                ok = err = 0
                if t:
                    t.stop_ev.set()
                    t.join()
                    ok, err = t.ok, t.failed
                for what, x in (("insert", r), ("ping", rp)):
                    print("%-6s %-12s %-6s %-6s %9.0f %8.2f %8.2f %8.2f %8.1f %7d %12s" % (
                        sync, load, name, what, x["rps"], x["p50"], x["p99"], x["p999"],
                        x["max"], x["errors"], "%d/%d" % (ok, err) if t else "-"), flush=True)
        for s in inst.values():
            s.stop()
            procs.remove(s)
            subprocess.run(["rm", "-rf", s.wal_dir])
    ch.stop()
finally:
    for s in procs:
        s.stop()
    td.close()
PY
