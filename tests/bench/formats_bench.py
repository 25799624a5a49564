#!/usr/bin/env python3
"""formats_bench.py - ingest throughput per input format (not a test; prints numbers).

For each format the engine (chDB behind tests/support/chserver) encodes the same 1000 rows
(id, name, a nullable float, an array, a timestamp); wrk then POSTs that body as
`INSERT INTO bench.t FORMAT f` on 8 keep-alive connections for BENCH_SECS seconds (default
3) to a fresh sluice (wal.sync: always) whose only sink points at a closed port, so the
numbers are validation + WAL + ack, not delivery. Prints req/s, rows/s, MB/s and the ratio
to JSONEachRow. Usage: python3 tests/bench/formats_bench.py [SECONDS]"""
import os
import re
import subprocess
import sys
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import harness as H  # noqa: E402

SECS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
ROWS = 1000
FORMATS = ["JSONEachRow", "JSONCompactEachRow", "JSONCompactEachRowWithNames",
           "JSONStringsEachRow", "JSONObjectEachRow", "CSV", "CSVWithNames", "TabSeparated",
           "TSVWithNamesAndTypes", "TabSeparatedRaw", "Values", "RowBinary", "Native"]
LUA = """wrk.method = "POST"
local f = io.open(os.getenv("BENCH_BODY"), "rb")
wrk.body = f:read("*a")
f:close()
"""


def main():
    tmp = H.TempDir("sluice-bench-")
    try:
        ch = H.ChServer(tmp.sub("ch"))
        lua = os.path.join(tmp.path, "post.lua")
        with open(lua, "w") as f:
            f.write(LUA)
        print("format                         req/s     rows/s      MB/s   vs JSONEachRow")
        base = None
        for fmt in FORMATS:
            sql = ("SELECT number AS id, concat('name-', toString(number)) AS name, "
                   "if(number %% 3 = 0, NULL, number / 7) AS v, range(number %% 4) AS a, "
                   "toDateTime('2026-01-01 00:00:00') + number AS ts FROM numbers(%d) FORMAT %s"
                   % (ROWS, fmt))
            st, _, body = H.http_request(ch.url + "/?" + urllib.parse.urlencode({"query": sql}),
                                         "POST", b"")
            assert st == 200, body[:200]
            path = os.path.join(tmp.path, fmt + ".body")
            with open(path, "wb") as f:
                f.write(body)
            s = H.Sluice(tmp.sub("sluice-" + fmt), H.bench_config("http://127.0.0.1:%d" % H.free_port(), max_bytes="8GiB"))
            url = s.url + "/?" + urllib.parse.urlencode(
                {"query": "INSERT INTO bench.t FORMAT " + fmt})
            env = dict(os.environ, BENCH_BODY=path)
            out = subprocess.run(["wrk", "-t2", "-c8", "-d%ds" % SECS, "-s", lua, url],
                                 capture_output=True, env=env, timeout=SECS + 60).stdout.decode()
            s.stop()
            m = re.search(r"Requests/sec:\s+([\d.]+)", out)
            non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
            if not m or non2xx:
                print("%-28s  failed: %s" % (fmt, out[-300:]))
                continue
            rps = float(m.group(1))
            if base is None:
                base = rps
            print("%-28s %7.0f %10.0f %9.1f   %5.2fx" % (fmt, rps, rps * ROWS,
                                                       rps * len(body) / 1e6, rps / base))
            H.wait_until(lambda: not s.proc.alive(), timeout=30, what="sluice stopped")
            import shutil
            shutil.rmtree(os.path.join(s.dir, "wal"), ignore_errors=True)
    finally:
        H._kill_all()
        tmp.close()


if __name__ == "__main__":
    main()
