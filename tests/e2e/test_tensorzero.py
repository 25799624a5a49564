#!/usr/bin/env python3
"""test_tensorzero.py - TensorZero's gateway traffic end to end through sluice into the modern
ClickHouse engine (chDB 26.x behind tests/support/chserver; issue 11 part 4).

The client here behaves like the gateway (../../../shared/tensorzero.md): keep-alive
connections closed after 2 s idle, credentials as X-ClickHouse-User/Key (proxy.users on), every
request built by tests/fixtures/tensorzero/tz.py in the modern shape (SETTINGS clause, the
gateway's URL settings), X-ClickHouse-Summary parsed when present; each inference is two
concurrent POSTs (ModelInference + Chat/JsonInference), and a share of inferences get feedback,
which first polls the InferenceById query THROUGH sluice (passthrough, proxy.read_barrier_ms on)
every 2 s until 6 s after the inference's UUIDv7 timestamp, then posts the feedback row. Cases:
  - steady traffic: every write 200, every feedback lookup finds its inference in time, and
    every table holds exactly what the same rows inserted directly into another database of
    the same engine hold (SELECT * ... ORDER BY id FORMAT JSONEachRow, per table, and the
    InferenceById view);
  - the engine killed (-9) for 20 s mid-run and restarted on its data dir: writes see only
    200s, lookups during the outage get ClickHouse-shaped 502s, every acked row lands once;
  - kill -9 of sluice in the middle of sends (until kills land with a batch in flight),
    restart: 0 duplicates (tables with non_replicated_deduplication_window; the sink's
    insert_deduplication_token);
  - schema violations (unknown field with skip_unknown_fields=0, null into a non-Nullable
    column) in a gateway batch: dead-lettered with the engine's own message (admin
    GET /v1/dlq and `sluice dlq list`), the rest of the batch delivered.

The steady case runs TZ_RATE=200 inferences/s (400 write requests/s, plus feedback for 1 in 10
and a 1 MiB-payload inference in 1000) for TZ_DURATION=30 s, as the issue asks: the Python
client holds 200.0/s on the 2-core dev machine even at load average ~10 from other jobs (sluice
acks p50 4-16 ms, p99 60-130 ms). The achieved rate is printed; the test fails only below 75%
of the target (a client/CPU limit, not a sluice property). The outage and kill cases run at
40 and 60/s. Whole file: ~1m45s-2m on 2 cores.
Run: SLUICE_BIN=build/sluice python3 tests/e2e/test_tensorzero.py"""
import collections
import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

sys.path.insert(0, os.path.join(H.SRC, "tests", "fixtures", "tensorzero"))
import tz  # noqa: E402

DB = "tz"
DIRECT_DB = "tz_direct"
GW_USER, GW_PASSWORD = "gateway", "gw-s3cret"
USERS = "default:,%s:%s" % (GW_USER, GW_PASSWORD)
RATE = float(os.environ.get("TZ_RATE", "200"))
DURATION = float(os.environ.get("TZ_DURATION", "30"))

WRITE_TABLES = ["ModelInference", "ChatInference", "JsonInference"] + sorted(tz.FEEDBACK_TABLES.values())
ORDER_KEY = {"StaticEvaluationHumanFeedback": "feedback_id", "InferenceById": "id_uint"}

# read_barrier_ms: a lookup waits (up to this) until every earlier insert is delivered. The test
# engine serves all requests through one chDB session, so under CPU contention (2 cores shared
# with other jobs) a sink round of 8 tables can take over a second: with 1000 ms, 29 of 600
# lookups missed the gateway's 6 s window at load average ~20 (none at load ~3-9). 3000 ms keeps
# the first lookup inside the window with margin; the gateway retries 2 s later anyway.
CONFIG = """wal:
  dir: {wal_dir}
proxy:
  listen: {listen}
  passthrough_url: %(url)s
  read_barrier_ms: 3000
  users:
    - user: %(user)s
      password: %(password)s
admin:
  listen: {admin}
sinks:
  - name: ch
    type: clickhouse
    url: %(url)s
    user: %(user)s
    password: %(password)s
    batch:
      max_rows: 5000
      max_wait_ms: 20
    retry:
      initial_backoff_ms: 50
      max_backoff_ms: 1000
"""


def sluice_config(ch):
    return CONFIG % {"url": ch.url, "user": GW_USER, "password": GW_PASSWORD}


def row_key(table, row):
    return row[ORDER_KEY.get(table, "id")]


# --------------------------------------------------------------------------------------
# the gateway-shaped client

class Gateway:
    """Sends TensorZero-shaped traffic to base_url at `rate` inferences/s for `duration` s.

    Inference i is sent at t0 + i/rate by worker i % workers (so a slow answer delays only that
    worker's next inferences); its two INSERTs go out at the same time on the worker's two
    keep-alive connections (both requests written before either answer is read). Every
    `feedback_every`-th inference gets feedback after `feedback_delay` s: the InferenceById
    lookup through base_url, repeated every 2 s until 6 s after the inference's timestamp
    (at least one retry, as the gateway does), then the feedback INSERT if it was found.
    A lookup that is not 200 aborts that feedback (the gateway does the same).

    Results: acked[table] = rows whose request got 200; statuses (Counter of write statuses,
    'conn' for connection errors); write_lat (s per write request); feedback list of dicts
    (found, attempts, lookup latencies, error). rate=0 is a closed loop: every worker sends
    its next inference as soon as the last one is acked, for `duration` s. on_ack(inf, t) is
    called (on the worker's thread) once both writes of an inference got 200. Every
    `big_every`-th inference carries raw_request/raw_response of big_bytes each (multi-MB
    ModelInference bodies, as the gateway sends for long model calls)."""

    def __init__(self, base_url, database, rate, duration, workers=24, feedback_every=5,
                 feedback_delay=(0.0, 0.5), seed=1, user=GW_USER, password=GW_PASSWORD,
                 on_ack=None, feedback_workers=48, big_every=0, big_bytes=1 << 20):
        self.base_url, self.db = base_url, database
        u = urllib.parse.urlsplit(base_url)
        self.host, self.port = u.hostname, u.port
        self.rate, self.duration, self.workers = rate, duration, workers
        self.feedback_every, self.feedback_delay = feedback_every, feedback_delay
        self.seed, self.user, self.password = seed, user, password
        self.on_ack = on_ack
        self.big_every, self.big_bytes = big_every, big_bytes
        self.lock = threading.Lock()
        self.acked = collections.defaultdict(list)
        self.statuses = collections.Counter()
        self.errors = []          # (status, body) of non-200 writes, first few
        self.bad_summaries = []   # X-ClickHouse-Summary values the gateway could not parse
        self.write_lat = []
        self.feedback = []
        self.sent = 0
        self.send_times = []
        self.stop_flag = threading.Event()
        self.fb_pool = ThreadPoolExecutor(feedback_workers, thread_name_prefix="feedback")
        self.fb_pending = []
        self.tls = threading.local()
        self.t0 = self.t_end = None

    # ---- connections
    def _conn(self, name):
        """This thread's keep-alive connection `name`; like the gateway's pool, one idle for
        more than 2 s is closed and a new one opened."""
        c = getattr(self.tls, name, None)
        now = time.monotonic()
        if c is not None and now - c.last_used > 2.0:
            c.close()
            c = None
        if c is None:
            c = http.client.HTTPConnection(self.host, self.port, timeout=120)
            setattr(self.tls, name, c)
        c.last_used = now
        return c

    def _drop(self, name):
        c = getattr(self.tls, name, None)
        if c is not None:
            c.close()
            setattr(self.tls, name, None)

    def _send(self, req, name):
        """One request on this thread's connection `name` (a broken one is dropped and the
        error raised: the gateway does not retry)."""
        c = self._conn(name)
        try:
            st, h, body = req.send(self.base_url, conn=c)
        except (http.client.HTTPException, OSError):
            self._drop(name)
            raise
        c.last_used = time.monotonic()
        self._check_summary(h.get("x-clickhouse-summary"))
        return st, h, body

    def _check_summary(self, value):
        """The gateway parses X-ClickHouse-Summary when present (counters are JSON strings);
        an unparseable one is an error for it."""
        if value is None:
            return
        try:
            d = json.loads(value)
            ok = isinstance(d, dict) and all(isinstance(v, str) for v in d.values())
        except ValueError:
            ok = False
        if not ok:
            with self.lock:
                self.bad_summaries.append(value)

    def _start(self, req, name):
        c = self._conn(name)
        h = dict(req.headers)
        h["Content-Length"] = str(len(req.body))
        c.request(req.method, req.path, body=req.body, headers=h)
        return c

    # ---- one inference
    def _inference(self, i, rng):
        kind = "chat" if i % 3 else "json"
        big = self.big_bytes if self.big_every and i % self.big_every == 7 else 0
        inf = tz.make_inference(rng, self.db, kind=kind, user=self.user, password=self.password,
                                payload_bytes=big)
        t = time.time()
        results = []
        conns = []
        for k, req in enumerate(inf["requests"]):
            name = "w%d" % k
            try:
                conns.append((name, self._start(req, name)))
            except (http.client.HTTPException, OSError):
                self._drop(name)
                conns.append((name, None))
        for (name, c), req in zip(conns, inf["requests"]):
            if c is None:
                results.append(("conn", b"", time.time()))
                continue
            try:
                r = c.getresponse()
                body = r.read()
                c.last_used = time.monotonic()
                self._check_summary(r.getheader("X-ClickHouse-Summary"))
                results.append((r.status, body, time.time()))
            except (http.client.HTTPException, OSError) as e:
                self._drop(name)
                results.append(("conn", repr(e).encode(), time.time()))
        ok = True
        with self.lock:
            self.send_times.append(t)
            for (st, body, te), req in zip(results, inf["requests"]):
                self.statuses[st] += 1
                if st == 200:
                    self.acked[req.table].extend(req.rows)
                    self.write_lat.append(te - t)
                else:
                    ok = False
                    if len(self.errors) < 20:
                        self.errors.append((req.table, st, body[:300]))
        if not ok:
            return
        t_ack = max(te for _, _, te in results)
        if self.feedback_every and i % self.feedback_every == 0:
            delay = rng.uniform(*self.feedback_delay)
            kind = sorted(tz.FEEDBACK_TABLES)[(i // self.feedback_every) % len(tz.FEEDBACK_TABLES)]
            fut = self.fb_pool.submit(self._feedback, inf, kind, t_ack + delay, rng.getrandbits(32))
            with self.lock:
                self.fb_pending.append(fut)
        if self.on_ack:
            self.on_ack(inf, t_ack)

    # ---- feedback: the gateway's existence check, then the feedback row
    def _feedback(self, inf, kind, start_at, seed):
        now = time.time()
        if start_at > now:
            time.sleep(start_at - now)
        rng = random.Random(seed)
        deadline = tz.uuid7_ms(inf["inference_id"]) / 1000.0 + 6.0
        rec = {"inference_id": inf["inference_id"], "kind": kind, "found": False, "attempts": 0,
               "lookup_lat": [], "error": None, "posted": None}
        lookup = tz.inference_by_id_request(inf["inference_id"], self.db, self.user, self.password)
        while True:
            rec["attempts"] += 1
            t = time.time()
            try:
                st, _, body = self._send(lookup, "fb")
            except (http.client.HTTPException, OSError) as e:
                st, body = "conn", repr(e).encode()
            rec["lookup_lat"].append(time.time() - t)
            if st != 200:
                rec["error"] = (st, body[:300])
                break
            rows = [json.loads(l) for l in body.decode().splitlines() if l.strip()]
            if rows:
                want = {"function_name": inf["function_name"], "function_type": inf["function_type"],
                        "variant_name": inf["variant_name"], "episode_id": inf["episode_id"]}
                rec["found"] = rows[0] == want
                if not rec["found"]:
                    rec["error"] = ("mismatch", rows[0], want)
                break
            if rec["attempts"] >= 2 and time.time() >= deadline:
                break
            time.sleep(2.0)
        rec["found_at"] = time.time()
        if rec["found"]:
            req = tz.feedback_request(kind, inf["inference_id"], self.db, self.user, self.password,
                                      rng=rng)
            try:
                st, _, body = self._send(req, "fb")
            except (http.client.HTTPException, OSError) as e:
                st, body = "conn", repr(e).encode()
            rec["posted"] = st
            with self.lock:
                self.statuses[st] += 1
                if st == 200:
                    self.acked[req.table].extend(req.rows)
                elif len(self.errors) < 20:
                    self.errors.append((req.table, st, body[:300]))
        with self.lock:
            self.feedback.append(rec)

    # ---- the run
    def _worker(self, w):
        rng = random.Random(self.seed * 1000003 + w)
        n = int(self.rate * self.duration) if self.rate else 1 << 62
        for i in range(w, n, self.workers):
            if self.stop_flag.is_set():
                break
            now = time.time()
            if self.rate:
                at = self.t0 + i / self.rate
                if at > now:
                    time.sleep(at - now)
            elif now >= self.t0 + self.duration:
                break
            self._inference(i, rng)
        for name in ("w0", "w1", "fb"):
            self._drop(name)

    def run(self):
        """Send everything; returns after every write and feedback has finished."""
        self.t0 = time.time() + 0.05
        ths = [threading.Thread(target=self._worker, args=(w,), daemon=True)
               for w in range(self.workers)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        self.t_end = time.time()
        while True:
            with self.lock:
                pending = [f for f in self.fb_pending if not f.done()]
            if not pending:
                break
            for f in pending:
                f.result()
        self.fb_pool.shutdown(wait=True)
        return self

    def start(self):
        th = threading.Thread(target=self.run, daemon=True)
        th.start()
        return th

    # ---- numbers
    def achieved_rate(self):
        ts = sorted(self.send_times)
        if len(ts) < 2:
            return 0.0
        return (len(ts) - 1) / (ts[-1] - ts[0])

    def summary(self):
        lat = sorted(self.write_lat)
        fb = self.feedback
        first = sum(1 for r in fb if r["found"] and r["attempts"] == 1)
        lk = sorted(x for r in fb for x in r["lookup_lat"])
        return ("%d inferences at %.1f/s (target %.0f/s, %d workers), writes %s, write p50 %.1f ms "
                "p99 %.1f ms, feedback %d (found %d, on the first lookup %d, errors %d), lookup "
                "p50 %.1f ms p99 %.1f ms" % (
                    len(self.send_times), self.achieved_rate(), self.rate, self.workers,
                    dict(self.statuses), pct(lat, 50) * 1e3, pct(lat, 99) * 1e3, len(fb),
                    sum(1 for r in fb if r["found"]), first, sum(1 for r in fb if r["error"]),
                    pct(lk, 50) * 1e3, pct(lk, 99) * 1e3))


def pct(sorted_vals, p):
    if not sorted_vals:
        return 0.0
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


# --------------------------------------------------------------------------------------
# engine-side checks

def select_rows(ch, sql):
    out = ch.query(sql, output_format_json_quote_64bit_integers=1)
    return out.splitlines()


def table_count(ch, db, table, distinct=False):
    key = ORDER_KEY.get(table, "id")
    f = "uniqExact(%s)" % key if distinct else "count()"
    return int(ch.query("SELECT %s FROM %s.%s" % (f, db, table)).strip())


def wait_delivered(ch, db, acked, timeout=120):
    """Until every table of db holds at least as many rows as were acked into it."""
    def done():
        return all(table_count(ch, db, t) >= len(acked.get(t, [])) for t in WRITE_TABLES)
    H.wait_until(done, timeout=timeout, interval=0.25, what="every acked row delivered")


def insert_direct(ch, table, rows, batch=500):
    """The same rows, same statement shape (SETTINGS clause, the gateway's URL settings and
    credential headers) straight into DIRECT_DB, many rows per body as the gateway's
    batch_writes sends them (one request per row would take minutes on the test engine)."""
    for k in range(0, len(rows), batch):
        req = tz.insert_request(table, rows[k:k + batch], DIRECT_DB, GW_USER, GW_PASSWORD)
        st, _, body = req.send(ch.url)
        assert st == 200, (table, st, body[:500])


def assert_same_as_direct(ch, acked):
    """Per table: sluice's database and the direct one hold the same rows, value for value."""
    tz.create_schema(ch.url, DIRECT_DB)
    for t in WRITE_TABLES:
        insert_direct(ch, t, acked.get(t, []))
    for t in WRITE_TABLES + ["InferenceById"]:
        key = ORDER_KEY.get(t, "id")
        a = select_rows(ch, "SELECT * FROM %s.%s ORDER BY %s FORMAT JSONEachRow" % (DB, t, key))
        b = select_rows(ch, "SELECT * FROM %s.%s ORDER BY %s FORMAT JSONEachRow" % (DIRECT_DB, t, key))
        n_acked = len(acked.get(t, [])) if t != "InferenceById" else (
            len(acked.get("ChatInference", [])) + len(acked.get("JsonInference", [])))
        assert len(a) == n_acked, (t, len(a), n_acked)
        assert len(a) == len(b), (t, len(a), len(b))
        for x, y in zip(a, b):
            assert x == y, (t, x[:400], y[:400])
        print("  %s: %d rows identical to the direct insert" % (t, len(a)), flush=True)


def assert_each_acked_row_once(ch, acked, what):
    for t in WRITE_TABLES:
        rows = acked.get(t, [])
        want = {row_key(t, r) for r in rows}
        assert len(want) == len(rows), (t, "generator made duplicate ids")
        key = ORDER_KEY.get(t, "id")
        got = [json.loads(l)[key] for l in
               select_rows(ch, "SELECT %s FROM %s.%s FORMAT JSONEachRow" % (key, DB, t))]
        dups = [k for k, c in collections.Counter(got).items() if c > 1]
        assert not dups, "%s: %s: %d duplicated ids, e.g. %s" % (what, t, len(dups), dups[:3])
        missing = want - set(got)
        assert not missing, "%s: %s: %d acked rows missing, e.g. %s" % (
            what, t, len(missing), sorted(missing)[:3])
        # rows whose ack was lost (connection cut) may be there too, once
        print("  %s: %d acked, %d stored, 0 duplicates" % (t, len(want), len(got)), flush=True)


def set_dedup_window(ch, db):
    for t in WRITE_TABLES:
        ch.query("ALTER TABLE %s.%s MODIFY SETTING non_replicated_deduplication_window = 10000"
                 % (db, t))


def check_gateway_startup_through_sluice(ch, s):
    """What the gateway does at startup before any write (tensorzero.md §3): /ping, queries
    whose UNKNOWN_DATABASE / UNKNOWN_TABLE error bodies it matches, and an INSERT ... VALUES
    with server-side parameters: sluice answers exactly as the engine does."""
    st, _, body = H.http_request(s.url + "/ping")
    assert st == 200 and body == b"Ok.\n", (st, body)
    hd = tz.auth_headers(GW_USER, GW_PASSWORD)
    for path, sql in ((tz.url_path("nosuchdb"), "SELECT 1"),
                      (tz.url_path(DB), "SELECT COUNT() FROM TensorZeroMigration")):
        a = H.http_request(ch.url + path, "POST", sql, hd)
        b = H.http_request(s.url + path, "POST", sql, hd)
        assert a[0] == b[0] == 404 and a[2] == b[2], (a, b)
        assert a[1]["x-clickhouse-exception-code"] == b[1]["x-clickhouse-exception-code"], (a, b)
        assert b"(UNKNOWN_DATABASE)" in b[2] or b"(UNKNOWN_TABLE)" in b[2], b
    fid = tz.uuid7()
    path = tz.url_path(DB, extra=[("param_id", fid), ("param_v", "startup")]) + \
        "&mutations_sync=2&alter_sync=2&join_algorithm=auto"
    st, h, body = H.http_request(
        s.url + path, "POST", "INSERT INTO CommentFeedback (id, target_id, target_type, value) "
        "VALUES ({id:UUID}, {id:UUID}, 'inference', {v:String})", hd)
    assert st == 200, (st, body)
    json.loads(h["x-clickhouse-summary"])
    got = ch.query("SELECT value FROM %s.CommentFeedback WHERE id = '%s'" % (DB, fid))
    assert got == "startup\n", got
    ch.query("TRUNCATE TABLE %s.CommentFeedback" % DB)


def setup(tmp):
    ch = H.ChServer(tmp.sub("ch"), users=USERS)
    tz.create_schema(ch.url, DB)
    return ch


# --------------------------------------------------------------------------------------
# cases

def test_gateway_traffic_lands_identical_and_feedback_finds_inferences():
    tmp = H.TempDir("sluice-tz-")
    try:
        ch = setup(tmp)
        s = H.Sluice(tmp.sub("sluice"), sluice_config(ch))
        check_gateway_startup_through_sluice(ch, s)
        # feedback for 1 inference in 10 (20/s at 200/s): each lookup is a query on the test
        # engine, which serves every request through one chDB session
        gw = Gateway(s.url, DB, RATE, DURATION, feedback_every=10, big_every=1000).run()
        print("  " + gw.summary(), flush=True)
        print("  achieved rate: %.1f inferences/s (%.1f write requests/s)"
              % (gw.achieved_rate(), 2 * gw.achieved_rate()), flush=True)
        assert set(gw.statuses) == {200}, (dict(gw.statuses), gw.errors[:5])
        assert not gw.bad_summaries, gw.bad_summaries[:3]
        assert gw.achieved_rate() >= 0.75 * RATE, "client fell behind: %.1f/s" % gw.achieved_rate()
        n_fb = len(gw.feedback)
        assert n_fb >= int(RATE * DURATION) // 10 - 1, n_fb
        bad = [r for r in gw.feedback if not r["found"]]
        assert not bad, "%d of %d feedback lookups did not find their inference: %s" % (
            len(bad), n_fb, bad[:3])
        late = [r for r in gw.feedback
                if r["found_at"] > tz.uuid7_ms(r["inference_id"]) / 1000.0 + 6.0]
        assert not late, "%d found after the 6 s window: %s" % (len(late), late[:3])
        assert all(r["posted"] == 200 for r in gw.feedback)
        wait_delivered(ch, DB, gw.acked)
        time.sleep(0.5)
        assert_same_as_direct(ch, gw.acked)
        st, _, body = H.http_request(s.admin_url + "/v1/dlq")
        assert st == 200 and json.loads(body) == [], body
        assert s.stop() == 0
    finally:
        tmp.close()


def test_engine_killed_20s_mid_run_writes_only_200_every_acked_row_once():
    tmp = H.TempDir("sluice-tz-")
    try:
        ch = setup(tmp)
        set_dedup_window(ch, DB)
        s = H.Sluice(tmp.sub("sluice"), sluice_config(ch))
        rate = min(RATE, 40.0)
        gw = Gateway(s.url, DB, rate, 36.0, workers=12, feedback_every=4, seed=2)
        th = gw.start()
        time.sleep(6.0)
        ch.kill()
        t_kill = time.time()
        print("  engine killed (kill -9) at t=%.1fs" % (t_kill - gw.t0), flush=True)
        time.sleep(20.0)
        ch.start()
        print("  engine back after %.1fs" % (time.time() - t_kill), flush=True)
        th.join(timeout=120)
        assert not th.is_alive()
        print("  " + gw.summary(), flush=True)
        assert set(gw.statuses) == {200}, (dict(gw.statuses), gw.errors[:5])
        assert not gw.bad_summaries, gw.bad_summaries[:3]
        # lookups during the outage: the gateway's poll aborts on a ClickHouse-shaped error
        errs = [r["error"] for r in gw.feedback if r["error"]]
        print("  feedback lookups refused during the outage: %d" % len(errs), flush=True)
        assert errs, "no lookup hit the outage"
        for st, body in errs:
            assert st == 502 and body.startswith(b"Code: "), (st, body)
        wait_delivered(ch, DB, gw.acked, timeout=120)
        time.sleep(1.0)
        assert_each_acked_row_once(ch, gw.acked, "after the engine outage")
        assert s.stop() == 0
    finally:
        tmp.close()


def test_sluice_kill9_mid_send_no_duplicates():
    tmp = H.TempDir("sluice-tz-")
    try:
        ch = setup(tmp)
        set_dedup_window(ch, DB)
        s = H.Sluice(tmp.sub("sluice"), sluice_config(ch))
        log_path = os.path.join(s.dir, "sluice.log")

        def resends():  # a restart that found a batch in flight at the kill logs this
            with open(log_path) as f:
                return f.read().count("resending the in-flight")
        gw = Gateway(s.url, DB, min(RATE, 60.0), 24.0, workers=12, feedback_every=0, seed=3)
        th = gw.start()
        kills = 0
        # kill until at least two kills landed while the sink had a batch in flight (at most 6)
        while kills < 6 and th.is_alive() and not (kills >= 3 and resends() >= 2):
            time.sleep(3.0)
            s.kill9()
            s.start()
            kills += 1
            time.sleep(0.3)
        gw.stop_flag.set()
        th.join(timeout=120)
        assert not th.is_alive()
        print("  " + gw.summary(), flush=True)
        print("  kill -9 of sluice: %d, restarts that resent an in-flight batch: %d"
              % (kills, resends()), flush=True)
        assert resends() >= 1, "no kill landed mid-send"
        assert gw.statuses[200] > 0
        cut = sum(c for st, c in gw.statuses.items() if st != 200)
        assert set(gw.statuses) <= {200, "conn"}, (dict(gw.statuses), gw.errors[:5])
        assert not gw.bad_summaries, gw.bad_summaries[:3]
        print("  writes cut by the kills (no answer): %d" % cut, flush=True)
        wait_delivered(ch, DB, gw.acked, timeout=120)
        time.sleep(1.0)
        assert_each_acked_row_once(ch, gw.acked, "after kill -9 of sluice")
        assert s.stop() == 0
    finally:
        tmp.close()


def test_schema_violations_dead_lettered_rest_of_batch_delivered():
    tmp = H.TempDir("sluice-tz-")
    try:
        ch = setup(tmp)
        s = H.Sluice(tmp.sub("sluice"), sluice_config(ch))
        rng = random.Random(4)
        infs = [tz.make_inference(rng, DB, kind="chat") for _ in range(20)]
        rows = [i["rows"]["ChatInference"] for i in infs]
        model_rows = [i["rows"]["ModelInference"] for i in infs]
        rows[5] = dict(rows[5], unknown_column="x")   # input_format_skip_unknown_fields=0
        rows[9] = dict(rows[9], input=None)           # null into String, null_as_default=0
        # the gateway's batch_writes shape: many rows in one body
        for table, rs in (("ChatInference", rows), ("ModelInference", model_rows)):
            req = tz.insert_request(table, rs, DB, GW_USER, GW_PASSWORD)
            st, _, body = req.send(s.url)
            assert st == 200, (st, body)
        H.wait_until(lambda: table_count(ch, DB, "ChatInference") >= 18
                     and table_count(ch, DB, "ModelInference") >= 20, timeout=60,
                     what="the good rows")

        def dlq():
            st, _, body = H.http_request(s.admin_url + "/v1/dlq")
            assert st == 200, body
            return json.loads(body)
        entries = H.wait_until(lambda: len(dlq()) >= 2 and dlq(), timeout=30, what="2 DLQ entries")
        time.sleep(0.5)
        entries = dlq()
        assert len(entries) == 2, entries
        assert all(e["table"] == "ChatInference" and e["db"] == DB and e["n_rows"] == 1
                   for e in entries), entries
        errors = sorted(e["error"] for e in entries)
        for e in errors:
            assert e.startswith("Code: ") and "DB::Exception" in e, e
        assert any("unknown_column" in e and "(INCORRECT_DATA)" in e for e in errors), errors
        # the engine's own message: the same bad row sent straight to the engine is refused
        # with the same text (up to ClickHouse's "(version ...)" suffix)
        tz.create_schema(ch.url, DIRECT_DB)
        for bad in (rows[5], rows[9]):
            st, _, body = tz.insert_request("ChatInference", [bad], DIRECT_DB, GW_USER,
                                            GW_PASSWORD).send(ch.url)
            assert st == 400, (st, body)
            msg = body.decode().split(" (version ")[0].strip()
            assert any(e.strip().startswith(msg) for e in errors), (msg, errors)
        print("  DLQ: " + " | ".join(e[:160] for e in errors), flush=True)
        good = [r for k, r in enumerate(rows) if k not in (5, 9)]
        acked = {"ChatInference": good, "ModelInference": model_rows}
        assert table_count(ch, DB, "ChatInference") == 18
        assert table_count(ch, DB, "InferenceById") == 18
        assert_same_as_direct(ch, acked)
        s.stop()
        _, out, _ = s.cli("dlq", "list", "--config", s.config_path)
        assert out.count("ChatInference") == 2 and out.count("Code: ") == 2, out
        assert "unknown_column" in out, out
    finally:
        tmp.close()


if __name__ == "__main__":
    H.run_tests(globals())
