#!/usr/bin/env bash
# durable_bench.sh — durable ingest against its own ceiling (not a test). wrk POSTs one
# ~400-byte TensorZero ChatInference row per request (proxy_bench.lua) for SECONDS at 16 and
# 64 connections to sluice with wal.sync: always and with wal.sync: none (a clickhouse sink
# delivers to a Debian clickhouse-server 18.16 started on loopback, so the writer also commits
# cursors and truncates). Prints req/s, p50/p99/p999/max, requests and device flushes per
# group commit (from /metrics; flushes also counted with strace on the live process:
# fdatasync/fsync of data.mdb and of the journal segments, plus pwrites to an O_DSYNC
# descriptor), LMDB checkpoints per second, RSS, sluice's own ack latency p99/p999 (bucket
# bounds of its histogram: the server's share of wrk's figures), the ratio always/none, the
# disk's own fdatasync rate, then wal_bench for 1/16/64/256 producers. Each run starts once
# every instance's sinks have delivered the earlier runs' rows (idle s: the wait). Every
# configuration runs ROUNDS times (default 3), interleaved with the others in a turning order;
# ratios are the median of the per-round ratios: on a shared VM one run of 20 s moved by
# 25 % from one minute to the next, which single runs cannot tell from a change.
# With SLUICE_BIN_BEFORE (and WAL_BENCH_BEFORE) set, each figure is measured for both builds
# in turn, before then after, in the same window, and the after/before ratio is printed: the
# machine is shared, so only figures from one run compare.
# Usage: tests/bench/durable_bench.sh [SECONDS] [ROUNDS]   (SLUICE_BIN, WAL_BENCH default to build/)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
export SLUICE_SOURCE="$src" BENCH_SECS="${1:-10}" BENCH_ROUNDS="${2:-3}"
export BENCH_LUA="$here/proxy_bench.lua"
export SLUICE_BIN="${SLUICE_BIN:-$src/build/sluice}" WAL_BENCH="${WAL_BENCH:-$src/build/wal_bench}"
export SLUICE_BIN_BEFORE="${SLUICE_BIN_BEFORE:-}" WAL_BENCH_BEFORE="${WAL_BENCH_BEFORE:-}"
command -v wrk >/dev/null || { echo "durable_bench: wrk is not installed"; exit 1; }
exec python3 -u - <<'PY'
import os, re, subprocess, sys, time
sys.path.insert(0, os.path.join(os.environ["SLUICE_SOURCE"], "tests", "e2e"))
import harness as h

secs = int(os.environ["BENCH_SECS"])
rounds = int(os.environ["BENCH_ROUNDS"])
lua = os.environ["BENCH_LUA"]
builds = [("after", os.environ["SLUICE_BIN"], os.environ["WAL_BENCH"])]
if os.environ["SLUICE_BIN_BEFORE"]:
    builds.insert(0, ("before", os.environ["SLUICE_BIN_BEFORE"],
                      os.environ["WAL_BENCH_BEFORE"] or ""))

def status_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0

def metrics(s):
    _, _, body = h.http_request(s.admin_url + "/metrics")
    out = {}
    for line in body.decode().splitlines():
        m = re.match(r"(sluice_wal_(?:commits|fsyncs|appends|checkpoints|checkpoint_seconds)"
                     r"_total) ([\d.]+)", line)
        if m:
            out[m.group(1)] = float(m.group(2))
        m = re.match(r'sluice_ack_latency_seconds_bucket\{le="([^"]+)"\} (\d+)', line)
        if m:
            out.setdefault("ack", []).append((float(m.group(1)), int(m.group(2))))
    return out

def ack_quantile(m0, m1, q):
    """sluice's own ack latency (request complete -> durable ack, from its histogram) at
    quantile q over the run, in ms: the upper bound of the bucket holding it ('>5000' past
    the last). wrk's latency adds the client, the network stack and the machine's
    scheduling; this one is sluice's alone."""
    a0 = dict(m0.get("ack", []))
    cum = [(le, c - a0.get(le, 0)) for le, c in m1.get("ack", [])]
    if not cum or cum[-1][1] == 0:
        return float("nan")
    for le, c in cum:
        if c >= q * cum[-1][1]:
            return le * 1e3
    return float("inf")

def wrk(url, conns, dur):
    out = subprocess.run(["wrk", "-t2", "-c%d" % conns, "-d%ds" % dur, "--timeout", "10s",
                          "-s", lua, url + "/"], capture_output=True, text=True,
                         env=dict(os.environ, BENCH_ROWS="1")).stdout
    m = re.search(r"BENCH requests=(\d+) non2xx=(\d+) sockerr=(\d+) duration_us=(\d+) "
                  r"p50_us=(\d+) p99_us=(\d+) p999_us=(\d+) max_us=(\d+)", out)
    if not m:
        raise RuntimeError("wrk output not understood:\n" + out)
    req, non2xx, sockerr, dur_us, p50, p99, p999, mx = map(int, m.groups())
    return {"rps": req / (dur_us / 1e6), "p50": p50 / 1e3, "p99": p99 / 1e3,
            "p999": p999 / 1e3, "max": mx / 1e3, "errors": non2xx + sockerr}

def data_fds(pid):
    """Descriptors of data.mdb and the journal segments of pid: (plain, O_DSYNC) sets."""
    plain, dsync = set(), set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            if not re.search(r"/(data\.mdb|journal\.[01])$", target):
                continue
            flags = open("/proc/%d/fdinfo/%s" % (pid, fd)).read().split("flags:")[1].split()[0]
        except OSError:
            continue
        (dsync if int(flags, 8) & 0o10000 else plain).add(int(fd))
    return plain, dsync

def strace_flushes(s, conns, dur):
    """Device flushes per commit counted from the syscalls themselves (strace slows the
    process, so only the ratio is kept)."""
    pid = s.proc.pid
    plain, dsync = data_fds(pid)
    log = os.path.join(s.dir, "strace.log")
    st = subprocess.Popen(["strace", "-f", "-qq", "-e", "trace=fdatasync,fsync,pwrite64",
                           "-e", "signal=none", "-o", log, "-p", str(pid)],
                          stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    m0 = metrics(s)
    wrk(s.url, conns, dur)
    m1 = metrics(s)
    st.terminate()
    st.wait()
    flushes = 0
    for line in open(log):
        m = re.search(r"(fdatasync|fsync|pwrite64)\((\d+)", line)
        if not m or "resumed" in line:
            continue
        fd = int(m.group(2))
        if m.group(1) != "pwrite64" and fd in plain | dsync:
            flushes += 1
        elif m.group(1) == "pwrite64" and fd in dsync:
            flushes += 1 # O_DSYNC write: data and flush in one call
    commits = m1["sluice_wal_commits_total"] - m0["sluice_wal_commits_total"]
    return flushes / commits if commits else float("nan")

def quiesce(insts, limit=300.0):
    """Wait until every instance's sinks have delivered their backlog (sluice_sink_lag_records
    0 everywhere): a run measured while another instance's sink, and the ClickHouse taking its
    rows, still work through the last run's backlog shares the 2 cores with them (the
    64-connection figure of whichever build ran second paid for it). Returns the seconds
    waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        lag = 0
        for s in insts:
            _, _, body = h.http_request(s.admin_url + "/metrics")
            lag += sum(int(float(l.split()[-1])) for l in body.decode().splitlines()
                       if l.startswith("sluice_sink_lag_records"))
        if lag == 0:
            break
        time.sleep(0.2)
    return time.monotonic() - t0

def fdatasync_rate(d, dur=2.0):
    p = os.path.join(d, "fsync-probe")
    fd = os.open(p, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
    n, t0, buf = 0, time.monotonic(), b"x" * 4096
    while time.monotonic() - t0 < dur:
        os.pwrite(fd, buf, 0)
        os.fdatasync(fd)
        n += 1
    os.close(fd)
    os.unlink(p)
    return n / (time.monotonic() - t0)

td = h.TempDir("sluice-durable-bench-")
procs = []
try:
    ch = h.ClickHouse18(td.sub("ch"))
    ch.query("CREATE DATABASE IF NOT EXISTS bench")
    ch.query(h.BENCH_SCHEMA)
    print("%d s per run; load average at start %s (a shared 2-core machine: compare figures of "
          "this run only)" % (secs, open("/proc/loadavg").read().split()[0]))
    print("disk fdatasync rate (4 KiB pwrite + fdatasync, wal directory's file system): %.0f/s"
          % fdatasync_rate(td.sub("probe")))
    inst = {}
    for name, binpath, _ in builds:
        h.SLUICE_BIN = binpath
        for sync in ("always", "none"):
            s = h.Sluice(td.sub("%s-%s" % (name, sync)), h.bench_config(ch.url, sync))
            procs.append(s)
            inst[(name, sync)] = s
    res = {}
    print("%-5s %-5s %-6s %-6s %9s %8s %8s %8s %8s %8s %10s %11s %8s %7s %11s %10s %11s %8s" % (
        "conns", "round", "sync", "build", "req/s", "p50 ms", "p99 ms", "p999 ms", "max ms",
        "errors", "req/commit", "flush/cmt", "ckpt/s", "ckpt %", "RSS MiB", "ack p99<=",
        "ack p999<=", "idle s"))
    runs = [(sync, name) for sync in ("always", "none") for name, _, _ in builds]
    for conns in (16, 64):
        for rnd in range(rounds):
            # the order turns round by round, so no configuration always runs first
            for sync, name in runs[rnd % len(runs):] + runs[:rnd % len(runs)]:
                s = inst[(name, sync)]
                waited = quiesce(procs)
                m0 = metrics(s)
                r = wrk(s.url, conns, secs)
                m1 = metrics(s)
                commits = m1["sluice_wal_commits_total"] - m0["sluice_wal_commits_total"]
                appends = m1["sluice_wal_appends_total"] - m0["sluice_wal_appends_total"]
                fsyncs = m1["sluice_wal_fsyncs_total"] - m0["sluice_wal_fsyncs_total"]
                r["rpc"] = appends / commits if commits else 0
                r["fpc"] = fsyncs / commits if commits and sync == "always" else 0
                r["cps"] = (m1.get("sluice_wal_checkpoints_total", 0) -
                            m0.get("sluice_wal_checkpoints_total", 0)) / secs
                # share of the run the writer spent in checkpoints (appends queue meanwhile)
                # (nan for a build without the counter: printed as such, not as 0)
                r["ckpt_pct"] = 100.0 * (m1.get("sluice_wal_checkpoint_seconds_total", float("nan")) -
                                         m0.get("sluice_wal_checkpoint_seconds_total", float("nan"))) / secs
                r["rss"] = status_kib(s.proc.pid, "VmRSS") / 1024.0
                r["ack99"] = ack_quantile(m0, m1, 0.99)
                r["ack999"] = ack_quantile(m0, m1, 0.999)
                r["quiesce"] = waited
                res[(conns, rnd, sync, name)] = r
                print("%-5d %-5d %-6s %-6s %9.0f %8.2f %8.2f %8.2f %8.1f %8d %10.1f %11.2f %8.0f %7.1f %11.1f %10g %11g %8.1f" % (
                    conns, rnd + 1, sync, name, r["rps"], r["p50"], r["p99"], r["p999"],
                    r["max"], r["errors"], r["rpc"], r["fpc"], r["cps"], r["ckpt_pct"],
                    r["rss"], r["ack99"], r["ack999"], r["quiesce"]), flush=True)

    def med(xs):
        xs = sorted(xs)
        return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2

    def ratio(conns, num, den):
        """Median over the rounds of num/den measured in the same round (a round's runs
        share the machine's state of that minute), with the rounds' range."""
        rs = [res[(conns, rnd) + num]["rps"] / res[(conns, rnd) + den]["rps"]
              for rnd in range(rounds)]
        return "%.2f (rounds %s)" % (med(rs), " ".join("%.2f" % x for x in rs))

    print("median of %d rounds:" % rounds)
    for conns in (16, 64):
        for sync, name in runs:
            rs = [res[(conns, rnd, sync, name)] for rnd in range(rounds)]
            print("  %-3d %-6s %-6s req/s %6.0f  p50 %5.2f  p99 %5.2f  p999 %5.2f  max %6.1f ms  "
                  "req/commit %4.1f" % (conns, sync, name, *(med([r[k] for r in rs]) for k in (
                      "rps", "p50", "p99", "p999")), max(r["max"] for r in rs),
                  med([r["rpc"] for r in rs])))
    print("durable / sync: none (target >= 0.8 at 16 connections, >= 0.9 at 64):")
    for conns in (16, 64):
        print("  %d connections: " % conns + ", ".join(
            "%s %s" % (name, ratio(conns, ("always", name), ("none", name)))
            for name, _, _ in builds))
    if len(builds) == 2:
        for conns in (16, 64):
            print("  after / before, sync: always, %d connections: %s" % (
                conns, ratio(conns, ("always", "after"), ("always", "before"))))
    if subprocess.run(["which", "strace"], capture_output=True).returncode == 0:
        for name, _, _ in builds:
            print("device flushes per commit counted by strace (sync: always, 16 conns, %s): "
                  "%.2f" % (name, strace_flushes(inst[(name, "always")], 16, 5)))
    for name, _, _ in builds:
        s = inst[(name, "always")]
        print("%s peak RSS (VmHWM), sync: always: %.1f MiB" % (
            name, status_kib(s.proc.pid, "VmHWM") / 1024.0))
    for s in procs:
        s.stop()
    procs = []
    ch.stop()
    for name, _, wb in builds:
        if wb:
            print("wal_bench (%s):" % name, flush=True)
            subprocess.run([wb, td.sub("walbench-" + name), "3", "1,16,64,256"], check=False)
finally:
    for s in procs:
        s.stop()
    td.close()
PY
