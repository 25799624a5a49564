#!/usr/bin/env python3
"""test_sinks_modern.py - the clickhouse sink against the modern engine (chDB behind
tests/support/chserver; issue 11 part 3): TensorZero-shaped INSERTs with SETTINGS
async_insert=1, wait_for_async_insert=1 and its URL settings are delivered (async settings
dropped, the others forwarded); the server version turns insert_deduplication_token on, so a
kill -9 of sluice mid-send leaves 0 duplicates in a table with
non_replicated_deduplication_window; schema violations go to the DLQ with the engine's
message. Run: SLUICE_BIN=build/sluice python3 tests/e2e/test_sinks_modern.py"""
import json
import os
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

DB = "tz"
DDL = ("CREATE TABLE IF NOT EXISTS tz.events (id UInt64, name String, tags Map(String, String), "
       "payload String) ENGINE = MergeTree ORDER BY id "
       "SETTINGS non_replicated_deduplication_window = 1000")

CONFIG = H.CH_SINK_CONFIG + """    batch:
      max_rows: 300
      max_wait_ms: 20
    retry:
      initial_backoff_ms: 50
      max_backoff_ms: 1000
"""


def gateway_insert(s, rows):
    """TensorZero's shape: SQL and rows in the body, settings in SETTINGS and URL params."""
    body = ("INSERT INTO events\nSETTINGS async_insert=1, wait_for_async_insert=1\n"
            "FORMAT JSONEachRow\n" + "\n".join(json.dumps(r) for r in rows))
    q = urllib.parse.urlencode({"database": DB, "input_format_skip_unknown_fields": "0",
                                "input_format_null_as_default": "0",
                                "output_format_json_quote_64bit_integers": "1"})
    st, _, b = H.http_request(s.url + "/?" + q, "POST", body.encode(),
                              {"X-ClickHouse-User": "default", "X-ClickHouse-Key": ""})
    assert st == 200, (st, b)


def rows(a, b):
    return [{"id": i, "name": "n%d" % i, "tags": {"k": "v%d" % i},
             "payload": {"nested": [i, {"x": "y"}]}} for i in range(a, b)]


def count(ch, distinct=False):
    f = "uniqExact(id)" if distinct else "count()"
    return int(ch.query("SELECT %s FROM tz.events" % f).strip())


def setup(tmp):
    ch = H.ChServer(tmp.sub("ch"))
    ch.query("CREATE DATABASE IF NOT EXISTS tz")
    ch.query(DDL)
    return ch


def test_gateway_inserts_delivered_with_settings_filtered():
    tmp = H.TempDir()
    try:
        ch = setup(tmp)
        s = H.Sluice(tmp.sub("sluice"), CONFIG % ch.url)
        gateway_insert(s, rows(0, 50))
        H.wait_until(lambda: count(ch) >= 50, timeout=60, what="50 rows")
        got = json.loads(ch.query("SELECT tags, payload FROM tz.events WHERE id = 7 "
                                  "FORMAT JSONEachRow"))
        assert got["tags"] == {"k": "v7"}, got
        assert json.loads(got["payload"]) == {"nested": [7, {"x": "y"}]}, got
        log = open(os.path.join(s.dir, "sluice.log")).read()
        assert '"dedup_token":"on"' in log, log[-2000:]
        s.stop()
    finally:
        tmp.close()


def test_kill9_mid_send_no_duplicates_with_dedup_token():
    tmp = H.TempDir()
    try:
        ch = setup(tmp)
        s = H.Sluice(tmp.sub("sluice"), CONFIG % ch.url)
        total = 0
        for rnd in range(4):  # several kills: at least one lands mid-send in practice
            before = count(ch)
            for k in range(total, total + 3000, 300):
                gateway_insert(s, rows(k, k + 300))
            total += 3000
            H.wait_until(lambda: count(ch) > before, timeout=60, what="rows moving")
            s.kill9()
            s.start()
        H.wait_until(lambda: count(ch, True) >= total, timeout=120, what="every row")
        time.sleep(1.0)
        assert count(ch, True) == total
        assert count(ch) == total, "duplicates: %d rows for %d ids" % (count(ch), total)
        log = open(os.path.join(s.dir, "sluice.log")).read()
        print("  in-flight resends after kill -9: %d" % log.count("resending the in-flight"))
        s.stop()
    finally:
        tmp.close()


def test_schema_violation_dead_lettered_with_engine_message():
    tmp = H.TempDir()
    try:
        ch = setup(tmp)
        s = H.Sluice(tmp.sub("sluice"), CONFIG % ch.url)
        batch = rows(0, 20)
        batch[5]["unknown_column"] = 1          # skip_unknown_fields=0
        batch[9]["name"] = None                 # null into String, null_as_default=0
        gateway_insert(s, batch)
        H.wait_until(lambda: count(ch) >= 18, timeout=60, what="18 rows")
        time.sleep(1.0)
        assert count(ch) == 18
        s.stop()
        _, out, _ = s.cli("dlq", "list", "--config", s.config_path)
        lines = [l for l in out.splitlines() if l.split()[:2] and l.split()[0].isdigit()
                 and l.split()[1] == "ch"]
        assert len(lines) == 2, out
        assert all("Code: " in l for l in lines), out
    finally:
        tmp.close()


if __name__ == "__main__":
    H.run_tests(globals())
