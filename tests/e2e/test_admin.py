#!/usr/bin/env python3
"""test_admin.py - operating sluice (issue 6): the admin listener's probes, Prometheus
metrics (checked with a strict text-format parser written here), sink pause/resume, the DLQ
routes, the bearer token, bad requests to the admin port, check-config, the CLI, and the
graceful drain on SIGTERM with the backend up and down.
Run: SLUICE_BIN=build/sluice python3 tests/e2e/test_admin.py"""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

DB = "admintest"
DDL = ("CREATE TABLE IF NOT EXISTS %s.events (id UInt64, name String, v Float64) "
       "ENGINE = MergeTree ORDER BY id" % DB)

CONFIG = """wal:
  dir: {wal_dir}
  max_bytes: %(wal_max)s
proxy:
  listen: {listen}
admin:
  listen: {admin}
%(token)s
shutdown:
  drain_timeout_s: %(drain)d
sinks:
  - name: ch
    type: clickhouse
    url: %(url)s
    password: "%(pw)s"
    batch: {{max_rows: 500, max_wait_ms: 50}}
    retry: {{initial_backoff_ms: 50, max_backoff_ms: 500}}
    connect_timeout_ms: 500
    request_timeout_ms: 5000
"""


def config(url, token="", drain=10, wal_max="256MiB", pw=""):
    return CONFIG % {"url": url, "token": ("  token: " + token) if token else "", "drain": drain,
                     "wal_max": wal_max, "pw": pw}


# ---- a strict Prometheus text format (0.0.4) parser ----

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(r"^(%s)(\{(?:%s)(?:,(?:%s))*\})? (-?(?:[0-9.]+(?:[eE][-+]?[0-9]+)?|\+Inf|-Inf|NaN))$"
                    % (NAME, LABEL, LABEL))
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse_prometheus(text):
    """Returns {family: {"type": t, "help": h, "samples": [(name, {labels}, value)]}}.
    Raises AssertionError on anything the format does not allow."""
    assert text.endswith("\n"), "exposition must end with a newline"
    fams, cur = {}, None
    for i, line in enumerate(text.split("\n")[:-1], 1):
        assert line == line.strip() and line, "line %d: blank or padded: %r" % (i, line)
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert re.fullmatch(NAME, name), "line %d: bad name" % i
            assert name not in fams, "line %d: family %s repeated" % (i, name)
            fams[name] = {"help": line.split(" ", 3)[3] if line.count(" ") >= 3 else "",
                          "type": None, "samples": []}
            cur = name
        elif line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ")
            assert name == cur and fams[name]["type"] is None, "line %d: TYPE out of place" % i
            assert typ in TYPES, "line %d: bad type %s" % (i, typ)
            fams[name]["type"] = typ
        elif line.startswith("#"):
            continue
        else:
            m = SAMPLE.match(line)
            assert m, "line %d: not a sample: %r" % (i, line)
            name, labels, value = m.group(1), m.group(2), m.group(3)
            base = cur
            typ = fams[base]["type"] if base else None
            ok = name == base or (typ == "histogram" and name in (
                base + "_bucket", base + "_sum", base + "_count"))
            assert ok, "line %d: sample %s outside its family %s" % (i, name, base)
            lab = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', labels or ""))
            fams[base]["samples"].append((name, lab, float(value)))
    for name, f in fams.items():
        assert f["type"], "%s has no TYPE" % name
        if f["type"] == "histogram":
            buckets = [(s[1]["le"], s[2]) for s in f["samples"] if s[0].endswith("_bucket")]
            assert buckets and buckets[-1][0] == "+Inf", "%s: no +Inf bucket" % name
            vals = [v for _, v in buckets]
            assert vals == sorted(vals), "%s: buckets not cumulative" % name
            count = [s[2] for s in f["samples"] if s[0] == name + "_count"]
            assert count == [vals[-1]], "%s: _count != +Inf bucket" % name
        if f["type"] == "counter":
            assert all(s[2] >= 0 for s in f["samples"]), "%s: negative counter" % name
    return fams


def value(fams, name, **labels):
    fam = name if name in fams else re.sub(r"_(bucket|sum|count)$", "", name)
    for n, lab, v in fams[fam]["samples"]:
        if n == name and all(lab.get(k) == w for k, w in labels.items()):
            return v
    raise KeyError("%s%r" % (name, labels))


def scrape(sl):
    st, hdrs, body = H.http_request(sl.admin_url + "/metrics")
    assert st == 200, (st, body)
    assert hdrs["content-type"].startswith("text/plain; version=0.0.4"), hdrs
    return parse_prometheus(body.decode())


def rows(a, b):
    return [{"id": i, "name": "n%d" % i, "v": i / 2} for i in range(a, b)]


def ch_count(ch):
    return int(ch.query("SELECT count() FROM %s.events" % DB).strip())


def setup(token="", drain=10, wal_max="256MiB"):
    tmp = H.TempDir()
    ch = H.ClickHouse18(tmp.sub("ch"))
    ch.query("CREATE DATABASE IF NOT EXISTS " + DB)
    ch.query(DDL)
    sl = H.Sluice(tmp.sub("sl"), config(ch.url, token, drain, wal_max))
    return tmp, ch, sl


# ---- tests ----

def test_metrics_parse_and_count_what_was_sent():
    tmp, ch, sl = setup()
    try:
        f0 = scrape(sl)
        for fam in ("sluice_ingest_requests_total", "sluice_ingest_rows_total",
                    "sluice_ack_latency_seconds", "sluice_wal_group_commit_requests",
                    "sluice_wal_fsyncs_total", "sluice_wal_live_bytes", "sluice_wal_max_bytes",
                    "sluice_sink_cursor", "sluice_sink_lag_records", "sluice_sink_lag_seconds",
                    "sluice_sink_rows_sent_total", "sluice_sink_retries_total",
                    "sluice_dlq_entries", "sluice_sink_state", "sluice_wal_gaps_total",
                    "sluice_wal_checkpoints_total", "sluice_wal_checkpoint_seconds_total"):
            assert fam in f0, "missing metric family " + fam
        assert f0["sluice_ack_latency_seconds"]["type"] == "histogram"
        assert f0["sluice_ingest_rows_total"]["type"] == "counter"
        assert value(f0, "sluice_wal_max_bytes") == 256 * 1024 * 1024
        sent = 0
        for k in range(10):
            st, _, body = sl.insert(DB + ".events", rows(k * 37, k * 37 + 37))
            assert st == 200, body
            sent += 37
        bad = sl.insert(DB + ".events", '{"id": 1,,}')
        assert bad[0] == 400
        H.wait_until(lambda: ch_count(ch) == sent, 30, what="rows delivered")
        # rows_sent counts at the send's 200, the cursor moves at the commit after it (and
        # after the sink's one-time dedup probe of the table): wait for both.
        f = H.wait_until(lambda: (lambda m: m if value(m, "sluice_sink_rows_sent_total", sink="ch")
                                  == sent and value(m, "sluice_sink_lag_records", sink="ch") == 0
                                  else None)(scrape(sl)), 10, what="sink counter")
        assert value(f, "sluice_ingest_rows_total") == sent
        assert value(f, "sluice_ingest_requests_total", kind="insert") == 10
        assert value(f, "sluice_ingest_requests_total", kind="error") >= 1
        assert value(f, "sluice_ack_latency_seconds_count") == 10
        # buckets below a millisecond too (an ack is one journal flush), cumulative to +Inf
        les = ("0.00025", "0.0005", "0.001", "0.002", "0.005", "0.01", "0.025", "0.05", "0.1",
               "0.25", "0.5", "1", "5", "+Inf")
        cum = [value(f, "sluice_ack_latency_seconds_bucket", le=le) for le in les]
        assert cum == sorted(cum) and cum[-1] == 10, list(zip(les, cum))
        assert value(f, "sluice_sink_lag_records", sink="ch") == 0
        assert value(f, "sluice_sink_state", sink="ch", state="ok") == 1
        assert value(f, "sluice_wal_fsyncs_total") >= 1
        # One insert at a time: each was made durable by a flush of its own, and the rows
        # reached the sink through at least one checkpoint (sync: always, the default).
        assert value(f, "sluice_wal_group_commit_requests_count") == 10
        assert value(f, "sluice_wal_group_commit_requests_bucket", le="1") == 10
        assert value(f, "sluice_wal_checkpoints_total") >= 1
        assert value(f, "sluice_wal_checkpoint_seconds_total") > 0
        assert value(f, "sluice_sink_cursor", sink="ch") == value(f, "sluice_wal_last_seq")
    finally:
        tmp.close()


def test_probes_and_sinks_route():
    tmp, ch, sl = setup()
    try:
        st, _, body = H.http_request(sl.admin_url + "/healthz")
        assert (st, body) == (200, b"ok\n")
        st, _, body = H.http_request(sl.admin_url + "/readyz")
        assert st == 200, body
        st, hdrs, body = H.http_request(sl.admin_url + "/v1/sinks")
        assert st == 200 and hdrs["content-type"] == "application/json"
        sinks = json.loads(body)
        assert [s["name"] for s in sinks] == ["ch"] and sinks[0]["state"] == "ok"
        for k in ("cursor", "lag_records", "lag_seconds", "rows_sent", "retries", "dlq_rows"):
            assert k in sinks[0], k
    finally:
        tmp.close()


def test_readyz_fails_when_wal_nearly_full():
    tmp = H.TempDir()
    try:
        # No backend at all: rows stay in the log, which fills past ready_below_pct (90%).
        sl = H.Sluice(tmp.sub("sl"), config("http://127.0.0.1:9", wal_max="1MiB"))
        st, _, _ = H.http_request(sl.admin_url + "/readyz")
        assert st == 200
        payload = [{"id": i, "name": "x" * 900, "v": 0} for i in range(50)]
        full = False
        for _ in range(100):
            st, hdrs, body = sl.insert(DB + ".events", payload)
            if st == 503:
                assert "retry-after" in hdrs, hdrs
                full = True
                break
            assert st == 200, body
        assert full, "the 1 MiB log never filled"
        st, _, body = H.http_request(sl.admin_url + "/readyz")
        assert st == 503 and b"full" in body, (st, body)
        f = scrape(sl)
        assert value(f, "sluice_wal_rejected_full_total") >= 1
    finally:
        tmp.close()


def test_pause_resume_and_token():
    tmp, ch, sl = setup(token="s3cret")
    try:
        auth = {"Authorization": "Bearer s3cret"}
        # Probes and metrics stay open; /v1 needs the token.
        assert H.http_request(sl.admin_url + "/healthz")[0] == 200
        assert H.http_request(sl.admin_url + "/metrics")[0] == 200
        for hdr in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic czNjcmV0"},
                    {"Authorization": "Bearer s3cret-and-more"}):
            st, hdrs, _ = H.http_request(sl.admin_url + "/v1/sinks", headers=hdr)
            assert st == 401 and "www-authenticate" in hdrs, (hdr, st)
        st, _, body = H.http_request(sl.admin_url + "/v1/sinks/ch/pause", "POST", b"", auth)
        assert st == 200 and json.loads(body)["state"] == "paused", body
        st, _, _ = sl.insert(DB + ".events", rows(0, 100))
        assert st == 200
        time.sleep(0.5)  # give a paused sink the chance to (wrongly) deliver
        assert ch_count(ch) == 0
        f = scrape(sl)
        assert value(f, "sluice_sink_state", sink="ch", state="paused") == 1
        assert value(f, "sluice_sink_lag_records", sink="ch") >= 1
        st, _, body = H.http_request(sl.admin_url + "/v1/sinks/ch/resume", "POST", b"", auth)
        assert st == 200, body
        H.wait_until(lambda: ch_count(ch) == 100, 20, what="delivery after resume")
        # Unknown sink, unknown action, wrong methods, traversal attempts.
        for path, method, want in (("/v1/sinks/nope/pause", "POST", 404),
                                   ("/v1/sinks/ch/explode", "POST", 404),
                                   ("/v1/sinks/ch/pause", "GET", 405),
                                   ("/v1/sinks/../../etc/passwd", "POST", 404),
                                   ("/v1/sinks/ch/../ch/pause", "POST", 404),
                                   ("/v1/sinks/%2e%2e/pause", "POST", 404),
                                   ("/metrics", "POST", 405),
                                   ("/nothing", "GET", 404)):
            st, _, _ = H.http_request(sl.admin_url + path, method, b"", auth)
            assert st == want, (path, method, st)
    finally:
        tmp.close()


def test_admin_port_rejects_malformed_http():
    tmp, ch, sl = setup()
    try:
        import socket
        for raw in (b"GARBAGE\r\n\r\n", b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X: " +
                    b"a" * 70000 + b"\r\n\r\n",
                    b"POST /healthz HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello"):
            s = socket.create_connection(("127.0.0.1", sl.admin_port), timeout=5)
            s.sendall(raw)
            resp = s.recv(4096)
            s.close()
            assert resp.startswith(b"HTTP/1.1 4"), resp[:100]
        assert H.http_request(sl.admin_url + "/healthz")[0] == 200
    finally:
        tmp.close()


def test_dlq_routes():
    tmp, ch, sl = setup()
    try:
        # A string into a Float64 column: 18.16 refuses that row for good -> DLQ.
        body = "\n".join(json.dumps(r) for r in rows(0, 10)) + '\n{"id": 99, "name": "bad", "v": "oops"}'
        st, _, resp = sl.insert(DB + ".events", body)
        assert st == 200, resp
        H.wait_until(lambda: ch_count(ch) == 10, 30, what="good rows")
        dlq = H.wait_until(lambda: json.loads(H.http_request(sl.admin_url + "/v1/dlq")[2]),
                           20, what="DLQ entry")
        assert len(dlq) == 1 and dlq[0]["sink"] == "ch" and dlq[0]["n_rows"] == 1, dlq
        assert "Code:" in dlq[0]["error"], dlq
        assert value(scrape(sl), "sluice_dlq_entries") == 1
        st, _, body = H.http_request(sl.admin_url + "/v1/dlq?ids=abc", "GET")
        assert st == 400, body
        st, _, body = H.http_request(sl.admin_url + "/v1/dlq?sink=nope", "GET")
        assert st == 400, body
        # Fix the table so the row fits, then replay it through the API.
        ch.query("ALTER TABLE %s.events MODIFY COLUMN v String" % DB)
        st, _, body = H.http_request(sl.admin_url + "/v1/dlq/replay?ids=%d" % dlq[0]["id"], "POST")
        assert st == 200 and json.loads(body)["replayed"] == 1, body
        H.wait_until(lambda: ch_count(ch) == 11, 30, what="replayed row")
        assert json.loads(H.http_request(sl.admin_url + "/v1/dlq")[2]) == []
    finally:
        tmp.close()


def test_check_config_masks_secrets_and_names_errors():
    tmp = H.TempDir()
    try:
        sl = H.Sluice(tmp.sub("sl"), config("http://127.0.0.1:9", token="tok-abc", pw="pw-xyz"),
                      start=False)
        rc, out, err = sl.cli("check-config", "--config", sl.config_path)
        assert rc == 0 and "***" in out, out
        assert "tok-abc" not in out + err and "pw-xyz" not in out + err
        bad = os.path.join(tmp.path, "bad.yaml")
        with open(bad, "w") as f:
            f.write("wal:\n  dir: /tmp/x\n  max_bytez: 10\n")
        rc, out, err = sl.cli("check-config", "--config", bad, check=False)
        assert rc == 3 and "bad.yaml:3" in err and "max_bytez" in err, (rc, err)
        rc, out, err = sl.cli("no-such-command", check=False)
        assert rc == 2 and "usage" in err
        rc, out, _ = sl.cli("version")
        assert out.startswith("sluice ")
        rc, out, _ = sl.cli("run", "--help")
        assert rc == 0 and "run --config" in out
    finally:
        tmp.close()


def load(sl, acked, stop, start_id):
    """Insert batches until stop is set; record the ids of every row that got a 200."""
    i = start_id
    while not stop.is_set():
        batch = rows(i, i + 20)
        try:
            st, _, _ = sl.insert(DB + ".events", batch)
        except OSError:
            break  # the listener closed: draining
        if st == 200:
            acked.extend(r["id"] for r in batch)
        i += 20


def not_ready(sl):
    """What a kubelet's readiness probe sees: 503, or nothing listening any more."""
    try:
        return H.http_request(sl.admin_url + "/readyz", timeout=2)[0] == 503
    except OSError:
        return True


def test_sigterm_drains_everything_when_backend_up():
    tmp, ch, sl = setup(drain=20)
    try:
        acked, stop = [], threading.Event()
        ts = [threading.Thread(target=load, args=(sl, acked, stop, k * 10 ** 6)) for k in range(4)]
        for t in ts:
            t.start()
        H.wait_until(lambda: len(acked) > 2000, 30, what="load")
        t0 = time.time()
        sl.proc.signal(signal.SIGTERM)
        H.wait_until(lambda: not_ready(sl), 5, what="readyz to fail")
        rc = sl.proc.p.wait(30)
        stop.set()
        for t in ts:
            t.join()
        assert rc == 0, sl.proc.output()[-2000:]
        assert time.time() - t0 < 25
        # Delivered before exit: no restart needed.
        got = set(int(x) for x in ch.query("SELECT id FROM %s.events" % DB).split())
        missing = set(acked) - got
        assert not missing, "%d acked rows not delivered before exit" % len(missing)
    finally:
        tmp.close()


def test_sigterm_with_backend_down_exits_in_time_and_delivers_after_restart():
    tmp, ch, sl = setup(drain=3)
    try:
        ch.kill()
        st, _, body = sl.insert(DB + ".events", rows(0, 500))
        assert st == 200, body
        t0 = time.time()
        rc = sl.stop(signal.SIGTERM, timeout=30)
        took = time.time() - t0
        assert rc == 0 and took < 10, (rc, took)
        ch.start()
        sl.start()
        H.wait_until(lambda: ch_count(ch) == 500, 30, what="rows delivered after restart")
    finally:
        tmp.close()


def test_second_sigterm_exits_at_once_and_loses_nothing():
    tmp, ch, sl = setup(drain=60)
    try:
        ch.kill()
        st, _, _ = sl.insert(DB + ".events", rows(0, 300))
        assert st == 200
        sl.proc.signal(signal.SIGTERM)
        time.sleep(0.3)
        t0 = time.time()
        sl.proc.signal(signal.SIGTERM)
        rc = sl.proc.p.wait(10)
        assert rc == 0 and time.time() - t0 < 5
        sl.proc.stop()
        ch.start()
        sl.start()
        H.wait_until(lambda: ch_count(ch) == 300, 30, what="rows after the hard stop")
    finally:
        tmp.close()


def test_read_barrier_does_not_hold_reads_while_primary_is_down():
    tmp = H.TempDir()
    try:
        ch = H.ClickHouse18(tmp.sub("ch"))
        ch.query("CREATE DATABASE IF NOT EXISTS " + DB)
        ch.query(DDL)
        cfg = config(ch.url).replace("proxy:\n", "proxy:\n  read_barrier_ms: 8000\n")
        sl = H.Sluice(tmp.sub("sl"), cfg)
        # Up: a read waits for the earlier write to be delivered, then sees it.
        assert sl.insert(DB + ".events", rows(0, 5))[0] == 200
        st, _, body = H.http_request(sl.url + "/?query=SELECT%20count()%20FROM%20" + DB + ".events")
        assert (st, body) == (200, b"5\n"), (st, body)
        # Down: the sink degrades; a read must fail fast with a ClickHouse-shaped 502,
        # not wait out the 8 s barrier.
        ch.kill()
        assert sl.insert(DB + ".events", rows(5, 10))[0] == 200
        H.wait_until(lambda: json.loads(H.http_request(sl.admin_url + "/v1/sinks")[2])[0]["state"]
                     == "degraded", 20, what="sink degraded")
        t0 = time.time()
        st, hdrs, body = H.http_request(sl.url + "/?query=SELECT%201")
        took = time.time() - t0
        assert st == 502 and body.startswith(b"Code: 210."), (st, body)
        assert hdrs.get("x-sluice-read-barrier") == "skipped-degraded", hdrs
        assert took < 3, took
    finally:
        tmp.close()


def test_startup_line_and_json_logs():
    tmp, ch, sl = setup()
    try:
        sl.insert(DB + ".events", rows(0, 10))
        sl.stop()
        lines = [l for l in sl.proc.output().splitlines() if l.strip()]
        objs = [json.loads(l) for l in lines]  # every line is one JSON object
        for o in objs:
            assert {"ts", "level", "msg"} <= set(o), o
        start = [o for o in objs if o["msg"] == "sluice started"]
        assert len(start) == 1 and {"version", "listen", "admin", "wal"} <= set(start[0])
        # No line per request at info level.
        assert len(objs) < 10, lines
    finally:
        tmp.close()


if __name__ == "__main__":
    H.run_tests(globals())
