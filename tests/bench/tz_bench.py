#!/usr/bin/env python3
"""tz_bench.py - TensorZero-shaped ingest through sluice into the modern ClickHouse engine vs
the same requests sent straight to the engine's test server (tests/support/chserver), in one
run. Not a test. Python stdlib; needs the sluice binary (SLUICE_BIN) and the chserver's
node_modules (tests/support/chserver/ensure.sh).

    SLUICE_BIN=build/sluice python3 tests/bench/tz_bench.py [--duration 15] [--workers 16]
        [--rate 15] [--tz-rate 200] [--json out.json]

Traffic: the gateway client of tests/e2e/test_tensorzero.py (each inference = the two
concurrent INSERTs tz.py builds, modern shape: SETTINGS async_insert=1, wait_for_async_insert=1,
the gateway's URL settings, X-ClickHouse-User/Key; keep-alive connections; no feedback).
One engine (one chserver, one chDB session) holds both databases: `tz` written through
sluice, `tz_direct` written straight to the engine.

Phases, each run for both targets unless noted:
  max     closed loop, --workers clients sending back to back: inferences/s, write req/s,
          write latency p50/p99; for sluice also the drain (last ack -> every row in the engine)
          and the delivered rate (rows in the engine / time from start to fully delivered)
  paced   --rate inferences/s (a rate the bare engine sustains): latency and delivery lag
  tz      sluice only, at --tz-rate (TensorZero's 200/s, which the bare engine cannot take)
Delivery lag = time from the client's ack (both 200s) to the inference being visible in
InferenceById (the MV the feedback endpoint reads), measured by one poller thread that asks
the engine directly (not through sluice) every --lag-interval-ms for the pending ids (every
--lag-every-th inference). For direct writes the row is visible at the ack by construction
(synchronous insert), so their lag is the measurement's own floor (poll interval + the
engine's queue).
"""
import argparse
import json
import os
import sys
import threading
import time
import urllib.parse
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import harness as H  # noqa: E402
import test_tensorzero as T  # noqa: E402  (the gateway client; runs nothing on import)

tz = T.tz


class LagPoller:
    """Ack -> visible in db.InferenceById, for the inferences handed to add()."""

    def __init__(self, engine_url, interval_s):
        self.url, self.interval = engine_url, interval_s
        self.lock = threading.Lock()
        self.pending = {}   # (db, id_uint) -> t_ack
        self.lags = {}      # db -> [s]
        self.polls = 0
        self.stop_flag = threading.Event()
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def add(self, db, inference_id, t_ack):
        with self.lock:
            self.pending[(db, uuid.UUID(inference_id).int)] = t_ack

    def _run(self):
        while not self.stop_flag.is_set():
            with self.lock:
                by_db = {}
                for (db, idu) in self.pending:
                    by_db.setdefault(db, []).append(idu)
            for db, ids in by_db.items():
                sql = ("SELECT id_uint FROM %s.InferenceById WHERE id_uint IN (%s) FORMAT TSV"
                       % (db, ",".join("toUInt128('%d')" % i for i in ids)))
                try:
                    out = H.ch_query(self.url, sql)
                except Exception:
                    continue
                t = time.time()
                self.polls += 1
                with self.lock:
                    for line in out.split():
                        k = (db, int(line))
                        t_ack = self.pending.pop(k, None)
                        if t_ack is not None:
                            self.lags.setdefault(db, []).append(max(0.0, t - t_ack))
            time.sleep(self.interval)

    def wait_empty(self, db, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            with self.lock:
                if not any(k[0] == db for k in self.pending):
                    return True
            time.sleep(0.05)
        return False

    def stop(self):
        self.stop_flag.set()
        self.th.join()


def ms(v):
    return "%.1f" % (v * 1e3)


def run_phase(name, target, base_url, db, rate, duration, workers, lag, lag_every, ch):
    def on_ack(inf, t_ack):
        if lag_every and int(inf["inference_id"][-4:], 16) % lag_every == 0:
            lag.add(db, inf["inference_id"], t_ack)
    before = {t: T.table_count(ch, db, t) for t in ("ModelInference", "ChatInference", "JsonInference")}
    gw = T.Gateway(base_url, db, rate, duration, workers=workers, feedback_every=0,
                   seed=hash((name, target)) & 0xffff, on_ack=on_ack)
    gw.run()
    n_rows = sum(len(v) for v in gw.acked.values())
    drain = None
    if target == "sluice":
        want = {t: before[t] + len(gw.acked.get(t, [])) for t in before}
        H.wait_until(lambda: all(T.table_count(ch, db, t) >= want[t] for t in want),
                     timeout=300, interval=0.05, what="sluice delivered everything")
        drain = time.time() - gw.t_end
    lag.wait_empty(db)
    lat = sorted(gw.write_lat)
    lags = sorted(lag.lags.pop(db, []))
    n_inf = len(gw.send_times)
    wall = gw.t_end - gw.t0
    res = {
        "phase": name, "target": target, "workers": workers,
        "target_rate": rate or None, "inferences": n_inf,
        "inferences_per_s": n_inf / wall if not rate else gw.achieved_rate(),
        "write_req_per_s": gw.statuses[200] / wall,
        "non_200": sum(c for s, c in gw.statuses.items() if s != 200),
        "p50_ms": T.pct(lat, 50) * 1e3, "p99_ms": T.pct(lat, 99) * 1e3,
        "max_ms": (lat[-1] if lat else 0) * 1e3,
        "lag_samples": len(lags), "lag_p50_ms": T.pct(lags, 50) * 1e3,
        "lag_p99_ms": T.pct(lags, 99) * 1e3, "lag_max_ms": (lags[-1] if lags else 0) * 1e3,
        "rows": n_rows,
    }
    if drain is not None:
        res["drain_s"] = drain
        res["delivered_rows_per_s"] = n_rows / (gw.t_end + drain - gw.t0)
    print("%-6s %-7s %s" % (name, target, json.dumps({k: (round(v, 1) if isinstance(v, float) else v)
                                                       for k, v in res.items()
                                                       if k not in ("phase", "target")})),
          flush=True)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=15.0, help="seconds per phase and target")
    ap.add_argument("--workers", type=int, default=16, help="clients in the closed-loop phase")
    ap.add_argument("--rate", type=float, default=15.0, help="inferences/s of the paced phase")
    ap.add_argument("--tz-rate", type=float, default=200.0, help="sluice-only phase rate (0: skip)")
    ap.add_argument("--lag-every", type=int, default=4, help="sample 1 in N inferences for lag")
    ap.add_argument("--lag-interval-ms", type=float, default=20.0)
    ap.add_argument("--max-wait-ms", type=int, default=20, help="the sink's batch.max_wait_ms")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()

    tmp = H.TempDir("sluice-tzbench-")
    results = []
    try:
        ch = H.ChServer(tmp.sub("ch"), users=T.USERS)
        tz.create_schema(ch.url, T.DB)
        tz.create_schema(ch.url, T.DIRECT_DB)
        cfg = T.sluice_config(ch).replace("max_wait_ms: 20", "max_wait_ms: %d" % a.max_wait_ms)
        s = H.Sluice(tmp.sub("sluice"), cfg)
        lag = LagPoller(ch.url, a.lag_interval_ms / 1e3)
        print("engine %s, sluice %s (sink batch.max_wait_ms %d), %d cores, load %.1f"
              % (ch.query("SELECT version()").strip(), H.SLUICE_BIN, a.max_wait_ms,
                 os.cpu_count(), os.getloadavg()[0]), flush=True)
        for target, url, db in (("direct", ch.url, T.DIRECT_DB), ("sluice", s.url, T.DB)):
            results.append(run_phase("max", target, url, db, 0, a.duration, a.workers, lag,
                                     a.lag_every, ch))
        for target, url, db in (("direct", ch.url, T.DIRECT_DB), ("sluice", s.url, T.DB)):
            results.append(run_phase("paced", target, url, db, a.rate, a.duration,
                                     max(4, a.workers // 2), lag, a.lag_every, ch))
        if a.tz_rate:
            results.append(run_phase("tz", "sluice", s.url, T.DB, a.tz_rate, a.duration, 24, lag,
                                     a.lag_every, ch))
        lag.stop()
        print("lag poller: %d polls" % lag.polls, flush=True)
        s.stop()
        ch.stop()
    finally:
        H._kill_all()
        tmp.close()

    print()
    print("| phase | target | inferences/s | write req/s | p50 ms | p99 ms | lag p50 ms | lag p99 ms "
          "| drain s | delivered rows/s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print("| %s%s | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %s | %s |" % (
            r["phase"], " @%.0f/s" % r["target_rate"] if r["target_rate"] else " (%d clients)" % r["workers"],
            r["target"], r["inferences_per_s"], r["write_req_per_s"], r["p50_ms"], r["p99_ms"],
            r["lag_p50_ms"], r["lag_p99_ms"],
            "%.2f" % r["drain_s"] if "drain_s" in r else "-",
            "%.0f" % r["delivered_rows_per_s"] if "delivered_rows_per_s" in r else "-"))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
