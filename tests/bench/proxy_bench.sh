#!/usr/bin/env bash
# proxy_bench.sh — ingest benchmark (not a test): wrk POSTs TensorZero ChatInference rows as
# INSERT ... FORMAT JSONEachRow, 16 keep-alive connections for 10 s, then 64 connections,
# then 10 rows per request; the same load goes to sluice (wal.sync: always, a clickhouse
# sink delivering to the same server) and straight to a Debian clickhouse-server 18.16 that
# this script starts on free loopback ports. Prints req/s, rows/s, p50/p99 and sluice's RSS.
# Usage: tests/bench/proxy_bench.sh [SECONDS]   (SLUICE_BIN overrides build/sluice;
# BENCH_SYNC=none|interval measures without the per-commit fsync: the proxy's own ceiling)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
export SLUICE_SOURCE="$src" BENCH_SECS="${1:-10}" BENCH_LUA="$here/proxy_bench.lua"
export SLUICE_BIN="${SLUICE_BIN:-$src/build/sluice}"
command -v wrk >/dev/null || { echo "proxy_bench: wrk is not installed (apt-get install wrk)"; exit 1; }
exec python3 -u - <<'PY'
import os, re, subprocess, sys
sys.path.insert(0, os.path.join(os.environ["SLUICE_SOURCE"], "tests", "e2e"))
import harness as h

secs = int(os.environ["BENCH_SECS"])
lua = os.environ["BENCH_LUA"]

def rss_kib(pid, field="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0

def wrk(url, conns, rows):
    env = dict(os.environ, BENCH_ROWS=str(rows))
    out = subprocess.run(["wrk", "-t2", "-c%d" % conns, "-d%ds" % secs, "--timeout", "10s",
                          "-s", lua, url], capture_output=True, text=True, env=env).stdout
    m = re.search(r"BENCH requests=(\d+) non2xx=(\d+) sockerr=(\d+) duration_us=(\d+) "
                  r"p50_us=(\d+) p99_us=(\d+)", out)
    if not m:
        raise RuntimeError("wrk output not understood:\n" + out)
    req, non2xx, sockerr, dur, p50, p99 = map(int, m.groups())
    rps = req / (dur / 1e6)
    return {"rps": rps, "rows": rps * rows, "p50": p50 / 1000.0, "p99": p99 / 1000.0,
            "errors": non2xx + sockerr}

td = h.TempDir("sluice-bench-")
try:
    ch = h.ClickHouse18(td.sub("ch"))
    ch.query("CREATE DATABASE IF NOT EXISTS bench")
    ch.query(h.BENCH_SCHEMA)
    sync = os.environ.get("BENCH_SYNC", "always")
    print("sluice wal.sync: %s; %d s per run; load average %s" % (
        sync, secs, open("/proc/loadavg").read().split()[0]))
    s = h.Sluice(td.sub("sluice"), h.bench_config(ch.url, sync))
    runs = [("16 conns, 1 row/req", 16, 1), ("64 conns, 1 row/req", 64, 1),
            ("16 conns, 10 rows/req", 16, 10)]
    print("%-24s %-7s %10s %11s %9s %9s %8s  %s" % ("load", "target", "req/s", "rows/s",
                                                    "p50 ms", "p99 ms", "errors",
                                                    "RSS MiB (=anon+file)"))
    for name, conns, rows in runs:
        for target, url in (("sluice", s.url), ("ch18", ch.url)):
            r = wrk(url + "/", conns, rows)
            # RSS = anonymous (heap: proxy, wal, sinks) + file-backed (LMDB's mapped pages,
            # page cache the kernel can drop); both shown.
            rss = "%.1f=%.1f+%.1f" % (rss_kib(s.proc.pid) / 1024.0,
                                      rss_kib(s.proc.pid, "RssAnon") / 1024.0,
                                      rss_kib(s.proc.pid, "RssFile") / 1024.0) \
                if target == "sluice" else "-"
            print("%-24s %-7s %10.0f %11.0f %9.2f %9.2f %8d  %s" % (
                name, target, r["rps"], r["rows"], r["p50"], r["p99"], r["errors"], rss), flush=True)
    print("sluice peak RSS (VmHWM): %.1f MiB" % (rss_kib(s.proc.pid, "VmHWM") / 1024.0))
    _, out, _ = s.cli("wal", "stats", "--dir", s.wal_dir, check=False)
    s.stop()
    ch.stop()
finally:
    td.close()
PY
