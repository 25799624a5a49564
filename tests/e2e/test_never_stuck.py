#!/usr/bin/env python3
"""test_never_stuck.py - issue 16: sinks against a StarRocks that behaves like the real one
(tests/e2e/starrocks_emulator.py, both label modes) and a ClickHouse that answers an error
text sluice has never seen.

- exactly once across a lost reply, a 503 burst and a RUNNING label, in either label mode
  (Label Already Exists + ExistingJobStatus, or Fail "has already been used" resolved with
  get_load_state), and the lag returns to 0;
- one invalid-UTF-8 row: dead-lettered by the StarRocks sink within a minute, the other rows
  delivered, the ClickHouse sink gets every row;
- a value that does not convert lands in the DLQ, not as NULL (strict_mode by default);
- an unknown error text for one row: the rest delivered, that row in the DLQ, for both sinks;
- two FE URLs (two ClickHouse replicas) with the first down: rows arrive, /v1/sinks and
  /metrics show which is down;
- FE "No backend alive." is retried with the normal backoff, not the configuration one;
- a JSON size-limit reply bisects; filtered rows are counted with their ErrorURL.
Run: SLUICE_BIN=build/sluice python3 tests/e2e/test_never_stuck.py"""
import http.server
import json
import os
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

DB = "ns"
SR_TABLES = {DB + ".events": [["id", "BIGINT NOT NULL"], ["name", "VARCHAR(256)"],
                              ["v", "INT"]]}

BASE = """wal:
  dir: {wal_dir}
proxy:
  listen: {listen}
  passthrough_url: %(passthrough)s
admin:
  listen: {admin}
shutdown:
  drain_timeout_s: 5
sinks:
"""

SINK = """  - name: %(name)s
    type: %(type)s
    url: %(url)s
    password: "%(pw)s"
    batch:
      max_rows: %(rows)d
      max_wait_ms: 50
    retry:
      initial_backoff_ms: 50
      max_backoff_ms: %(max_backoff)d
    connect_timeout_ms: 500
    request_timeout_ms: 5000
%(extra)s"""


def config(sr=None, ch=None, rows=1000, max_backoff=1000, sr_extra="", ch_extra="",
           passthrough=None):
    y = BASE % {"passthrough": passthrough or ch or "http://127.0.0.1:9"}
    if ch:
        y += SINK % {"name": "ch", "type": "clickhouse", "url": ch, "pw": "", "rows": rows,
                     "max_backoff": max_backoff, "extra": ch_extra}
    if sr:
        y += SINK % {"name": "sr", "type": "starrocks", "url": sr, "pw": "srpw", "rows": rows,
                     "max_backoff": max_backoff, "extra": sr_extra}
    return y


def rows_of(a, b, over=None):
    over = over or {}
    return [dict({"id": i, "name": "n%d" % i, "v": i}, **over.get(i, {})) for i in range(a, b)]


def body_of(rows):
    return ("\n".join(json.dumps(r) for r in rows) + "\n").encode()


def insert(s, body):
    st, _, reply = s.insert("events", body, database=DB)
    assert st == 200, (st, reply)


def emulator(tmp, name="sr", args=()):
    return H.StarRocksEmulator(tmp.sub(name), SR_TABLES, password="srpw", extra_args=list(args))


def sinks(s):
    st, _, body = H.http_request(s.admin_url + "/v1/sinks")
    assert st == 200, (st, body)
    d = json.loads(body)
    return {x["name"]: x for x in (d["sinks"] if isinstance(d, dict) else d)}


def dlq(s, sink):
    st, _, body = H.http_request(s.admin_url + "/v1/dlq?sink=" + sink)
    assert st == 200, (st, body)
    return json.loads(body)


def sr_ids(sr):
    return sorted(int(r["id"]) for r in sr.rows(DB + ".events"))


def wait_lag_zero(s, name, timeout=60):
    H.wait_until(lambda: sinks(s)[name]["lag_records"] == 0, timeout=timeout,
                 what="sink %s lag back to 0" % name)


class FakeClickHouse:
    """A ClickHouse HTTP interface that stores JSONEachRow rows in memory and refuses any
    INSERT whose body holds `poison` with an exception code no release has (the shape of a
    modern server: HTTP 500, X-ClickHouse-Exception-Code, "Code: N. DB::Exception: ...")."""

    def __init__(self, poison):
        self.rows, self.refused, self.lock = [], 0, threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def reply(self, code, body, headers=()):
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                if "version()" in q.get("query", [""])[0]:
                    return self.reply(200, b"24.3.1.1\n")
                self.reply(200, b"Ok.\n")

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                if poison in body:
                    with fake.lock:
                        fake.refused += 1
                    msg = b"Code: 1999. DB::Exception: Something no release has said yet. (NEW)\n"
                    return self.reply(500, msg, [("X-ClickHouse-Exception-Code", "1999")])
                with fake.lock:
                    fake.rows += [json.loads(l.decode("utf-8", "replace"))
                                  for l in body.splitlines() if l.strip()]
                self.reply(200, b"", [("X-ClickHouse-Summary", '{"written_rows":"%d"}' % n)])

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def ids(self):
        with self.lock:
            return sorted(int(r["id"]) for r in self.rows)

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


# ---- cases ----

def exactly_once_across_faults(label_mode):
    tmp = H.TempDir()
    try:
        sr = emulator(tmp, args=["--label-mode", label_mode])
        s = H.Sluice(tmp.sub("sluice"), config(sr=sr.url, rows=200))
        insert(s, body_of(rows_of(0, 200)))
        H.wait_until(lambda: sr.count(DB + ".events") == 200, timeout=30, what="first rows")
        # the load commits, the reply is lost: the resend finds its label used
        sr.faults(mode="commit_then_drop")
        insert(s, body_of(rows_of(200, 400)))
        H.wait_until(lambda: sr.count(DB + ".events") >= 400, timeout=30, what="lost reply")
        sr.faults(mode="503", count=6)
        for k in range(400, 1800, 200):
            insert(s, body_of(rows_of(k, k + 200)))
        sr.faults(mode="running", count=1)  # an earlier attempt still in flight
        insert(s, body_of(rows_of(1800, 2000)))
        H.wait_until(lambda: sr.count(DB + ".events") >= 2000, timeout=60, what="2000 rows")
        wait_lag_zero(s, "sr")
        time.sleep(0.3)
        assert sr_ids(sr) == list(range(2000)), "not exactly once"
        st = sinks(s)["sr"]
        assert st["dlq_rows"] == 0 and st["lag_records"] == 0, st
        log = open(os.path.join(s.dir, "sluice.log")).read()
        assert "already loaded under its label" in log, "the lost reply was not resolved by label"
        s.stop()
    finally:
        tmp.close()


def test_exactly_once_label_already_exists_mode():
    exactly_once_across_faults("existing")


def test_exactly_once_label_used_fail_mode_via_get_load_state():
    exactly_once_across_faults("used")


def test_invalid_utf8_row_dead_lettered_rest_delivered_clickhouse_gets_all():
    tmp = H.TempDir()
    try:
        sr = emulator(tmp)
        ch = FakeClickHouse(poison=b"\x00never\x00")
        s = H.Sluice(tmp.sub("sluice"), config(sr=sr.url, ch=ch.url, rows=1000))
        rows = body_of(rows_of(0, 500)).replace(b'"n250"', b'"n\xff\xfe250"')
        t0 = time.time()
        insert(s, rows)
        H.wait_until(lambda: sr.count(DB + ".events") >= 499 and len(dlq(s, "sr")) == 1,
                     timeout=60, what="499 rows and one DLQ entry within a minute")
        assert time.time() - t0 < 60
        assert sr_ids(sr) == [i for i in range(500) if i != 250]
        e = dlq(s, "sr")[0]
        assert e["n_rows"] == 1 and "UTF8_ERROR" in e["error"], e
        H.wait_until(lambda: len(ch.ids()) >= 500, timeout=30, what="clickhouse rows")
        assert ch.ids() == list(range(500))
        assert dlq(s, "ch") == []
        wait_lag_zero(s, "sr")
        s.stop()
        ch.close()
    finally:
        tmp.close()


def test_non_converting_value_goes_to_dlq_not_null():
    tmp = H.TempDir()
    try:
        sr = emulator(tmp)
        s = H.Sluice(tmp.sub("sluice"), config(sr=sr.url))
        insert(s, body_of(rows_of(0, 100, {42: {"v": "not a number"}})))
        H.wait_until(lambda: len(dlq(s, "sr")) == 1 and sr.count(DB + ".events") >= 99,
                     timeout=60, what="99 rows and one DLQ entry")
        got = sr.rows(DB + ".events")
        assert sorted(int(r["id"]) for r in got) == [i for i in range(100) if i != 42]
        assert all(r["v"] is not None for r in got), "a value was stored as NULL"
        assert "filtered" in dlq(s, "sr")[0]["error"]
        s.stop()
    finally:
        tmp.close()


def test_unknown_error_text_for_one_row_dlq_for_both_sinks():
    tmp = H.TempDir()
    try:
        sr = emulator(tmp)
        sr.faults(mode="poison", match="POISON", message="an error text sluice has never seen")
        ch = FakeClickHouse(poison=b"POISON")
        s = H.Sluice(tmp.sub("sluice"), config(sr=sr.url, ch=ch.url))
        t0 = time.time()
        insert(s, body_of(rows_of(0, 300, {123: {"name": "POISON"}})))
        H.wait_until(lambda: len(dlq(s, "sr")) == 1 and len(dlq(s, "ch")) == 1, timeout=60,
                     what="the poison row in both DLQs")
        elapsed = time.time() - t0
        want = [i for i in range(300) if i != 123]
        H.wait_until(lambda: sr_ids(sr) == want and ch.ids() == want, timeout=30,
                     what="the other rows in both backends")
        assert "never seen" in dlq(s, "sr")[0]["error"], dlq(s, "sr")
        assert "1999" in dlq(s, "ch")[0]["error"], dlq(s, "ch")
        print("  converged in %.1fs (sr refusals: bounded, ch refusals: %d)" % (elapsed, ch.refused))
        assert ch.refused <= 10 * 3, ch.refused  # 3 tries per range on the path to the row
        wait_lag_zero(s, "sr")
        wait_lag_zero(s, "ch")
        s.stop()
        ch.close()
    finally:
        tmp.close()


def test_two_fe_urls_first_down_rows_arrive_admin_shows_it():
    tmp = H.TempDir()
    try:
        sr = emulator(tmp)
        dead = "http://127.0.0.1:%d" % H.free_port()
        s = H.Sluice(tmp.sub("sluice"), config(sr='["%s", "%s"]' % (dead, sr.url)))
        insert(s, body_of(rows_of(0, 100)))
        H.wait_until(lambda: sr.count(DB + ".events") >= 100, timeout=30, what="rows via FE 2")
        # The sink notes its endpoints once FE 2's answer is back, which may be just after
        # the emulator counted the rows.
        H.wait_until(lambda: sinks(s)["sr"]["endpoints"][0]["failures"] >= 1, timeout=10,
                     what="FE 1 noted down")
        eps = sinks(s)["sr"]["endpoints"]
        assert [e["url"] for e in eps] == [dead, sr.url], eps
        assert eps[0]["state"] == "down" and eps[0]["failures"] >= 1 and eps[0]["last_error"], eps
        assert eps[1]["state"] == "up", eps
        st, _, m = H.http_request(s.admin_url + "/metrics")
        assert ('sluice_sink_endpoint_up{sink="sr",url="%s"} 0' % dead) in m.decode(), m
        assert ('sluice_sink_endpoint_up{sink="sr",url="%s"} 1' % sr.url) in m.decode()
        insert(s, body_of(rows_of(100, 200)))  # the next batch goes to FE 2 first
        H.wait_until(lambda: sr.count(DB + ".events") >= 200, timeout=30, what="more rows")
        assert sr_ids(sr) == list(range(200))
        s.stop()
    finally:
        tmp.close()


def test_two_clickhouse_replicas_first_down_rows_arrive_once():
    tmp = H.TempDir()
    try:
        ch = FakeClickHouse(poison=b"\x00never\x00")
        dead = "http://127.0.0.1:%d" % H.free_port()
        s = H.Sluice(tmp.sub("sluice"), config(ch='["%s", "%s"]' % (dead, ch.url),
                                               passthrough=ch.url))
        insert(s, body_of(rows_of(0, 100)))
        H.wait_until(lambda: len(ch.ids()) >= 100, timeout=30, what="rows via replica 2")
        assert ch.ids() == list(range(100))
        eps = sinks(s)["ch"]["endpoints"]
        assert [e["state"] for e in eps] == ["down", "up"], eps
        s.stop()
        ch.close()
    finally:
        tmp.close()


def test_no_backend_alive_is_retried_with_the_normal_backoff():
    tmp = H.TempDir()
    try:
        sr = emulator(tmp)
        # configuration errors wait max_backoff_ms (60 s) each: three would take minutes
        s = H.Sluice(tmp.sub("sluice"), config(sr=sr.url, max_backoff=60000))
        sr.faults(mode="no_backend", count=3)
        t0 = time.time()
        insert(s, body_of(rows_of(0, 50)))
        H.wait_until(lambda: sr.count(DB + ".events") >= 50, timeout=30,
                     what="rows after No backend alive")
        assert time.time() - t0 < 30
        assert dlq(s, "sr") == []
        s.stop()
    finally:
        tmp.close()


def test_size_limit_reply_bisects_and_filtered_rows_are_counted():
    tmp = H.TempDir()
    try:
        sr = emulator(tmp, args=["--json-max-bytes", "8000"])
        s = H.Sluice(tmp.sub("sluice"), config(
            sr=sr.url, sr_extra="    max_filter_ratio: 0.5\n"))
        insert(s, body_of(rows_of(0, 400)))  # ~14 KB: over the emulator's JSON limit
        H.wait_until(lambda: sr.count(DB + ".events") >= 400, timeout=60, what="bisected loads")
        assert sr_ids(sr) == list(range(400)) and dlq(s, "sr") == []
        # max_filter_ratio 0.5: the bad value is filtered by StarRocks, not dead-lettered
        insert(s, body_of(rows_of(400, 410, {405: {"v": "x"}})))
        H.wait_until(lambda: sinks(s)["sr"]["rows_filtered"] == 1, timeout=30,
                     what="the filtered row counted")
        st = sinks(s)["sr"]
        assert "_load_error_log" in st["last_error_url"], st
        wait_lag_zero(s, "sr")
        st2, _, m = H.http_request(s.admin_url + "/metrics")
        assert 'sluice_sink_rows_filtered_total{sink="sr"} 1' in m.decode()
        log = open(os.path.join(s.dir, "sluice.log")).read()
        assert "filtered rows" in log and "_load_error_log" in log
        s.stop()
    finally:
        tmp.close()


if __name__ == "__main__":
    H.run_tests(globals())
