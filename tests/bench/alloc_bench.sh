#!/usr/bin/env bash
# alloc_bench.sh — heap allocations and payload copies per INSERT (a measurement, not a test).
# Builds alloc_count.so (LD_PRELOAD), starts sluice (wal.sync: none, its sink paused) under it,
# POSTs N one-row INSERTs (proxy_bench.lua's ~400-byte ChatInference row, statement in the
# body) over one keep-alive connection and prints, per thread, allocations and copies of the
# row per request: the loop thread (the process's main thread) and the others (WAL writer,
# libuv pool). With SLUICE_BIN_BEFORE set, the same for that build first.
# Usage: tests/bench/alloc_bench.sh [N]   (SLUICE_BIN defaults to build/sluice)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
work=$(mktemp -d /tmp/sluice-alloc-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
cc -O2 -shared -fPIC -o "$work/alloc_count.so" "$here/alloc_count.c" -ldl -lpthread
export SLUICE_SOURCE="$src" ALLOC_SO="$work/alloc_count.so" ALLOC_WORK="$work" N="${1:-2000}"
export SLUICE_BIN="${SLUICE_BIN:-$src/build/sluice}" SLUICE_BIN_BEFORE="${SLUICE_BIN_BEFORE:-}"
exec python3 -u - <<'PY'
import http.client, os, sys, time
sys.path.insert(0, os.path.join(os.environ["SLUICE_SOURCE"], "tests", "e2e"))
import harness as h

N = int(os.environ["N"])
MARK = "0192ced0-947e-74b3-a3d7-02fd2c54d637"
ROW = ('{"id":"%s","function_name":"draft_email","variant_name":"gpt4o_mini_v2",'
       '"episode_id":"0192ced0-947e-74b3-a3d7-02fd2c54d600","input":"{\\"system\\":{\\"tone\\":'
       '\\"friendly\\"},\\"messages\\":[{\\"role\\":\\"user\\",\\"content\\":[{\\"type\\":\\"text'
       '\\",\\"text\\":\\"Write a short reply to Bob.\\"}]}]}","output":"[{\\"type\\":\\"text\\",'
       '\\"text\\":\\"Hi Bob, thanks for the note!\\"}]","tool_params":"","inference_params":'
       '"{\\"chat_completion\\":{\\"temperature\\":0.2}}","processing_time_ms":412,"tags":'
       '"{\\"user\\":\\"u-17\\"}","ttft_ms":null}') % MARK
BODY = ("INSERT INTO ChatInference\nFORMAT JSONEachRow\n" + ROW).encode()
# A sink nobody listens for, paused: only the proxy and the WAL writer work.
CONFIG = (h.CH_SINK_CONFIG % "http://127.0.0.1:1").replace(
    "wal:\n  dir: {wal_dir}\n", "wal:\n  dir: {wal_dir}\n  sync: none\n")

def snapshot(path):
    deadline = time.time() + 5
    while not os.path.exists(path) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # two reporter periods: the counters have settled
    out = {}
    for line in open(path):
        tid, a, c = map(int, line.split())
        out[tid] = (a, c)
    return out

def posts(conn, n):
    for _ in range(n):
        conn.request("POST", "/?database=bench", BODY, {"X-ClickHouse-User": "default"})
        r = conn.getresponse()
        r.read()
        assert r.status == 200, r.status

def measure(name, binpath):
    h.SLUICE_BIN = binpath
    td = h.TempDir("sluice-alloc-")
    out = os.path.join(os.environ["ALLOC_WORK"], name + ".counts")
    s = h.Sluice(td.sub("s"), CONFIG, env={"LD_PRELOAD": os.environ["ALLOC_SO"],
                                            "ALLOC_COUNT_OUT": out, "ALLOC_COUNT_MARK": MARK})
    try:
        st, _, body = h.http_request(s.admin_url + "/v1/sinks/ch/pause", "POST", b"")
        assert st == 200, body
        conn = http.client.HTTPConnection("127.0.0.1", s.port)
        posts(conn, 200)  # warm up: buffers, LMDB pages, first commits
        a = snapshot(out)
        posts(conn, N)
        b = snapshot(out)
        conn.close()
        pid = s.proc.pid
        rows = []
        for tid in sorted(b):
            da = b[tid][0] - a.get(tid, (0, 0))[0]
            dc = b[tid][1] - a.get(tid, (0, 0))[1]
            if da or dc:
                rows.append(("loop (main)" if tid == pid else "thread %d" % tid, da / N, dc / N))
        tot_a = sum(r[1] for r in rows)
        tot_c = sum(r[2] for r in rows)
        print("%s (%s), %d requests:" % (name, binpath, N))
        for r in rows:
            print("  %-14s %6.2f allocations/request %6.2f payload copies/request" % r)
        print("  %-14s %6.2f allocations/request %6.2f payload copies/request" % ("total", tot_a, tot_c))
    finally:
        s.stop()
        td.close()

if os.environ["SLUICE_BIN_BEFORE"]:
    measure("before", os.environ["SLUICE_BIN_BEFORE"])
measure("after", os.environ["SLUICE_BIN"])
print("(a thread near 0.01/request is the paused sink or alloc_count.so's reporter; copies by "
      "the kernel, recv into the read buffer and the socket write, are not counted)")
PY
