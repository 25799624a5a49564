#!/usr/bin/env python3
"""soak.py - a long steady-load run of sluice with periodic backend outages (issue 9 part 4).

sluice sits in front of Debian's clickhouse-server 18.16 and the StarRocks emulator (both
sinks enabled, loopback only). A loader posts INSERTs at a steady rate (default 300 rows/s,
unique ids). Every --outage-every seconds ClickHouse is killed (kill -9) for --outage-len
seconds and restarted; half-way between two ClickHouse outages an emulator fault is queued
(503 x5, hang 10 s, publish_timeout, drop_mid_body, commit_then_drop, fail_retryable, in
turn). Every --sample seconds it records sluice's RSS (VmRSS), open fds, the WAL dir size
(du), sluice_wal_live_bytes and per-sink lag (records and seconds) from /metrics into a CSV.
At the end it stops the load, waits for both sinks to catch up, reconciles (every acked
row in ClickHouse at least once and in the emulator exactly once), writes SUMMARY.json next
to the CSV and, when matplotlib is there, a PNG through tests/bench/plot.py.

  SLUICE_BIN=build/sluice python3 tests/bench/soak.py --duration 1800 --out /tmp/soak
"""
import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import harness as H  # noqa: E402

DB = "soak"
TABLE = "events"
CH_DDL = ("CREATE TABLE IF NOT EXISTS %s.%s (id UInt64, k String, v Float64, pad String) "
          "ENGINE = MergeTree ORDER BY id" % (DB, TABLE))
SR_TABLES = {DB + "." + TABLE: [["id", "BIGINT"], ["k", "VARCHAR(64)"], ["v", "DOUBLE"],
                                ["pad", "VARCHAR(256)"]]}

CONFIG = """wal:
  dir: {wal_dir}
  max_bytes: 256MiB
  sync: always
proxy:
  listen: {listen}
admin:
  listen: {admin}
log:
  level: warn
shutdown:
  drain_timeout_s: 10
sinks:
  - name: ch
    type: clickhouse
    url: %(ch)s
    batch:
      max_rows: 5000
      max_wait_ms: 200
    retry:
      initial_backoff_ms: 100
      max_backoff_ms: 2000
    connect_timeout_ms: 500
    request_timeout_ms: 10000
  - name: sr
    type: starrocks
    url: %(sr)s
    user: root
    password: "srpw"
    batch:
      max_rows: 5000
      max_wait_ms: 200
    retry:
      initial_backoff_ms: 100
      max_backoff_ms: 2000
    connect_timeout_ms: 500
    request_timeout_ms: 5000
"""

EMU_FAULTS = [("503", {"count": 5}), ("hang", {"seconds": 10}), ("publish_timeout", {}),
              ("drop_mid_body", {}), ("commit_then_drop", {}), ("fail_retryable", {"count": 3})]

FIELDS = ["t", "elapsed_s", "rss_kb", "rss_anon_kb", "rss_file_kb", "fds", "wal_du_bytes", "wal_live_bytes", "wal_records",
          "lag_records_ch", "lag_records_sr", "lag_seconds_ch", "lag_seconds_sr",
          "rows_acked", "rows_failed", "ch_up", "event"]


def metrics(admin_url):
    st, _, body = H.http_request(admin_url + "/metrics", timeout=5)
    if st != 200:
        return {}
    out = {}
    for line in body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, val = line.rpartition(" ")
        try:
            out[name] = float(val)
        except ValueError:
            pass
    return out


def proc_status(pid):
    """(VmRSS, RssAnon, RssFile) in kB and the open fd count. RssFile includes the pages
    of the LMDB map sluice has touched, so it follows the WAL file; RssAnon is the heap."""
    v = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, rest = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile"):
                v[k] = int(rest.split()[0])
    fds = len(os.listdir("/proc/%d/fd" % pid))
    return v.get("VmRSS", 0), v.get("RssAnon", 0), v.get("RssFile", 0), fds


def du_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for n in files:
            try:
                total += os.stat(os.path.join(root, n)).st_blocks * 512
            except OSError:
                pass
    return total


class Loader(threading.Thread):
    """Steady load: rate rows/s in requests of `batch` rows, one keep-alive connection."""

    def __init__(self, s, rate, batch=100):
        super().__init__(daemon=True)
        self.s, self.rate, self.batch = s, rate, batch
        self.next_id = 0
        self.acked = 0
        self.failed = 0
        self.fail_samples = []
        self.halt = threading.Event()

    def run(self):
        import http.client
        import urllib.parse
        conn = None
        path = "/?" + urllib.parse.urlencode(
            {"query": "INSERT INTO %s.%s FORMAT JSONEachRow" % (DB, TABLE)})
        period = self.batch / float(self.rate)
        t_next = time.time()
        pad = "p" * 120
        while not self.halt.is_set():
            ids = range(self.next_id, self.next_id + self.batch)
            body = "\n".join(json.dumps({"id": i, "k": "k%d" % (i % 97), "v": i * 0.25,
                                         "pad": pad}) for i in ids).encode()
            st = -1
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.s.port, timeout=30)
                conn.request("POST", path, body=body)
                r = conn.getresponse()
                data = r.read()
                st = r.status
            except Exception as e:  # noqa: BLE001 - connection trouble: retry, new ids
                data = repr(e).encode()
                try:
                    conn.close()
                except Exception:  # noqa: BLE001
                    pass
                conn = None
            if st == 200:
                self.acked += self.batch
            else:
                self.failed += self.batch
                if len(self.fail_samples) < 20:
                    self.fail_samples.append((st, data[:200].decode(errors="replace")))
            # ids are never reused: a failed request's rows must land nowhere
            self.next_id += self.batch
            t_next += period
            d = t_next - time.time()
            if d > 0:
                time.sleep(d)
            else:
                t_next = time.time()
        if conn:
            conn.close()


def plot_python():
    """An interpreter with matplotlib: this one, else Debian's (python3-matplotlib lives in
    /usr/lib/python3/dist-packages, which a pyenv or venv python does not see)."""
    r = subprocess.run([sys.executable, "-c", "import matplotlib"], capture_output=True)
    if r.returncode != 0 and os.path.exists("/usr/bin/python3"):
        return "/usr/bin/python3"
    return sys.executable


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=1800.0, help="seconds of load")
    ap.add_argument("--rate", type=int, default=300, help="rows per second")
    ap.add_argument("--sample", type=float, default=10.0, help="sampling period, seconds")
    ap.add_argument("--outage-every", type=float, default=300.0)
    ap.add_argument("--outage-len", type=float, default=60.0)
    ap.add_argument("--out", default="/tmp/sluice-soak", help="directory for CSV/PNG/logs")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    csv_path = os.path.join(a.out, "soak.csv")
    tmp = H.TempDir(prefix="sluice-soak-")
    print("soak: %.0fs at %d rows/s, out %s, tmp %s, binary %s" % (
        a.duration, a.rate, a.out, tmp.path, H.SLUICE_BIN), flush=True)
    ch = H.ClickHouse18(tmp.sub("ch"))
    ch.query("CREATE DATABASE IF NOT EXISTS " + DB)
    ch.query(CH_DDL)
    sr = H.StarRocksEmulator(tmp.sub("sr"), SR_TABLES, password="srpw")
    s = H.Sluice(tmp.sub("sluice"), CONFIG % {"ch": ch.url, "sr": sr.url})
    ld = Loader(s, a.rate)
    t0 = time.time()
    ld.start()
    ch_down_until = None
    next_outage = t0 + a.outage_every
    next_emu = t0 + a.outage_every / 2
    emu_i = 0
    events = []
    ok = True
    try:
        with open(csv_path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(FIELDS)
            next_sample = t0
            while True:
                now = time.time()
                event = ""
                if ch_down_until and now >= ch_down_until:
                    ch.start()
                    ch_down_until = None
                    event = "ch_up"
                    events.append((now - t0, event))
                if now - t0 < a.duration and now >= next_outage and not ch_down_until:
                    ch.kill()
                    ch_down_until = now + a.outage_len
                    next_outage += a.outage_every
                    event = "ch_killed"
                    events.append((now - t0, event))
                if now - t0 < a.duration and now >= next_emu:
                    mode, kw = EMU_FAULTS[emu_i % len(EMU_FAULTS)]
                    emu_i += 1
                    sr.faults(mode=mode, **kw)
                    next_emu += a.outage_every
                    event = "emu_" + mode
                    events.append((now - t0, event))
                if now >= next_sample:
                    next_sample += a.sample
                    if not s.proc.alive():
                        print("soak: sluice died!\n" + s.proc.output()[-3000:], flush=True)
                        ok = False
                        break
                    rss, anon, rfile, fds = proc_status(s.proc.pid)
                    m = metrics(s.admin_url)
                    row = [time.strftime("%H:%M:%S"), "%.0f" % (now - t0), rss, anon, rfile, fds,
                           du_bytes(s.wal_dir), int(m.get("sluice_wal_live_bytes", -1)),
                           int(m.get("sluice_wal_records", -1)),
                           int(m.get('sluice_sink_lag_records{sink="ch"}', -1)),
                           int(m.get('sluice_sink_lag_records{sink="sr"}', -1)),
                           m.get('sluice_sink_lag_seconds{sink="ch"}', -1),
                           m.get('sluice_sink_lag_seconds{sink="sr"}', -1),
                           ld.acked, ld.failed, 0 if ch_down_until else 1, event]
                    w.writerow(row)
                    f.flush()
                    print("soak %5.0fs rss=%dkB (anon %d) fds=%d wal_du=%d live=%d lag ch=%s "
                          "sr=%s acked=%d failed=%d %s" % (now - t0, rss, anon, fds, row[6],
                                                           row[7], row[9], row[10], ld.acked,
                                                           ld.failed, event), flush=True)
                if now - t0 >= a.duration and not ch_down_until:
                    break
                time.sleep(0.2)
        ld.halt.set()
        ld.join()
        sr.faults(mode="clear")
        # drain: both sinks catch up
        def caught_up():
            m = metrics(s.admin_url)
            return (m.get('sluice_sink_lag_records{sink="ch"}') == 0 and
                    m.get('sluice_sink_lag_records{sink="sr"}') == 0)
        drained = True
        try:
            H.wait_until(caught_up, timeout=300, interval=1, what="sinks caught up")
        except AssertionError as e:
            print("soak: %s" % e, flush=True)
            drained = False
        ch_distinct = int(ch.query("SELECT uniqExact(id) FROM %s.%s" % (DB, TABLE)))
        ch_total = int(ch.query("SELECT count() FROM %s.%s" % (DB, TABLE)))
        sr_rows = sr.rows(DB + "." + TABLE)
        sr_ids = [int(r["id"]) for r in sr_rows]
        rc = s.stop()
        summary = {
            "duration_s": round(time.time() - t0), "rate": a.rate, "rows_acked": ld.acked,
            "rows_failed": ld.failed, "fail_samples": ld.fail_samples[:5],
            "ch_rows": ch_total, "ch_distinct": ch_distinct,
            "ch_duplicates": ch_total - ch_distinct, "sr_rows": len(sr_ids),
            "sr_distinct": len(set(sr_ids)), "drained": drained, "sluice_exit": rc,
            "events": events,
        }
        # failed requests' ids interleave with acked ones, so compare counts: every acked
        # row must be there; more distinct rows than acked means a failed request landed
        summary["ch_ok"] = ch_distinct == ld.acked
        summary["sr_ok"] = len(sr_ids) == len(set(sr_ids)) == ld.acked
        ok = ok and drained and summary["ch_ok"] and summary["sr_ok"] and rc == 0
        summary["ok"] = ok
        with open(os.path.join(a.out, "SUMMARY.json"), "w") as f:
            json.dump(summary, f, indent=1)
        print(json.dumps(summary, indent=1), flush=True)
        try:
            subprocess.run([plot_python(), os.path.join(HERE, "plot.py"), csv_path,
                            os.path.join(a.out, "soak.png")], check=False, timeout=120)
        except Exception as e:  # noqa: BLE001
            print("soak: plot failed: %r" % e, flush=True)
    finally:
        ld.halt.set()
        for p in (s, sr, ch):
            try:
                p.stop()
            except Exception:  # noqa: BLE001
                pass
        if os.environ.get("SLUICE_KEEP_TMP") is None:
            tmp.close()
    print("soak: %s" % ("OK" if ok else "FAILED"), flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
