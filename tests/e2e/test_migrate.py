#!/usr/bin/env python3
"""test_migrate.py - the ClickHouse -> StarRocks migration tools end to end (issue 7):
`sluice backfill` from a real clickhouse-server 18.16 into the StarRocks emulator (kill -9
half way, resume, no duplicates), `sluice verify` through all three readers (ClickHouse HTTP,
the emulator's /_emu/sql, and the MySQL protocol against a real mariadbd on loopback), and
the dual-write boundary (rows that came through the live log are not backfilled again).
Run: SLUICE_BIN=build/sluice python3 tests/e2e/test_migrate.py (SLUICE_TEST_ONLY=substring)."""
import calendar
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

DB = "mig"
CH_DDL = ("CREATE TABLE IF NOT EXISTS %s.events (id UInt64, ts DateTime, name String, "
          "v Float64) ENGINE = MergeTree ORDER BY (ts, id)" % DB)
SR_TABLES = {DB + ".events": [["id", "BIGINT"], ["ts", "DATETIME"], ["name", "VARCHAR(128)"],
                              ["v", "DOUBLE"]]}
BASE_TS = calendar.timegm((2024, 3, 1, 0, 0, 0))  # history: 2024-03-01 .. 2024-03-03 UTC
N_ROWS = 200000
SPAN_S = 2 * 86400

CONFIG = """wal:
  dir: {wal_dir}
proxy:
  listen: {listen}
  passthrough_url: http://127.0.0.1:9
admin:
  listen: {admin}
log:
  level: warn
sinks:
%(sinks)s"""

CH_SINK = """  - name: ch
    type: clickhouse
    url: %s
    batch:
      max_wait_ms: 20
"""

SR_SINK = """  - name: sr
    type: starrocks
    url: %s
    password: "srpw"
    start_from: latest
    batch:
      max_rows: %d
      max_wait_ms: 20
    retry:
      initial_backoff_ms: 50
      max_backoff_ms: 1000
"""


def ts_text(t):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def stamp_now():
    """A live request's time column: now, but never in the last 20 ms of a second, so that
    no row is stamped in one second and arrives at sluice in the next (such a row is on both
    sides of the dual-write boundary: MIGRATION.md, caveats, late arrivals). One stamp per
    request: rows stamped one by one straddled a second when the guard slept mid-request."""
    t = time.time()
    if t % 1 > 0.98:
        time.sleep(1.001 - t % 1)
    return int(time.time())


def row(i, t):
    return {"id": i, "ts": ts_text(t), "name": "n\u00e9%d \"q\" \\" % i, "v": i * 0.1}


def live_instance(tmp, name):
    """ClickHouse 18.16, the StarRocks emulator, and sluice in front of ClickHouse with only
    the ch sink (add_sr_sink adds the other)."""
    ch = ch18(tmp)
    sr = emulator(tmp)
    return ch, sr, H.Sluice(tmp.sub(name), CONFIG % {"sinks": CH_SINK % ch.url})


def add_sr_sink(s, ch, sr):
    """Write s's config with the sr sink (start_from: latest) beside ch; SIGHUP or a restart
    loads it."""
    s.config_yaml = CONFIG % {"sinks": CH_SINK % ch.url + SR_SINK % (sr.url, 1000)}
    s.write_config()


class LiveTraffic:
    """A thread inserting 10 live rows per request (one stamp each) through sluice s until
    stop(): the ids acked, and the requests (and, with ping, /ping answers) that failed."""

    def __init__(self, s, base, ping=False):
        self.s, self.base, self.ping = s, base, ping
        self.acked, self.fails, self._stop = set(), 0, False
        self._lock = threading.Lock()
        self._th = threading.Thread(target=self._run, daemon=True)
        self._th.start()

    def _run(self):
        k = 0
        while not self._stop:
            if self.ping:  # the listener stays up across a reload
                self.fails += H.http_request(self.s.url + "/ping", timeout=5)[0] != 200
            ids = [self.base + k * 10 + j for j in range(10)]
            k += 1
            t = stamp_now()  # once per request: all its rows arrive together
            try:
                st, _, _ = self.s.insert("events", [row(i, t) for i in ids], database=DB)
            except OSError:
                st = 0  # down (killed, restarting): not acked
            if st == 200:
                with self._lock:
                    self.acked.update(ids)
            else:
                self.fails += 1
                time.sleep(0.02)
            time.sleep(0.005)

    def n(self):
        with self._lock:
            return len(self.acked)

    def stop(self):
        self._stop = True
        self._th.join()


def ch18(tmp):
    ch = H.ClickHouse18(tmp.sub("ch"))
    ch.query("CREATE DATABASE IF NOT EXISTS " + DB)
    ch.query(CH_DDL)
    return ch


def load_history(ch, n=N_ROWS):
    """n rows spread evenly over two days from BASE_TS, inserted straight into ClickHouse."""
    step = SPAN_S / n
    for a in range(0, n, 50000):
        body = "".join(json.dumps(row(i, BASE_TS + int(i * step))) + "\n"
                       for i in range(a, min(n, a + 50000)))
        ch.query("INSERT INTO %s.events FORMAT JSONEachRow" % DB, data=body.encode())
    assert int(ch.query("SELECT count() FROM %s.events" % DB)) == n


def emulator(tmp):
    return H.StarRocksEmulator(tmp.sub("sr"), SR_TABLES, password="srpw")


def emu_sql(sr, sql):
    st, _, body = H.http_request(sr.url + "/_emu/sql", "POST", sql)
    assert st == 200, body
    return [json.loads(l) for l in body.decode().splitlines() if l.strip()]


def emu_ids(sr):
    r = emu_sql(sr, 'SELECT count(*) AS n, count(DISTINCT id) AS d FROM "%s.events"' % DB)[0]
    return r["n"], r["d"]


def sluice_cli(args, timeout=300):
    r = subprocess.run([H.SLUICE_BIN] + args, capture_output=True, timeout=timeout)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def sluice_config(tmp, name, sinks):
    d = tmp.sub(name)
    path = os.path.join(d, "sluice.yaml")
    with open(path, "w") as f:
        f.write((CONFIG % {"sinks": sinks}).format(
            wal_dir=os.path.join(d, "wal"), listen="127.0.0.1:%d" % H.free_port(),
            admin="127.0.0.1:%d" % H.free_port()))
    return path


def verify(a, b, *extra):
    return sluice_cli(["verify", "--a", a, "--b", b, "--table", DB + ".events",
                       "--time-column", "ts"] + list(extra))


# ---- cases ----

def test_backfill_killed_half_way_resumes_without_duplicates_and_verify_agrees():
    tmp = H.TempDir()
    try:
        ch = ch18(tmp)
        load_history(ch)
        sr = emulator(tmp)
        cfg = sluice_config(tmp, "bf", SR_SINK % (sr.url, 1000))
        args = ["backfill", "--config", cfg, "--source", ch.url, "--sink", "sr",
                "--table", DB + ".events", "--time-column", "ts",
                "--since", ts_text(BASE_TS), "--until", ts_text(BASE_TS + SPAN_S)]

        # No WAL (so no live start recorded) and no --until: refused, nothing sent, and no
        # empty WAL created behind the operator's back.
        rc, _, err = sluice_cli(args[:-2])
        assert rc == 3 and "--until" in err and "no WAL" in err, (rc, err)
        assert not os.path.exists(os.path.join(os.path.dirname(cfg), "wal")), "WAL created"

        p = H.Proc([H.SLUICE_BIN] + args, os.path.join(tmp.path, "backfill1.log"))
        H.wait_until(lambda: sr.count(DB + ".events") >= N_ROWS // 2 or not p.alive(),
                     timeout=120, interval=0.02, what="half the rows in the emulator")
        assert p.alive(), "backfill ended before the kill:\n" + p.output()
        p.kill9()
        first = sr.count(DB + ".events")
        assert N_ROWS // 4 < first < N_ROWS, first
        # Rows of slices not yet marked done are in StarRocks already: the resume resends
        # them under the same labels, and the emulator must answer Label Already Exists.
        wal = os.path.join(os.path.dirname(cfg), "wal")
        with open(os.path.join(wal, "backfill", "sr.%s.events.progress" % DB)) as f:
            marked = sum(int(l.split()[3]) for l in f if l.startswith("done "))
        partial = first - marked
        assert partial >= 0, (first, marked)

        rc, out, err = sluice_cli(args)
        assert rc == 0, (rc, out, err)
        assert "done before" in out, out
        st, _, body = H.http_request(sr.url + "/_emu/loads")
        dup = json.loads(body)["by_status"].get("Label Already Exists/FINISHED", 0)
        print("  killed with %d rows loaded, %d in slices marked done; %d loads deduplicated"
              % (first, marked, dup))
        if partial:
            assert dup >= 1, json.loads(body)["by_status"]
        n, d = emu_ids(sr)
        assert n == N_ROWS and d == N_ROWS, (n, d)
        ids = emu_sql(sr, 'SELECT min(id) AS lo, max(id) AS hi FROM "%s.events"' % DB)[0]
        assert (ids["lo"], ids["hi"]) == (0, N_ROWS - 1), ids
        # A second run finds every slice done and sends nothing.
        rc, out, _ = sluice_cli(args)
        assert rc == 0 and " 0 rows sent" in out, out

        emu = "emu+http://127.0.0.1:%d" % sr.fe_port
        rc, out, err = verify(ch.url, emu, "--columns", "id,ts,name,v")
        assert rc == 0, (rc, out, err)
        assert "%d rows in a, %d rows in b, 0 differ" % (N_ROWS, N_ROWS) in out, out
        rc, out, err = verify("clickhouse://127.0.0.1:%d" % ch.http_port, emu, "--by", "hour")
        assert rc == 0 and "48 buckets" in out, (rc, out, err)

        # 10 rows gone from one day: verify names that day only and fails.
        st, _, body = H.http_request(sr.url + "/_emu/rows?" + urllib.parse.urlencode(
            {"table": DB + ".events", "where": "id >= 1000 AND id < 1010"}), "DELETE")
        assert st == 200 and json.loads(body)["deleted"] == 10, body
        rc, out, err = verify(ch.url, emu, "--columns", "id,name")
        assert rc == 1, (rc, out, err)
        lines = [l for l in out.splitlines() if l.startswith("2024-")]
        assert len(lines) == 1 and lines[0].split()[:3] == ["2024-03-01", "100000", "99990"], out
        # Same count, other content: only the checksum can tell.
        st, _, body = H.http_request(sr.url + "/_emu/rows?" + urllib.parse.urlencode(
            {"table": DB + ".events", "where": "id >= 150000 AND id < 150010"}), "DELETE")
        assert st == 200
        rc, out, err = verify(ch.url, emu, "--by", "hour", "--since", "2024-03-02 12:00:00",
                              "--until", "2024-03-03")
        assert rc == 1 and "2024-03-02 12:00:00" in out and "2024-03-01" not in out, out
    finally:
        tmp.close()


def find_mariadbd():
    for n in ("mariadbd", "mysqld"):
        p = shutil.which(n) or ("/usr/sbin/" + n if os.path.exists("/usr/sbin/" + n) else None)
        if p:
            return p
    return None


class MariaDB:
    """mariadbd in a temp datadir on a free loopback port, grant tables skipped."""

    def __init__(self, d):
        self.dir = d
        self.sock = os.path.join(d, "sock")
        self.port = H.free_port()
        data = os.path.join(d, "data")
        r = subprocess.run(["mariadb-install-db", "--no-defaults", "--datadir=" + data,
                            "--user=" + os.environ.get("USER", "root"), "--auth-root-authentication-method=normal",
                            "--skip-test-db"], capture_output=True, timeout=180)
        assert r.returncode == 0, r.stderr.decode()[-2000:]
        self.proc = H.Proc([find_mariadbd(), "--no-defaults", "--datadir=" + data,
                            "--socket=" + self.sock, "--port=%d" % self.port,
                            "--bind-address=127.0.0.1", "--skip-grant-tables", "--user=root",
                            "--pid-file=" + os.path.join(d, "pid"), "--log-error=" + os.path.join(d, "err.log"),
                            "--innodb-buffer-pool-size=16M", "--skip-log-bin"],
                           os.path.join(d, "mariadbd.log"))
        H.wait_until(lambda: self.sql("SELECT 1").strip() == "1", timeout=60, what="mariadbd")

    def sql(self, q):
        r = subprocess.run(["mariadb", "--no-defaults", "-S", self.sock, "-uroot", "-N", "-B"],
                           input=q.encode(), capture_output=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(r.stderr.decode())
        return r.stdout.decode()

    def stop(self):
        self.proc.stop()


def test_verify_through_the_mysql_protocol_against_mariadb():
    if not find_mariadbd():
        raise AssertionError("mariadbd not installed (scripts/install-deps.sh installs mariadb-server)")
    tmp = H.TempDir()
    my = None
    try:
        ch = ch18(tmp)
        n = 3000
        load_history(ch, n)
        my = MariaDB(tmp.sub("mariadb"))
        my.sql("CREATE DATABASE %s; CREATE TABLE %s.events (id BIGINT, ts DATETIME, "
               "name VARCHAR(128) CHARACTER SET utf8mb4, v DOUBLE)" % (DB, DB))
        step = SPAN_S / n

        def lit(s):
            return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"
        values = ",".join("(%d,%s,%s,%r)" % (r["id"], lit(r["ts"]), lit(r["name"]), r["v"])
                          for r in (row(i, BASE_TS + int(i * step)) for i in range(n)))
        my.sql("SET NAMES utf8mb4; INSERT INTO %s.events VALUES %s" % (DB, values))
        url = "mysql://root@127.0.0.1:%d/%s" % (my.port, DB)
        rc, out, err = verify(ch.url, url, "--columns", "id,ts,name,v")
        assert rc == 0 and "%d rows in a, %d rows in b, 0 differ" % (n, n) in out, (rc, out, err)

        # One value changed: same counts, the checksum of that day differs.
        my.sql("UPDATE %s.events SET name = 'x' WHERE id = 2500" % DB)
        rc, out, err = verify(ch.url, url, "--columns", "name")
        assert rc == 1, (rc, out, err)
        lines = [l for l in out.splitlines() if l.startswith("2024-")]
        assert len(lines) == 1 and lines[0].split()[:3] == ["2024-03-02", "1500", "1500"], out
        # Which column, and which row: the differing keys are listed.
        rc, out, err = verify(ch.url, url, "--columns", "id,ts,name,v")
        assert rc == 1, (rc, out, err)
        line = [l for l in out.splitlines() if l.startswith("2024-03-02")][0]
        assert line.split()[-1] == "name", out
        assert "2024-03-02 id=2500: different values" in out, out

        my.sql("DELETE FROM %s.events WHERE id < 3" % DB)
        rc, out, err = verify(ch.url, url)
        assert rc == 1 and "2024-03-01" in out and "2024-03-02" not in out, (rc, out, err)

        rc, out, err = verify(ch.url, "mysql://root@127.0.0.1:%d/nosuchdb" % my.port)
        assert rc == 3 and "mysql" in err, (rc, out, err)  # could not run: not "differs"
    finally:
        if my:
            my.stop()
        tmp.close()


def test_backfill_stops_at_the_live_start_so_dual_written_rows_are_not_doubled():
    tmp = H.TempDir()
    try:
        ch, sr, s = live_instance(tmp, "live")
        hist_t = int(time.time()) - 3 * 3600
        old = [row(i, hist_t + i) for i in range(500)]  # history, before StarRocks existed
        st, _, body = s.insert("events", old, database=DB)
        assert st == 200, body
        H.wait_until(lambda: int(ch.query("SELECT count() FROM %s.events" % DB)) == 500,
                     what="history in ClickHouse")
        s.stop()

        # Add the StarRocks sink: dual-write from here on.
        add_sr_sink(s, ch, sr)
        s.start()
        # It delivers from the second after the one it started in (what arrives before is
        # the backfill's): the rows below are live ones.
        started = int(time.time())
        while int(time.time()) <= started:
            time.sleep(0.05)
        new = [row(1000 + i, int(time.time())) for i in range(300)]
        for k in range(0, 300, 100):
            st, _, body = s.insert("events", new[k:k + 100], database=DB)
            assert st == 200, body
        H.wait_until(lambda: sr.count(DB + ".events") == 300, what="live rows in the emulator")
        H.wait_until(lambda: int(ch.query("SELECT count() FROM %s.events" % DB)) == 800,
                     what="live rows in ClickHouse")

        # Backfill beside the running instance, with the default --until (the live start).
        rc, out, err = sluice_cli(["backfill", "--config", s.config_path, "--source", ch.url,
                                   "--sink", "sr", "--table", "events", "--database", DB,
                                   "--time-column", "ts", "--slice", "30m"])
        assert rc == 0, (rc, out, err)
        assert "defaults to the sink's live start" in err, err
        assert "500 rows sent" in out, out
        n, dist = emu_ids(sr)
        assert n == 800 and dist == 800, (n, dist)
        rc, out, err = verify(ch.url, "emu+http://127.0.0.1:%d" % sr.fe_port, "--by", "hour",
                              "--columns", "id,ts,name,v")
        assert rc == 0, (rc, out, err)
        rc, out, err = verify(ch.url, "emu+http://127.0.0.1:%d" % sr.fe_port, "--config",
                              s.config_path, "--sink", "sr")
        assert rc == 0 and "live start" in err and "500 rows in a, 500 rows in b" in out, (out, err)
        s.stop()
    finally:
        tmp.close()


# ---- issue 18: backfill and verify that never lie and refuse mistakes ----

SMALL = 2000  # rows over SPAN_S for the refusal tests


def small_setup(tmp, sr_tables=None, sr_password="srpw", sinks_extra="", sr_sink_extra="",
                ch_password=""):
    ch = H.ClickHouse18(tmp.sub("ch"), password=ch_password)
    q = (lambda sql, **kw: ch.query(sql, password=ch_password, **kw)) if ch_password else ch.query
    q("CREATE DATABASE IF NOT EXISTS " + DB)
    q(CH_DDL)
    step = SPAN_S / SMALL
    body = "".join(json.dumps(row(i, BASE_TS + int(i * step))) + "\n" for i in range(SMALL))
    q("INSERT INTO %s.events FORMAT JSONEachRow" % DB, data=body.encode())
    sr = H.StarRocksEmulator(tmp.sub("sr"), sr_tables or SR_TABLES, password=sr_password)
    ch_sink = CH_SINK % ch.url + (("    password: \"%s\"\n" % ch_password) if ch_password else "")
    cfg = sluice_config(tmp, "cfg", ch_sink + SR_SINK % (sr.url, 500) + sr_sink_extra + sinks_extra)
    return ch, sr, cfg


def bf_args(cfg, source, *extra, table=DB + ".events"):
    return (["backfill", "--config", cfg] + (["--source", source] if source else []) +
            ["--sink", "sr", "--table", table, "--time-column", "ts",
             "--until", ts_text(BASE_TS + SPAN_S)] + list(extra))


def test_backfill_refuses_a_sink_that_is_the_source_an_excluded_table_and_a_missing_table():
    tmp = H.TempDir()
    try:
        ch, sr, cfg = small_setup(tmp)
        # --sink naming the ClickHouse the rows come from: refused, nothing copied.
        a = bf_args(cfg, ch.url)
        a[a.index("sr")] = "ch"
        rc, out, err = sluice_cli(a)
        assert rc == 3 and "is the source itself" in err and "--force" in err, (rc, err)
        assert int(ch.query("SELECT count() FROM %s.events" % DB)) == SMALL

        # A table missing in the sink: refused at its first batch with the sink's message,
        # nothing dead-lettered, no slice recorded as done; after the DDL a rerun copies all.
        ch.query("CREATE TABLE %s.later (id UInt64, ts DateTime, name String, v Float64) "
                 "ENGINE = MergeTree ORDER BY (ts, id)" % DB)
        ch.query("INSERT INTO %s.later SELECT * FROM %s.events" % (DB, DB))
        t0 = time.time()
        rc, out, err = sluice_cli(bf_args(cfg, ch.url, table=DB + ".later"))
        assert rc == 3 and "unknown table" in err and "create it" in err, (rc, out, err)
        assert time.time() - t0 < 60
        wal = os.path.join(os.path.dirname(cfg), "wal", "backfill")
        assert not os.path.exists(os.path.join(wal, "sr.%s.later.dlq.jsonl" % DB))
        with open(os.path.join(wal, "sr.%s.later.progress" % DB)) as f:
            assert not [l for l in f if l.startswith("done ")]
        sr.stop()
        tables = dict(SR_TABLES)
        tables[DB + ".later"] = SR_TABLES[DB + ".events"]
        with open(os.path.join(sr.dir, "tables.json"), "w") as f:
            json.dump(tables, f)
        sr.start()
        rc, out, err = sluice_cli(bf_args(cfg, ch.url, table=DB + ".later"))
        assert rc == 0, (rc, out, err)
        assert sr.count(DB + ".later") == SMALL

        # A table outside the sink's include list: refused before the first slice.
        cfg2 = sluice_config(tmp, "cfg2", SR_SINK % (sr.url, 500) + "    include: [other]\n")
        os.makedirs(os.path.join(os.path.dirname(cfg2), "wal"), exist_ok=True)
        rc, out, err = sluice_cli(bf_args(cfg2, ch.url))
        assert rc == 3 and "include" in err, (rc, err)
        assert sr.count(DB + ".events") == 0
    finally:
        tmp.close()


def test_backfill_fails_fast_on_a_wrong_sink_password_and_retries_an_outage_visibly():
    tmp = H.TempDir()
    try:
        ch, sr, cfg = small_setup(tmp, sr_password="other")
        t0 = time.time()
        rc, out, err = sluice_cli(bf_args(cfg, ch.url))
        assert rc == 3 and "401" in err, (rc, out, err)
        assert time.time() - t0 < 60, "a 401 must not be retried for long"
        assert "srpw" not in out + err
        sr.stop()
        sr.argv[sr.argv.index("--password") + 1] = "srpw"
        sr.start()
        # An outage: the sink refuses connections; backfill says it is waiting, then finishes.
        sr.faults(mode="refuse", count=-1, port="both")
        p = H.Proc([H.SLUICE_BIN] + bf_args(cfg, ch.url, "--restart"),
                   os.path.join(tmp.path, "outage.log"))
        H.wait_until(lambda: "waiting" in p.output() or not p.alive(), timeout=60,
                     what="a 'waiting' line")
        sr.faults(mode="clear")
        H.wait_until(lambda: not p.alive(), timeout=120, what="backfill to finish")
        assert p.stop() == 0, p.output()
        assert "waiting" in p.output() and "retrying" in p.output(), p.output()
        assert sr.count(DB + ".events") == SMALL
    finally:
        tmp.close()


def test_backfill_with_dead_lettered_rows_exits_nonzero_and_retry_dlq_resends_them():
    tmp = H.TempDir()
    try:
        ch, sr, cfg = small_setup(tmp)
        # Three rows whose name does not fit the sink's VARCHAR(128): refused for good.
        long = [dict(row(SMALL + k, BASE_TS + 3600 * (k + 1) + 1), name="x" * 300) for k in range(3)]
        ch.query("INSERT INTO %s.events FORMAT JSONEachRow" % DB,
                 data="".join(json.dumps(r) + "\n" for r in long).encode())
        rc, out, err = sluice_cli(bf_args(cfg, ch.url))
        assert rc == 5, (rc, out, err)
        dlq = os.path.join(os.path.dirname(cfg), "wal", "backfill", "sr.%s.events.dlq.jsonl" % DB)
        assert "dead-lettered" in out and dlq in err and "--retry-dlq" in err, (out, err)
        dead = sum(json.loads(l)["n_rows"] for l in open(dlq))
        assert dead == 3 and sr.count(DB + ".events") == SMALL, dead
        # Fix the DDL, re-send: every row arrives once.
        sr.stop()
        tables = {DB + ".events": [["id", "BIGINT"], ["ts", "DATETIME"], ["name", "VARCHAR(1024)"],
                                   ["v", "DOUBLE"]]}
        with open(os.path.join(sr.dir, "tables.json"), "w") as f:
            json.dump(tables, f)
        sr.start()
        rc, out, err = sluice_cli(["backfill", "--config", cfg, "--sink", "sr", "--table",
                                   DB + ".events", "--retry-dlq"])
        assert rc == 0 and "%d rows delivered" % dead in out, (rc, out, err)
        n, d = emu_ids(sr)
        assert n == SMALL + 3 and d == SMALL + 3, (n, d)
        rc, out, err = sluice_cli(["backfill", "--config", cfg, "--sink", "sr", "--table",
                                   DB + ".events", "--retry-dlq"])
        assert rc == 0 and "no dead-lettered rows" in out, (rc, out, err)
    finally:
        tmp.close()


def test_backfill_keeps_passwords_off_the_command_line_and_out_of_its_output():
    tmp = H.TempDir()
    try:
        ch, sr, cfg = small_setup(tmp, ch_password="chpw")
        # An error quoting the source never shows its password.
        url = "http://default:chpw@127.0.0.1:%d" % H.free_port()
        rc, out, err = sluice_cli(bf_args(cfg, url))
        assert rc != 0 and "chpw" not in out + err and "***" in err, (rc, out, err)
        # Wrong password from the environment: a clear refusal, no secret shown.
        env = dict(os.environ, CH_PW="wrongpw")
        r = subprocess.run([H.SLUICE_BIN] + bf_args(cfg, ch.url, "--source-password-env", "CH_PW"),
                           capture_output=True, timeout=120, env=env)
        assert r.returncode != 0 and b"wrongpw" not in r.stdout + r.stderr, r.stderr
        # The right one from a file, from the environment, or the ClickHouse sink's config.
        pwf = os.path.join(tmp.path, "pw")
        with open(pwf, "w") as f:
            f.write("chpw\n")
        rc, out, err = sluice_cli(bf_args(cfg, ch.url, "--source-password-file", pwf))
        assert rc == 0 and "chpw" not in out + err, (rc, out, err)
        env["CH_PW"] = "chpw"
        r = subprocess.run([H.SLUICE_BIN] + bf_args(cfg, ch.url, "--source-password-env", "CH_PW",
                                                     "--restart"),
                           capture_output=True, timeout=120, env=env)
        assert r.returncode == 0, r.stderr
        rc, out, err = sluice_cli(bf_args(cfg, None, "--source-sink", "ch", "--restart"))
        assert rc == 0, (rc, out, err)
        n, d = emu_ids(sr)
        assert n == SMALL and d == SMALL, (n, d)
    finally:
        tmp.close()


def test_backfill_records_its_plan_refuses_a_changed_one_and_shows_dry_run_status_json():
    tmp = H.TempDir()
    try:
        ch, sr, cfg = small_setup(tmp)
        # Options parse as flags; help is backfill's own, defaults shown.
        rc, out, _ = sluice_cli(["help", "backfill"])
        assert rc == 0 and "--time-column C" in out and "(default: timestamp)" in out, out
        rc, out2, _ = sluice_cli(["backfill", "--help"])
        assert rc == 0 and out2 == out
        rc, _, err = sluice_cli(bf_args(cfg, ch.url, "--bogus"))
        assert rc == 2 and "unknown option --bogus" in err, err

        rc, out, err = sluice_cli(bf_args(cfg, ch.url, "--dry-run"))
        assert rc == 0 and "dry run" in out and "boundary" in out, (rc, out, err)
        # 2000 rows over 2 days: 1h cells merged up to --max-slice (1d) make 2 slices.
        cells = [l for l in out.splitlines() if l.startswith("  2024-03-0")]
        assert len(cells) == 2 and sum(int(l.split()[-1]) for l in cells) == SMALL, out
        assert cells[0].split()[:4] == ["2024-03-01", "00:00:00", "2024-03-02", "00:00:00"], out
        assert sr.count(DB + ".events") == 0

        rc, out, err = sluice_cli(bf_args(cfg, ch.url, "--json", "--parallel", "1"))
        assert rc == 0, (rc, out, err)
        summ = json.loads(out.strip().splitlines()[-1])
        assert summ["rows_sent"] == SMALL and summ["dead_rows"] == 0 and "elapsed_s" in summ, summ
        events = [json.loads(l) for l in err.splitlines() if l.startswith("{")]
        assert events and all(e["event"] == "slice" for e in events), err
        assert events[-1]["rows"] == SMALL

        # Same command: nothing to do. Another --slice: refused, saying what and how.
        rc, out, err = sluice_cli(bf_args(cfg, ch.url))
        assert rc == 0 and " 0 rows sent" in out, (rc, out, err)
        rc, out, err = sluice_cli(bf_args(cfg, ch.url, "--slice", "30m"))
        assert rc == 3 and "--slice was 3600, now 1800" in err and "--restart" in err, err
        rc, out, err = sluice_cli(bf_args(cfg, ch.url, "--since", "2024-03-01 00:30:00"))
        assert rc == 3 and "--since was 2024-03-01 00:00:00, now 2024-03-01 00:30:00" in err, err

        rc, out, err = sluice_cli(["backfill", "--config", cfg, "--sink", "sr", "--table",
                                   DB + ".events", "--status"])
        assert rc == 0 and "stopped" in out and "%d rows" % SMALL in out, (rc, out, err)

        # Logs: one timestamped line per slice; Ctrl-C says how to resume.
        rc, out, err = sluice_cli(bf_args(cfg, ch.url, "--slice", "30m", "--restart"))
        assert rc == 0, (rc, out, err)
        lines = [l for l in err.splitlines() if " backfill: slice " in l]
        assert lines and all(l[:4] == "20%s" % l[2:4] and l[19] == "Z" for l in lines), err
        assert "rows sent in 0:00:" in out and "rows/s" in out, out
        def attempts():
            return json.loads(H.http_request(sr.url + "/_emu/loads")[2])["attempts"]
        before = attempts()
        sr.faults(mode="hang", seconds=30, count=-1)
        # (another --where: other labels, so the loads are new ones the fault holds)
        p = H.Proc([H.SLUICE_BIN] + bf_args(cfg, ch.url, "--slice", "30m", "--restart",
                                            "--where", "1 = 1"),
                   os.path.join(tmp.path, "int.log"))
        H.wait_until(lambda: attempts() > before, timeout=60, what="a load in progress")
        assert p.alive(), p.output()
        p.signal(2)
        H.wait_until(lambda: not p.alive(), timeout=30, what="exit on SIGINT")
        assert p.stop() == 130 and "run the same command again to resume" in p.output(), p.output()
        sr.faults(mode="clear")
    finally:
        tmp.close()


def test_sighup_adds_the_starrocks_sink_without_refusing_a_single_request():
    tmp = H.TempDir()
    tr = None
    try:
        ch, sr, s = live_instance(tmp, "hup")
        tr = LiveTraffic(s, 10 ** 6, ping=True)
        H.wait_until(lambda: tr.n() >= 200, what="traffic")
        add_sr_sink(s, ch, sr)
        # Inserts go on across the reload: the new sink delivers from the second after the
        # one it started in, backfill copies every row stamped before it (those of the
        # reload's second too), and every row is counted.
        s.proc.signal(1)  # SIGHUP
        H.wait_until(lambda: len(json.loads(H.http_request(s.admin_url + "/v1/sinks")[2])) == 2,
                     timeout=30, what="the new sink in /v1/sinks")
        H.wait_until(lambda: sr.count(DB + ".events") > 0, timeout=30,
                     what="live rows in StarRocks after SIGHUP")
        H.wait_until(lambda: tr.n() >= 2000, timeout=60, what="more traffic")
        tr.stop()
        assert tr.fails == 0, tr.fails
        assert s.proc.alive()
        st, _, body = H.http_request(s.admin_url + "/v1/sinks")
        names = sorted(x["name"] for x in json.loads(body))
        assert st == 200 and names == ["ch", "sr"], body
        # The new sink's live start is recorded: backfill's default --until is the boundary,
        # and history plus live rows are all in StarRocks once, matching ClickHouse.
        rc, out, err = sluice_cli(["backfill", "--config", s.config_path, "--source", ch.url,
                                   "--sink", "sr", "--table", DB + ".events", "--time-column",
                                   "ts", "--slice", "1m"])
        assert rc == 0 and "defaults to the sink's live start" in err, (rc, out, err)
        # The backfill's progress is in the running instance's metrics.
        sent = int(re.search(r" (\d+) rows sent", out).group(1))
        st, _, body = H.http_request(s.admin_url + "/metrics")
        assert st == 200 and ('sluice_backfill_rows_done{sink="sr",table="%s.events"} %d'
                              % (DB, sent)) in body.decode(), body.decode()[-1500:]
        assert 'sluice_backfill_running{sink="sr",table="%s.events"} 0' % DB in body.decode()
        # Every acked row reaches both (the last ones may still be on their way).
        H.wait_until(lambda: int(ch.query("SELECT count() FROM %s.events" % DB)) == tr.n(),
                     timeout=60, what="all %d acked rows in ClickHouse" % tr.n())
        n_ch = tr.n()
        try:
            H.wait_until(lambda: sr.count(DB + ".events") >= n_ch, timeout=60,
                         what="all rows (%d in ClickHouse, %s)" % (n_ch, out))
        except AssertionError:
            ids = set(r["id"] for r in emu_sql(sr, 'SELECT id FROM "%s.events"' % DB))
            chs = [l.split("\t") for l in ch.query(
                "SELECT id, toUnixTimestamp(ts) FROM %s.events ORDER BY id" % DB).splitlines()]
            raise AssertionError("StarRocks %s (%d distinct), ClickHouse %d; missing (id, ts): %s"
                                 % (emu_ids(sr), len(ids), n_ch,
                                    [c for c in chs if int(c[0]) not in ids][:20]))
        n, d = emu_ids(sr)
        assert n == d == tr.n(), (n, d, tr.n())
        # A broken config on SIGHUP: refused, the instance runs on unchanged.
        with open(s.config_path, "a") as f:
            f.write("bogus_key: 1\n")
        s.proc.signal(1)
        H.wait_until(lambda: "config refused" in s.proc.output(), timeout=30, what="refusal")
        assert s.proc.alive()
        st, _, body = s.insert("events", [row(1, int(time.time()))], database=DB)
        assert st == 200, body
        assert s.stop() == 0
    finally:
        if tr:
            tr.stop()
        tmp.close()


def test_kill9_in_the_new_sinks_first_second_neither_loses_nor_doubles_a_row():
    """kill -9 while a just-added latest sink is still skipping the records that arrived
    before its start second T (sinks/engine.c skip_before_start; T is in meta, the skip's
    progress in its cursor). After the restart the skip goes on from the cursor: the new
    sink delivers exactly the rows that arrived from T on, backfill up to the recorded
    boundary the rest, so StarRocks holds ClickHouse's rows once each and every acked one."""
    tmp = H.TempDir()
    tr = None
    try:
        ch, sr, s = live_instance(tmp, "k9")
        tr = LiveTraffic(s, 2 * 10 ** 6)
        H.wait_until(lambda: tr.n() >= 300, what="traffic")
        add_sr_sink(s, ch, sr)
        # Reload early in a second, so that its start second T (the next whole one) leaves
        # time to kill and restart before it: the restarted instance must go on skipping
        # the rows that arrive before T from its own meta, not only the one that began it.
        while not 0.02 < time.time() % 1 < 0.1:
            time.sleep(0.005)
        t_start = int(time.time()) + 1
        s.proc.signal(1)  # SIGHUP: the sr cursor and its start second, in one txn
        H.wait_until(lambda: len(json.loads(H.http_request(s.admin_url + "/v1/sinks")[2])) == 2,
                     timeout=30, interval=0.01, what="the new sink in /v1/sinks")
        time.sleep(0.1)  # rows arrive, the sink skips them
        live_before_kill = sr.count(DB + ".events")
        s.kill9()
        assert live_before_kill == 0, "%d rows before T went live" % live_before_kill
        s.start()
        up = time.time()
        assert up < t_start - 0.1, "restarted %.2f s after T: the window is not tested" % (
            up - t_start)
        H.wait_until(lambda: time.time() > t_start + 0.3, what="T")
        H.wait_until(lambda: sr.count(DB + ".events") > 0, timeout=30,
                     what="live rows in StarRocks after the restart")
        n0 = tr.n()
        H.wait_until(lambda: tr.n() >= n0 + 1000, timeout=60, what="traffic after restart")
        tr.stop()
        rc, out, err = sluice_cli(["backfill", "--config", s.config_path, "--source", ch.url,
                                   "--sink", "sr", "--table", DB + ".events", "--time-column",
                                   "ts", "--slice", "1m"])
        assert rc == 0 and "defaults to the sink's live start" in err, (rc, out, err)

        def ch_ids():
            return set(int(x) for x in ch.query("SELECT id FROM %s.events" % DB).split())
        # Rows the kill cut off before their 200 may be in the log too: they count as rows
        # of ClickHouse, not as acked ones.
        H.wait_until(lambda: tr.acked <= ch_ids(), timeout=60,
                     what="every acked row in ClickHouse")
        want = ch_ids()
        H.wait_until(lambda: sr.count(DB + ".events") >= len(want), timeout=60,
                     what="%d rows in StarRocks" % len(want))
        got = [r["id"] for r in emu_sql(sr, 'SELECT id FROM "%s.events"' % DB)]
        if len(got) != len(set(got)):
            twice = sorted(set(i for i in got if got.count(i) > 1))
            recs = [json.dumps(r)[:160] for r in s.wal_dump()
                    if any(str(i) in json.dumps(r) for i in twice[:3])]
            raise AssertionError("rows sent twice: %d of %d, T %d: %s; %s; records %s" % (
                len(got) - len(set(got)), len(got), t_start, twice[:10],
                ch.query("SELECT id, toUnixTimestamp(ts) FROM %s.events WHERE id IN (%s)"
                         % (DB, ",".join(map(str, twice[:10])))), recs))
        assert set(got) == want, ("missing %s, extra %s" % (sorted(want - set(got))[:10],
                                                            sorted(set(got) - want)[:10]))
        assert s.stop() == 0
    finally:
        if tr:
            tr.stop()
        tmp.close()


def test_verify_exit_codes_and_boundary():
    tmp = H.TempDir()
    try:
        ch, sr, cfg = small_setup(tmp)
        emu = "emu+http://127.0.0.1:%d" % sr.fe_port
        rc, _, err = verify(ch.url, emu, "--by", "week")
        assert rc == 2, (rc, err)
        rc, _, err = verify("http://default:pw@127.0.0.1:%d" % H.free_port(), emu)
        assert rc == 3 and ":pw@" not in err and "***" in err, (rc, err)
        rc, out, err = verify(ch.url, emu, "--until", ts_text(BASE_TS + SPAN_S))
        assert rc == 1 and "0 rows in b" in out, (rc, out, err)
        rc, out, err = verify(ch.url, emu, "--config", cfg, "--sink", "sr")
        assert rc == 3 and "boundary" in err, (rc, out, err)  # the sink never ran
        rc, out, err = verify(ch.url, emu, "--all")
        assert rc == 1, (rc, out, err)
    finally:
        tmp.close()


if __name__ == "__main__":
    H.run_tests(globals())
