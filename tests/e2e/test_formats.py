#!/usr/bin/env python3
"""test_formats.py - every INSERT format sluice buffers is durable (issue 19), checked with
real producers against the modern engine (chDB behind tests/support/chserver):
- bodies the engine itself encodes (SELECT ... FORMAT f: JSON families, CSV/TSV families,
  Values, RowBinary*, Native) posted through sluice while the engine is down: all acked,
  and once it is back the rows equal, row by row, the same bodies inserted directly;
- the official JS client (npm @clickhouse/client, tests/support/jsclient) with each format it
  can insert, its default insert() (JSONCompactEachRow) included, during an outage;
- a permanently refused row in a CSVWithNames / JSONCompactEachRow body: bisect (header
  sent with each part), the others arrive, that row readable in the DLQ;
- INSERT ... SELECT and VALUES with {p:T} pass through, counted per table in /metrics and
  logged once per table;
- a StarRocks sink (tests/e2e/starrocks_emulator.py) gets the same rows for the formats it
  can take, and DLQ entries with the reason for the others.
Run: SLUICE_BIN=build/sluice python3 tests/e2e/test_formats.py"""
import base64
import json
import os
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

DDL = ("CREATE TABLE IF NOT EXISTS d.{t} (id UInt32, name String, v Nullable(Float64)) "
       "ENGINE = MergeTree ORDER BY id")

TEXT_FORMATS = [
    "JSONEachRow", "JSONStringsEachRow", "JSONLines", "NDJSON",
    "JSONCompactEachRow", "JSONCompactEachRowWithNames", "JSONCompactEachRowWithNamesAndTypes",
    "JSONCompactStringsEachRow", "JSONCompactStringsEachRowWithNames",
    "JSONCompactStringsEachRowWithNamesAndTypes", "JSONObjectEachRow",
    "CSV", "CSVWithNames", "CSVWithNamesAndTypes",
    "TabSeparated", "TSV", "TabSeparatedWithNames", "TSVWithNamesAndTypes",
    "TabSeparatedRaw", "TSVRawWithNames", "Values",
]
BINARY_FORMATS = ["RowBinary", "RowBinaryWithNames", "RowBinaryWithNamesAndTypes", "Native"]
N = 20

CONFIG = H.CH_SINK_CONFIG + """    batch:
      max_rows: 1000
      max_wait_ms: 20
    retry:
      initial_backoff_ms: 50
      max_backoff_ms: 500
"""

SR_SINK = """  - name: sr
    type: starrocks
    url: %s
    batch:
      max_wait_ms: 20
    retry:
      initial_backoff_ms: 50
      max_backoff_ms: 500
"""


def engine_body(ch, fmt, base, n=N, raw_name=False, newline=False, nonull=False):
    """Rows encoded by the engine itself. Names carry what formats escape: quotes, commas,
    tabs, backslashes, and (CSV only, where it makes the body one unit) a line break."""
    name = ("concat('n', toString(number), multiIf(number % 5 = 0, ',\"q', number % 5 = 1, "
            "'tab\\there', number % 5 = 2, 'back\\\\slash', number % 5 = 3, 'it''s', ''))")
    if raw_name or "Raw" in fmt:  # Raw: the engine's own output is not re-readable otherwise
        name = "concat('n', toString(number))"
    if newline:
        name = "concat('line', toString(number), '\\nbreak')"
    v = "toNullable(number / 8)" if nonull else "if(number % 4 = 0, NULL, number / 8)"
    sql = ("SELECT toUInt32(number) AS id, %s AS name, %s AS v FROM numbers(%d, %d) FORMAT %s"
           % (name, v, base, n, fmt))
    st, _, body = H.http_request(ch.url + "/?" + urllib.parse.urlencode({"query": sql}), "POST", b"")
    assert st == 200, (fmt, body[:300])
    return body


def post(url, table, fmt, body, in_body=False):
    stmt = "INSERT INTO d.%s FORMAT %s" % (table, fmt)
    if in_body:
        return H.http_request(url + "/", "POST", stmt.encode() + b"\n" + body)
    return H.http_request(url + "/?" + urllib.parse.urlencode({"query": stmt}), "POST", body)


def table_rows(ch, table):
    out = ch.query("SELECT id, name, v FROM d.%s ORDER BY id FORMAT JSONCompactEachRow" % table)
    return [json.loads(l) for l in out.splitlines()]


def count(ch, table):
    return int(ch.query("SELECT count() FROM d.%s" % table).strip())


def setup(tmp, tables=("direct", "via")):
    ch = H.ChServer(tmp.sub("ch"))
    ch.query("CREATE DATABASE IF NOT EXISTS d")
    for t in tables:
        ch.query(DDL.format(t=t))
    return ch


def test_engine_encoded_bodies_durable_through_outage():
    tmp = H.TempDir()
    try:
        ch = setup(tmp)
        s = H.Sluice(tmp.sub("sluice"), CONFIG % ch.url)
        bodies = {}
        for i, fmt in enumerate(TEXT_FORMATS + BINARY_FORMATS):
            bodies[fmt] = engine_body(ch, fmt, 1000 * i)
        # CSV with a line break inside a quoted value: not cut at lines, one unit.
        bodies["CSVWithNames/newline"] = engine_body(ch, "CSVWithNames", 99000, newline=True)
        for fmt, body in bodies.items():
            st, _, b = post(ch.url, "direct", fmt.split("/")[0], body)
            assert st == 200, (fmt, b[:300])
        want = table_rows(ch, "direct")
        assert len(want) == N * len(bodies), len(want)
        ch.kill()
        for i, fmt in enumerate(bodies):
            st, _, b = post(s.url, "via", fmt.split("/")[0], bodies[fmt], in_body=i % 2 == 1)
            assert st == 200, (fmt, st, b[:300])
        # `sluice wal dump` of what waits for the engine: one JSON line per body, naming its
        # format; binary bodies come back byte for byte (base64), text bodies as text.
        dumped = s.wal_dump()
        assert len(dumped) == len(bodies), [(r["format"], r["n_rows"]) for r in dumped]
        for fmt, r in zip(bodies, dumped):
            name = fmt.split("/")[0]
            assert r["format"] == name, (fmt, r["format"])
            if name in BINARY_FORMATS:
                assert base64.b64decode(r["data_base64"]) == bodies[fmt], fmt
            elif "rows" in r:
                assert name.startswith("JSON") and len(r["rows"]) == r["n_rows"] == N, (fmt, r)
            elif not name.startswith(("CSV", "TabSeparated", "TSV")):
                # JSONObjectEachRow, Values: stored one `"name": {row}` / `(tuple)` per line
                assert len(r["data"].splitlines()) == r["n_rows"] == N, (fmt, r)
            else:
                text = r.get("header", "") + r["data"]
                assert text.strip() == bodies[fmt].decode().strip(), (fmt, text[:200])
        ch.start()
        H.wait_until(lambda: count(ch, "via") >= len(want), timeout=90, what="every row")
        time.sleep(0.5)
        got = table_rows(ch, "via")
        assert got == want, [(a, b) for a, b in zip(got, want) if a != b][:5]
        log = open(os.path.join(s.dir, "sluice.log")).read()
        assert "unbuffered" not in log, log[-2000:]
        s.stop()
    finally:
        tmp.close()


def js_insert(url, table, base, formats):
    script = os.path.join(H.SRC, "tests", "support", "jsclient", "insert.js")
    r = subprocess.run(["node", script, "--url", url, "--table", table, "--base", str(base),
                        "--n", str(N), "--formats", ",".join(formats)],
                       capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    return [json.loads(l) for l in r.stdout.decode().splitlines() if l.strip()]


JS_FORMATS = ["default", "JSONEachRow", "JSONStringsEachRow", "JSONCompactEachRow",
              "JSONCompactStringsEachRow", "JSONCompactEachRowWithNames",
              "JSONCompactEachRowWithNamesAndTypes", "JSONCompactStringsEachRowWithNames",
              "JSONCompactStringsEachRowWithNamesAndTypes", "JSONObjectEachRow",
              "CSV", "CSVWithNames", "CSVWithNamesAndTypes", "TabSeparated",
              "TabSeparatedRaw", "TabSeparatedWithNames", "TabSeparatedWithNamesAndTypes"]


def test_js_client_inserts_acked_while_engine_down_arrive_once():
    tmp = H.TempDir()
    try:
        ch = setup(tmp)
        sr = H.StarRocksEmulator(tmp.sub("sr"), {"d.via": [["id", "BIGINT NOT NULL"],
                                                           ["name", "STRING"],
                                                           ["v", "DOUBLE NULL"]]})
        s = H.Sluice(tmp.sub("sluice"), (CONFIG % ch.url) + SR_SINK % sr.url)
        res = js_insert(ch.url, "d.direct", 0, JS_FORMATS)
        assert all(r["ok"] for r in res), res
        want = table_rows(ch, "direct")
        assert len(want) == N * len(JS_FORMATS), len(want)
        ch.kill()
        res = js_insert(s.url, "d.via", 0, JS_FORMATS)
        bad = [r for r in res if not r["ok"]]
        assert not bad, bad  # acked from the log while ClickHouse is down
        # `sluice wal dump` shows every acked row, each record a line of valid JSON
        dumped = s.wal_dump()
        assert sum(r["n_rows"] for r in dumped) == len(want), [(r["format"], r["n_rows"])
                                                               for r in dumped]
        ch.start()
        H.wait_until(lambda: count(ch, "via") >= len(want), timeout=90, what="every row")
        time.sleep(0.5)
        got = table_rows(ch, "via")
        assert got == want, [(a, b) for a, b in zip(got, want) if a != b][:5]
        # StarRocks: every row either loaded, equal to ClickHouse's, or in its DLQ with the
        # reason (TabSeparated escapes): never a silent difference.
        def sr_accounted():
            return sr.count("d.via") + dlq_rows(s, "sr") >= len(want)
        H.wait_until(sr_accounted, timeout=90, what="StarRocks rows loaded or dead-lettered")
        time.sleep(0.5)
        ch_rows = {r[0]: r for r in got}
        sr_rows = sr.rows("d.via")
        assert len(sr_rows) + dlq_rows(s, "sr") == len(want), (len(sr_rows), dlq_rows(s, "sr"))
        assert len(sr_rows) >= len(want) * 3 // 4, len(sr_rows)
        for r in sr_rows:
            assert [r["id"], r["name"], r["v"]] == ch_rows[r["id"]], (r, ch_rows[r["id"]])
        assert all("TabSeparated escape" in e for e in dlq_entries(s, "sr")), dlq_entries(s, "sr")
        s.stop()
    finally:
        tmp.close()


def dlq_rows(s, sink):
    return sum(int(e.split()[3]) for e in dlq_entries(s, sink))


def dlq_entries(s, sink):
    _, out, _ = s.cli("dlq", "list", "--config", s.config_path, "--sink", sink)
    return [l for l in out.splitlines() if l.split()[:2] and l.split()[0].isdigit()
            and l.split()[1] == sink]


def test_refused_row_bisected_rest_arrives_row_in_dlq():
    tmp = H.TempDir()
    try:
        ch = setup(tmp, ("via",))
        s = H.Sluice(tmp.sub("sluice"), CONFIG % ch.url)
        bad_id = "if(number = 7, 'x7', toString(number))"
        for i, fmt in enumerate(["CSVWithNames", "JSONCompactEachRowWithNames", "TSV"]):
            sql = ("SELECT %s AS id, 'n' AS name, 0.5 AS v FROM numbers(%d, %d) FORMAT %s"
                   % (bad_id.replace("number = 7", "number = %d" % (1000 * i + 7)),
                      1000 * i, N, fmt))
            st, _, body = H.http_request(ch.url + "/?" + urllib.parse.urlencode({"query": sql}),
                                         "POST", b"")
            assert st == 200, body
            st, _, b = post(s.url, "via", fmt, body)
            assert st == 200, (fmt, b)
        H.wait_until(lambda: count(ch, "via") >= 3 * (N - 1), timeout=60, what="good rows")
        H.wait_until(lambda: len(dlq_entries(s, "ch")) >= 3, timeout=30, what="3 DLQ entries")
        time.sleep(0.5)
        assert count(ch, "via") == 3 * (N - 1)
        ids = {r[0] for r in table_rows(ch, "via")}
        assert not ids & {7, 1007, 2007}, ids
        entries = dlq_entries(s, "ch")
        assert len(entries) == 3, entries
        shown = ""
        for e in entries:
            _, out, _ = s.cli("dlq", "show", e.split()[0], "--config", s.config_path)
            shown += out
        for row in ('"x7","n",0.5\n', '["x7", "n", 0.5]\n', "x7\tn\t0.5\n"):
            assert row in shown, (row, shown)
        s.stop()
    finally:
        tmp.close()


def test_rowbinary_refused_row_split_with_schema_rest_arrives_native_by_block():
    tmp = H.TempDir()
    try:
        ch = setup(tmp, ())
        # Binary input is not checked against the Enum's elements: a constraint refuses row 7.
        ch.query("CREATE TABLE d.e (id UInt32, tags Array(String), k Enum8('a' = 1, 'b' = 2), "
                 "note Nullable(String), CONSTRAINT no7 CHECK id % 100 != 7) "
                 "ENGINE = MergeTree ORDER BY id")
        s = H.Sluice(tmp.sub("sluice"), CONFIG % ch.url)
        # The engine encodes the rows.
        for i, fmt in enumerate(["RowBinary", "RowBinaryWithNames"]):
            sql = ("SELECT toUInt32(number) AS id, arrayMap(x -> toString(x), range(number %% 3)) "
                   "AS tags, toInt8(1 + number %% 2) AS k, "
                   "if(number %% 2 = 0, NULL, 'x') AS note FROM numbers(%d, %d) FORMAT %s"
                   % (100 * i, N, fmt))
            st, _, body = H.http_request(ch.url + "/?" + urllib.parse.urlencode({"query": sql}),
                                         "POST", b"")
            assert st == 200, body
            st, _, b = post(s.url, "e", fmt, body)
            assert st == 200, (fmt, b)
        # Native in blocks of 5 rows: the refused row's block is dead-lettered, not the body.
        sql = ("SELECT toUInt32(number) AS id, arrayMap(x -> toString(x), range(number % 3)) AS "
               "tags, toInt8(1) AS k, if(number % 2 = 0, NULL, 'x') AS note FROM numbers(200, "
               "20) SETTINGS max_block_size = 5 FORMAT Native")
        st, _, body = H.http_request(ch.url + "/?" + urllib.parse.urlencode({"query": sql}),
                                     "POST", b"")
        assert st == 200, body
        st, _, b = post(s.url, "e", "Native", body)
        assert st == 200, b
        H.wait_until(lambda: count(ch, "e") >= 2 * (N - 1) + 15, timeout=60, what="good rows")
        H.wait_until(lambda: len(dlq_entries(s, "ch")) >= 3, timeout=30, what="3 DLQ entries")
        time.sleep(0.5)
        ids = [int(x) for x in ch.query("SELECT id FROM d.e ORDER BY id").split()]
        assert ids == ([i for i in range(N) if i != 7] + [i for i in range(100, 100 + N) if i != 107]
                       + [i for i in range(200, 220) if not 205 <= i < 210]), ids
        entries = dlq_entries(s, "ch")
        assert len(entries) == 3 and all(" 1 " in e for e in entries), entries  # one unit each
        _, out, _ = s.cli("dlq", "show", entries[1].split()[0], "--config", s.config_path)
        assert "format: RowBinaryWithNames" in out and "bytes of RowBinaryWithNames" in out, out
        s.stop()
    finally:
        tmp.close()


def metric(s, name):
    _, _, body = H.http_request(s.admin_url + "/metrics")
    return [l for l in body.decode().splitlines() if l.startswith(name)]


def test_unbuffered_inserts_counted_per_table_and_logged_once():
    tmp = H.TempDir()
    try:
        ch = setup(tmp, ("via", "other"))
        s = H.Sluice(tmp.sub("sluice"), CONFIG % ch.url)
        for _ in range(2):
            st, _, b = H.http_request(s.url + "/?" + urllib.parse.urlencode(
                {"query": "INSERT INTO d.via SELECT number, 's', 1 FROM numbers(3)"}), "POST", b"")
            assert st == 200, b
        st, _, b = H.http_request(s.url + "/?" + urllib.parse.urlencode(
            {"query": "INSERT INTO d.other VALUES ({id:UInt32}, 'p', 2)", "param_id": "9"}),
            "POST", b"")
        assert st == 200, b
        assert count(ch, "via") == 6 and count(ch, "other") == 1
        m = metric(s, "sluice_ingest_unbuffered_total{")
        assert 'sluice_ingest_unbuffered_total{table="d.via"} 2' in m, m
        assert 'sluice_ingest_unbuffered_total{table="d.other"} 1' in m, m
        log = open(os.path.join(s.dir, "sluice.log")).read()
        assert log.count("passed through unbuffered") == 2, log[-3000:]
        # A buffered VALUES insert is not counted.
        st, _, b = H.http_request(s.url + "/?" + urllib.parse.urlencode(
            {"query": "INSERT INTO d.via VALUES (100, 'v', NULL), (101, 'w', 1.5)"}), "POST", b"")
        assert st == 200, b
        H.wait_until(lambda: count(ch, "via") == 8, timeout=30, what="VALUES rows")
        assert 'sluice_ingest_unbuffered_total{table="d.via"} 2' in metric(
            s, "sluice_ingest_unbuffered_total{")
        s.stop()
    finally:
        tmp.close()


SR_OK = ["JSONEachRow", "JSONStringsEachRow", "NDJSON", "JSONCompactEachRow",
         "JSONCompactEachRowWithNames",
         "JSONCompactStringsEachRowWithNamesAndTypes", "JSONObjectEachRow", "CSV", "CSVWithNames",
         "TSVRawWithNames", "RowBinaryWithNamesAndTypes"]
SR_DLQ = ["Values", "RowBinary", "Native"]


def test_starrocks_gets_same_rows_or_dlq_with_reason():
    tmp = H.TempDir()
    try:
        ch = setup(tmp, ("via",))
        sr = H.StarRocksEmulator(tmp.sub("sr"), {"d.via": [["id", "BIGINT NOT NULL"],
                                                           ["name", "STRING"],
                                                           ["v", "DOUBLE NULL"]]})
        s = H.Sluice(tmp.sub("sluice"), (CONFIG % ch.url) + SR_SINK % sr.url)
        total = 0
        for i, fmt in enumerate(SR_OK + SR_DLQ):
            # Names without TSV escapes or quotes: those are tested in the unit tests. The
            # engine writes NULL as "ᴺᵁᴸᴸ" in the Strings formats, no number for StarRocks.
            body = engine_body(ch, fmt, 1000 * i, raw_name=True, nonull="Strings" in fmt)
            st, _, b = post(s.url, "via", fmt, body)
            assert st == 200, (fmt, b)
            total += N
        H.wait_until(lambda: count(ch, "via") >= total, timeout=60, what="ClickHouse rows")
        want_n = N * len(SR_OK)
        H.wait_until(lambda: sr.count("d.via") >= want_n, timeout=60, what="StarRocks rows")
        H.wait_until(lambda: len(dlq_entries(s, "sr")) >= len(SR_DLQ), timeout=60,
                     what="StarRocks DLQ entries")
        time.sleep(0.5)
        ch_rows = {r[0]: r for r in table_rows(ch, "via")}
        got = sorted(sr.rows("d.via"), key=lambda r: r["id"])
        assert len(got) == want_n, len(got)
        for r in got:
            assert [r["id"], r["name"], r["v"]] == ch_rows[r["id"]], (r, ch_rows[r["id"]])
        entries = dlq_entries(s, "sr")
        assert len(entries) == len(SR_DLQ), entries
        text = "\n".join(entries)
        assert "cannot convert Values" in text and "cannot convert RowBinary" in text, text
        assert not dlq_entries(s, "ch")
        s.stop()
    finally:
        tmp.close()


if __name__ == "__main__":
    H.run_tests(globals())
