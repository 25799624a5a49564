#!/usr/bin/env python3
"""sink_bench.py - drain-rate benchmark of the sinks (issue 5; not a test).

Pre-fills a log with N TensorZero-shaped rows (~400 B) through `sink_bench fill`, then
drains it with one ClickHouse sink (Debian's clickhouse-server 18.16) and measures rows/s
until the cursor reaches the end (`sink_bench drain`); in the same run loads the same rows
with one bulk `curl --data-binary @file` INSERT straight into ClickHouse. Then the same
against the StarRocks emulator (one curl Stream Load). Prints a small table.

    python3 tests/bench/sink_bench.py [--rows 1000000] [--bin build/sink_bench]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import harness as H  # noqa: E402

CH_DDL = """CREATE TABLE bench.ChatInference (id UUID, function_name String,
 variant_name String, episode_id UUID, input String, output String, inference_params String,
 processing_time_ms Nullable(UInt32), tags String, timestamp DateTime)
 ENGINE = MergeTree ORDER BY (function_name, variant_name, episode_id)"""
SR_TABLES = {"bench.ChatInference": [
    ["id", "VARCHAR(36)"], ["function_name", "VARCHAR(256)"], ["variant_name", "VARCHAR(256)"],
    ["episode_id", "VARCHAR(36)"], ["input", "VARCHAR(65533)"], ["output", "VARCHAR(65533)"],
    ["inference_params", "VARCHAR(65533)"], ["processing_time_ms", "INT"],
    ["tags", "VARCHAR(65533)"], ["timestamp", "DATETIME"]]}

CFG = """wal:
  dir: %(wal)s
  max_bytes: 4GiB
proxy:
  passthrough_url: http://127.0.0.1:9
log:
  level: warn
sinks:
  - name: %(name)s
    type: %(type)s
    url: %(url)s
    user: %(user)s
    password: "%(pw)s"
    batch:
      max_rows: %(rows)d
      max_bytes: 16MiB
      max_wait_ms: 50
    request_timeout_ms: 600000
"""


def run(argv, **kw):
    t0 = time.time()
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError("%s -> %d\n%s%s" % (argv, r.returncode, r.stdout, r.stderr))
    return r.stdout, time.time() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1000000)
    ap.add_argument("--batch-rows", type=int, default=10000)
    ap.add_argument("--bin", default=os.path.join(H.SRC, "build", "sink_bench"))
    ap.add_argument("--skip-emulator", action="store_true")
    a = ap.parse_args()
    tmp = H.TempDir("sluice-bench-")
    results = []
    try:
        data = os.path.join(tmp.path, "rows.jsonl")
        wal = os.path.join(tmp.path, "wal")
        out, dt = run([a.bin, "fill", "--dir", wal, "--rows", str(a.rows), "--db", "bench",
                       "--table", "ChatInference", "--out", data])
        info = json.loads(out)
        print("filled %d rows, %.1f MB, in %.1fs" % (info["rows"], info["bytes"] / 1e6, dt),
              flush=True)

        # ---- ClickHouse 18.16 ----
        ch = H.ClickHouse18(tmp.sub("ch"))
        ch.query("CREATE DATABASE bench")
        ch.query(CH_DDL)
        cfg = os.path.join(tmp.path, "ch.yaml")
        with open(cfg, "w") as f:
            f.write(CFG % dict(wal=wal, name="ch", type="clickhouse", url=ch.url, user="default",
                               pw="", rows=a.batch_rows))
        out, _ = run([a.bin, "drain", "--config", cfg])
        d = json.loads(out)
        n = int(ch.query("SELECT count() FROM bench.ChatInference"))
        assert n == a.rows, n
        ch.query("TRUNCATE TABLE bench.ChatInference")
        q = "INSERT INTO bench.ChatInference FORMAT JSONEachRow"
        _, dt = run(["curl", "-sS", "--fail", "-X", "POST", "--data-binary", "@" + data,
                     ch.url + "/?query=" + q.replace(" ", "%20")])
        n = int(ch.query("SELECT count() FROM bench.ChatInference"))
        assert n == a.rows, n
        results.append(("clickhouse 18.16", d["rows_per_s"], a.rows / dt))
        print(results[-1], flush=True)
        ch.stop()

        # ---- StarRocks emulator ----
        if not a.skip_emulator:
            sr = H.StarRocksEmulator(tmp.sub("sr"), SR_TABLES, password="pw")
            # the log was drained by "ch" only; a new sink name starts from the earliest record
            # still held: re-fill a fresh log for a fair run
            shutil.rmtree(wal)
            run([a.bin, "fill", "--dir", wal, "--rows", str(a.rows), "--db", "bench",
                 "--table", "ChatInference", "--out", data])
            cfg = os.path.join(tmp.path, "sr.yaml")
            with open(cfg, "w") as f:
                f.write(CFG % dict(wal=wal, name="sr", type="starrocks", url=sr.url, user="root",
                                   pw="pw", rows=a.batch_rows))
            out, _ = run([a.bin, "drain", "--config", cfg])
            d = json.loads(out)
            assert sr.count("bench.ChatInference") == a.rows
            H.http_request(sr.url + "/_emu/rows?table=bench.ChatInference", "DELETE")
            # Stream Load bodies are limited to 100 MB: the direct load is 200k-row files
            parts = []
            with open(data, "rb") as f:
                lines = f.readlines()
            for k in range(0, len(lines), 200000):
                p = "%s.%d" % (data, k)
                with open(p, "wb") as g:
                    g.writelines(lines[k:k + 200000])
                parts.append(p)
            del lines
            dt = 0.0
            for k, p in enumerate(parts):
                _, t = run(["curl", "-sS", "--fail", "--location-trusted", "-u", "root:pw",
                            "-H", "Expect: 100-continue", "-H", "label: bench_direct_%d" % k,
                            "-H", "format: json", "-T", p,
                            sr.url + "/api/bench/ChatInference/_stream_load"])
                dt += t
            assert sr.count("bench.ChatInference") == a.rows
            results.append(("starrocks emulator", d["rows_per_s"], a.rows / dt))
            sr.stop()
    finally:
        tmp.close()
    print("\n%-20s %14s %14s %7s" % ("backend", "sluice rows/s", "direct rows/s", "ratio"))
    for name, s, d in results:
        print("%-20s %14.0f %14.0f %6.0f%%" % (name, s, d, 100.0 * s / d))


if __name__ == "__main__":
    main()
