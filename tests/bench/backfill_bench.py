#!/usr/bin/env python3
"""backfill_bench.py - rows/s of `sluice backfill` from clickhouse-server 18.16 into the
StarRocks emulator, for several slice settings (issue 18: 1h slices must not be slower than
1d). Not a test: it prints numbers.

  python3 tests/bench/backfill_bench.py [--rows 200000] [--days 10] [--old OLD_SLUICE_BIN]

Each run gets a fresh config dir (so a fresh WAL, log id and labels) and an emptied emulator
table. --old runs a binary built before issue 18 with the settings it knew (one slice in
flight, fixed slices)."""
import argparse
import calendar
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import harness as H  # noqa: E402

DB = "bench"
BASE = calendar.timegm((2024, 3, 1, 0, 0, 0))
DDL = ("CREATE TABLE %s.ev (id UInt64, ts DateTime, function_name String, episode_id String, "
       "input String, output String, v Float64) ENGINE = MergeTree ORDER BY (ts, id)" % DB)
SR = {DB + ".ev": [["id", "BIGINT"], ["ts", "DATETIME"], ["function_name", "VARCHAR(256)"],
                   ["episode_id", "VARCHAR(64)"], ["input", "VARCHAR(4096)"],
                   ["output", "VARCHAR(4096)"], ["v", "DOUBLE"]]}

CONFIG = """wal: {dir: %s}
proxy: {listen: "127.0.0.1:%d", passthrough_url: "http://127.0.0.1:9"}
admin: {listen: "127.0.0.1:%d"}
log: {level: warn}
sinks:
  - {name: sr, type: starrocks, url: "%s", password: "", batch: {max_rows: 10000}}
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200000)
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--old", help="a sluice binary from before issue 18")
    ap.add_argument("--only", help="run only the settings whose name contains this")
    ap.add_argument("--repeat", type=int, default=1, help="run each setting this often")
    a = ap.parse_args()
    tmp = H.TempDir("sluice-bench-")
    try:
        ch = H.ClickHouse18(tmp.sub("ch"))
        ch.query("CREATE DATABASE " + DB)
        ch.query(DDL)
        span = a.days * 86400
        for lo in range(0, a.rows, 50000):
            body = "".join(json.dumps({
                "id": i, "ts": time.strftime("%Y-%m-%d %H:%M:%S",
                                             time.gmtime(BASE + i * span // a.rows)),
                "function_name": "tensorzero::fn_%d" % (i % 17), "episode_id": "%032x" % i,
                "input": '{"messages":[{"role":"user","content":"question %d"}]}' % i,
                "output": '[{"type":"text","text":"answer %d"}]' % i, "v": i * 0.5}) + "\n"
                for i in range(lo, min(a.rows, lo + 50000)))
            ch.query("INSERT INTO %s.ev FORMAT JSONEachRow" % DB, data=body.encode())
        sr = H.StarRocksEmulator(tmp.sub("sr"), SR)
        runs = []
        if a.old:
            runs += [("before: --slice 1h", a.old, ["--slice", "1h"]),
                     ("before: --slice 1d", a.old, ["--slice", "1d"])]
        runs += [("now: --slice 1h --parallel 1 --max-slice 1h (as before)", H.SLUICE_BIN,
                  ["--slice", "1h", "--parallel", "1", "--max-slice", "1h"]),
                 ("now: --slice 1d --parallel 1", H.SLUICE_BIN, ["--slice", "1d", "--parallel", "1"]),
                 ("now: --slice 1h (cells merged, 2 in flight: default)", H.SLUICE_BIN,
                  ["--slice", "1h"]),
                 ("now: --slice 1d (2 in flight)", H.SLUICE_BIN, ["--slice", "1d"]),
                 ("now: --slice 1h --parallel 4", H.SLUICE_BIN, ["--slice", "1h", "--parallel", "4"])]
        print("%d rows over %d days, clickhouse-server 18.16 -> StarRocks emulator, %d cores"
              % (a.rows, a.days, os.cpu_count()))
        runs = [r for r in runs if not a.only or a.only in r[0]] * a.repeat
        for k, (name, binary, extra) in enumerate(runs):
            H.http_request(sr.url + "/_emu/rows?table=%s.ev" % DB, "DELETE")
            d = tmp.sub("run%d" % k)
            cfg = os.path.join(d, "sluice.yaml")
            with open(cfg, "w") as f:
                f.write(CONFIG % (os.path.join(d, "wal"), H.free_port(), H.free_port(), sr.url))
            t0 = time.time()
            r = subprocess.run([binary, "backfill", "--config", cfg, "--source", ch.url, "--sink",
                                "sr", "--table", DB + ".ev", "--time-column", "ts", "--until",
                                str(BASE + span)] + extra, capture_output=True, timeout=1800)
            dt = time.time() - t0
            n = sr.count(DB + ".ev")
            ok = r.returncode == 0 and n == a.rows
            print("%-56s %7.1f s  %7.0f rows/s%s" % (name, dt, a.rows / dt,
                                                     "" if ok else "  FAILED rc=%d rows=%d %s" % (
                                                         r.returncode, n, r.stderr[-300:])))
            sys.stdout.flush()
    finally:
        tmp.close()


if __name__ == "__main__":
    main()
