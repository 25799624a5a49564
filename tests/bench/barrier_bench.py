#!/usr/bin/env python3
"""barrier_bench.py - what proxy.read_barrier_ms costs a read, on the modern engine
(tests/support/chserver) with TensorZero's schema. Not a test; prints numbers.

    SLUICE_BIN=build/sluice python3 tests/bench/barrier_bench.py [--reads 300] [--rate 50]

Phases (each read is the feedback endpoint's InferenceById lookup, tz.inference_by_id_request,
on one keep-alive connection):
  idle      no writes at all: reads through sluice with the default barrier (nothing pending:
            must cost what plain passthrough costs), through sluice with read_barrier_ms: 0
            (passthrough as before the barrier existed), and straight to the engine.
  load      --rate inferences/s of steady gateway writes (two concurrent INSERTs each, on
            their own threads) into sluice; the reader writes one inference itself, then
            looks it up at once (read-your-writes: the read has that write, and usually
            others, pending). Reported: read latency through sluice (default config,
            batch.max_wait_ms 200), the share answered "waited"/"timeout", whether the
            lookup found the row, the same lookup straight to the engine under the same
            load (the row inserted there synchronously first), and through sluice with
            read_barrier_ms: 0 (what the barrier adds = the default row minus this one;
            without the barrier the lookup often misses the row: 'found' says how often).
            The engine (one chDB session) is the bottleneck under load: compare the rows
            of one run, not runs.
"""
import argparse
import os
import random
import sys
import threading
import time
import urllib.parse
import http.client

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import harness as H  # noqa: E402

sys.path.insert(0, os.path.join(H.SRC, "tests", "fixtures", "tensorzero"))
import tz  # noqa: E402

DB = "tz"


def conn_for(url):
    u = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=60)


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p / 100.0))] if v else float("nan")


def summary(name, lat):
    print("  %-44s n=%4d  p50 %7.2f ms  p99 %7.2f ms" %
          (name, len(lat), pct(lat, 50) * 1e3, pct(lat, 99) * 1e3), flush=True)


def read_loop(url, ids, n):
    c = conn_for(url)
    lat, hdr = [], {}
    for i in range(n):
        r = tz.inference_by_id_request(ids[i % len(ids)], DB)
        t0 = time.perf_counter()
        st, h, _ = r.send(url, conn=c)
        lat.append(time.perf_counter() - t0)
        assert st == 200, st
        k = h.get("x-sluice-read-barrier", "-")
        hdr[k] = hdr.get(k, 0) + 1
    c.close()
    return lat, hdr


class Writers:
    """Steady gateway writes at rate inferences/s into url."""

    def __init__(self, url, rate, threads=4):
        self.url, self.stop, self.sent = url, threading.Event(), 0
        self.th = [threading.Thread(target=self.run, args=(rate / threads, i), daemon=True)
                   for i in range(threads)]
        for t in self.th:
            t.start()

    def run(self, rate, seed):
        rng = random.Random(seed)
        c1, c2 = conn_for(self.url), conn_for(self.url)
        nxt = time.time()
        while not self.stop.is_set():
            inf = tz.make_inference(rng, DB, kind=rng.choice(["chat", "json"]))
            a, b = inf["requests"]
            th = threading.Thread(target=lambda: a.send(self.url, conn=c1))
            th.start()
            assert b.send(self.url, conn=c2)[0] == 200
            th.join()
            self.sent += 1
            nxt += 1.0 / rate
            time.sleep(max(0.0, nxt - time.time()))

    def close(self):
        self.stop.set()
        for t in self.th:
            t.join()


def sluice(tmp, name, ch, extra=""):
    cfg = ("wal:\n  dir: {wal_dir}\nproxy:\n  listen: {listen}\n%s"
           "admin:\n  listen: {admin}\nsinks:\n  - name: ch\n    type: clickhouse\n"
           "    url: %s\n" % (extra, ch.url))
    return H.Sluice(tmp.sub(name), cfg)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reads", type=int, default=300)
    ap.add_argument("--rate", type=float, default=50.0)
    a = ap.parse_args()
    tmp = H.TempDir()
    try:
        ch = H.ChServer(tmp.sub("ch"))
        tz.create_schema(ch.url, DB)
        rng = random.Random(1)
        ids = []
        for _ in range(20):
            inf = tz.make_inference(rng, DB, kind="chat")
            for r in inf["requests"]:
                assert r.send(ch.url)[0] == 200
            ids.append(inf["inference_id"])
        s_on = sluice(tmp, "s_on", ch)
        s_off = sluice(tmp, "s_off", ch, "  read_barrier_ms: 0\n")
        print("idle (no writes; %d lookups each):" % a.reads)
        for name, url in (("engine direct", ch.url), ("sluice read_barrier_ms 0 (before)", s_off.url),
                          ("sluice default barrier, nothing pending", s_on.url)):
            read_loop(url, ids, 20)  # warm-up
            lat, hdr = read_loop(url, ids, a.reads)
            summary(name, lat)
            if url == s_on.url:
                print("    barrier headers:", hdr)

        print("load (%.0f inferences/s of gateway writes; each lookup right after its own write):"
              % a.rate)
        for target, url in (("engine direct", ch.url), ("sluice read_barrier_ms 0", s_off.url),
                            ("sluice default barrier", s_on.url)):
            w = Writers(url, a.rate)
            c = conn_for(url)
            lat, hdr, found = [], {}, 0
            t_end = time.time() + 600
            for i in range(a.reads):
                inf = tz.make_inference(rng, DB, kind="chat")
                for r in inf["requests"]:
                    assert r.send(url, conn=c)[0] == 200
                q = tz.inference_by_id_request(inf["inference_id"], DB)
                t0 = time.perf_counter()
                st, h, body = q.send(url, conn=c)
                lat.append(time.perf_counter() - t0)
                assert st == 200, (st, body)
                found += inf["inference_id"].encode() in body or bool(body.strip())
                k = h.get("x-sluice-read-barrier", "-")
                hdr[k] = hdr.get(k, 0) + 1
                time.sleep(0.02)
                if time.time() > t_end:
                    break
            w.close()
            summary(target, lat)
            print("    found %d/%d  writes sent %d  barrier headers: %s" %
                  (found, len(lat), w.sent, hdr), flush=True)
        s_on.stop()
        s_off.stop()
    finally:
        tmp.close()


if __name__ == "__main__":
    main()
