#!/usr/bin/env python3
"""test_tz_lifecycle.py - a TensorZero gateway's whole life through sluice with sluice's DEFAULT
config (issue 15): its migration manager's first start on an empty modern engine
(tests/support/chserver), the second start, steady traffic with feedback, a sluice restart, and
a start while the engine is down. The start-up is replayed request by request from the
gateway's own source (tests/fixtures/tensorzero/gateway_start.py cites the files): migration
0033 writes DeploymentID through the write path and counts it at once, and every migration
record written at one start is read back by the next; both need read-your-writes.

What a gateway starting while the engine is down sees through sluice (checked below): GET /ping
answers 200 "Ok." (sluice's own: sluice is up), the records query answers a ClickHouse-shaped
502 (Code: 210 NETWORK_ERROR) whose body names neither UNKNOWN_DATABASE nor UNKNOWN_TABLE, so
check_migrations_state says UnableToParse and the manager runs the migrations anyway; the next
query (the database check) fails with the same 502, and the gateway stops ("ClickHouse query
failed with status 502"). A gateway already running keeps getting 200 for its writes.
Run: SLUICE_BIN=build/sluice python3 tests/e2e/test_tz_lifecycle.py"""
import json
import os
import random
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

sys.path.insert(0, os.path.join(H.SRC, "tests", "fixtures", "tensorzero"))
import gateway_start as G  # noqa: E402
import tz  # noqa: E402

DB = "tensorzero"

# Nothing but the addresses: every other key keeps its default (read_barrier_ms included).
CONFIG = H.CH_SINK_CONFIG


def engine_count(ch, sql):
    return int(ch.query(sql).strip())


def metric(s, name):
    _, _, body = H.http_request(s.admin_url + "/metrics")
    total = 0
    for line in body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def deployment_id_pattern(gw, ch, n):
    """Migration 0033's pattern n times: write one row through the write path, count at once."""
    gw.query("CREATE TABLE IF NOT EXISTS RywProbe (deployment_id String) ENGINE = MergeTree "
             "ORDER BY tuple()")
    for i in range(1, n + 1):
        gw.write("RywProbe", [{"deployment_id": "%064x" % i}])
        got = int(gw.query("SELECT COUNT() FROM RywProbe FORMAT CSV").strip())
        assert got == i, "read %d after write %d" % (got, i)


def traffic_with_feedback(gw, rng, n):
    """n inferences, each looked up by the feedback endpoint's InferenceById query right after
    its ChatInference write was acked (the MV must have it), then its feedback written."""
    for _ in range(n):
        inf = tz.make_inference(rng, DB, kind="chat")
        for r in inf["requests"]:
            st, _, body = r.send(gw.base)
            assert st == 200, body
        q = tz.inference_by_id_request(inf["inference_id"], DB)
        st, _, body = q.send(gw.base)
        assert st == 200, body
        row = json.loads(body.decode().splitlines()[0]) if body.strip() else None
        assert row and row["function_name"] == inf["function_name"], \
            "InferenceById has no row for %s right after its write: %r" % (inf["inference_id"], body)
        fb = tz.feedback_request("boolean", inf["inference_id"], DB, rng=rng)
        assert fb.send(gw.base)[0] == 200


def test_gateway_lifecycle_with_default_config():
    tmp = H.TempDir()
    try:
        ch = H.ChServer(tmp.sub("ch"))
        s = H.Sluice(tmp.sub("s"), CONFIG % ch.url)
        rng = random.Random(15)

        # 1. First start on an empty engine: every migration applies, 0033 reads its write.
        gw = G.Gateway(s.url, DB, rng=rng)
        first = gw.start()
        assert first["state"] == "TooFew", first
        assert first["applied"] == G.MIGRATION_IDS, first
        assert first["writes"] == 48, first  # 47 records + the DeploymentID row
        H.wait_until(lambda: engine_count(ch, "SELECT count() FROM %s.TensorZeroMigration" % DB)
                     == 47, 30, what="47 migration records in the engine")
        assert engine_count(ch, "SELECT count() FROM %s.DeploymentID" % DB) == 1

        # 2. Second start: the records written by the first are read back; nothing applies.
        inserts = metric(s, "sluice_ingest_requests_total")
        again = G.Gateway(s.url, DB, rng=rng).start()
        assert again == {"state": "JustRight", "applied": [], "writes": 0}, again

        # One table gets a dedup window (the dedup report must leave it out), directly.
        ch.query("ALTER TABLE %s.ModelInference MODIFY SETTING "
                 "non_replicated_deduplication_window = 1000" % DB)

        # 3. Steady traffic with feedback, and the DeploymentID pattern 50 times in a row.
        traffic_with_feedback(gw, rng, 20)
        deployment_id_pattern(gw, ch, 50)
        assert metric(s, "sluice_ingest_requests_total") > inserts

        # The dedup report (issue 15 part 3): TensorZero's DDL sets no window, so a retried
        # batch may double ChatInference rows; ModelInference has one now.
        sinks = json.loads(H.http_request(s.admin_url + "/v1/sinks")[2])
        unsafe = sinks[0]["dedup_unsafe_tables"]
        assert DB + ".ChatInference" in unsafe and DB + ".BooleanMetricFeedback" in unsafe, sinks
        assert DB + ".ModelInference" not in unsafe, sinks
        assert sinks[0]["dedup_unsafe_count"] == len(unsafe) == \
            metric(s, "sluice_sink_dedup_unsafe_tables"), (sinks, unsafe)
        warned = [json.loads(l) for l in s.proc.output().splitlines()
                  if "may duplicate rows" in l]
        chat = [w for w in warned if w.get("table") == DB + ".ChatInference"]
        assert len(chat) == 1 and chat[0]["fix"] == (
            "ALTER TABLE %s.ChatInference MODIFY SETTING non_replicated_deduplication_window = "
            "1000" % DB), warned
        assert not [w for w in warned if w.get("table") == DB + ".ModelInference"], warned
        # On demand: check-config --online asks the server about every table it holds.
        _, out, _ = s.cli("check-config", "--config", s.config_path, "--online")
        named = [l for l in out.splitlines() if "may duplicate" in l]
        assert any((DB + ".ChatInference:") in l and "non_replicated_deduplication_window = 1000"
                   in l for l in named), out
        assert not [l for l in named if (DB + ".ModelInference:") in l], out
        assert not [l for l in named if "InferenceByIdView" in l], out  # views are skipped

        # 4. sluice restarts (SIGTERM, same log): the next gateway start still finds everything.
        assert s.stop() == 0
        s.start()
        gw3 = G.Gateway(s.url, DB, rng=rng)
        assert gw3.start()["state"] == "JustRight"
        traffic_with_feedback(gw3, rng, 5)

        # 5. The engine is down: what a starting gateway sees (module docstring).
        ch.kill()
        gw4 = G.Gateway(s.url, DB, rng=rng)
        try:
            gw4.start()
            raise AssertionError("a gateway start succeeded with the engine down")
        except G.GatewayError as e:
            assert "Code: 210" in str(e) and "NETWORK_ERROR" in str(e), e
        kinds = [(k, st) for k, _, st in gw4.log]
        assert kinds[0] == ("query", 502), gw4.log  # the records query (after /ping's 200)
        assert len(kinds) == 2 and kinds[1] == ("query", 502), gw4.log  # the database check
        # ... while a running gateway's writes are still acked, and land after the engine is back.
        inf = tz.make_inference(rng, DB, kind="chat")
        for r in inf["requests"]:
            assert r.send(s.url)[0] == 200
        ch.start()
        H.wait_until(lambda: engine_count(
            ch, "SELECT count() FROM %s.ChatInference WHERE id = '%s'" % (DB, inf["inference_id"]))
            == 1, 60, what="the write acked during the outage, delivered")
        assert G.Gateway(s.url, DB, rng=rng).start()["state"] == "JustRight"
        assert s.stop() == 0
    finally:
        tmp.close()


def test_dedup_report_on_clickhouse_18():
    """Debian's 18.16 (old system.tables, no dedup window setting): a MergeTree table is
    reported with the upgrade fix, and so is a Memory table."""
    tmp = H.TempDir()
    try:
        ch = H.ClickHouse18(tmp.sub("ch"))
        ch.query("CREATE DATABASE IF NOT EXISTS db")
        ch.query("CREATE TABLE db.mt (d Date, x UInt32) ENGINE = MergeTree ORDER BY x "
                 "PARTITION BY d")
        ch.query("CREATE TABLE db.mem (x UInt32) ENGINE = Memory")
        s = H.Sluice(tmp.sub("s"), CONFIG % ch.url)
        for t in ("db.mt", "db.mem"):
            assert s.insert(t, [{"x": 1, "d": "2026-01-01"}] if t == "db.mt" else [{"x": 1}])[0] == 200
        H.wait_until(lambda: json.loads(H.http_request(s.admin_url + "/v1/sinks")[2])[0]
                     ["dedup_unsafe_count"] == 2, 30, what="both tables reported")
        unsafe = json.loads(H.http_request(s.admin_url + "/v1/sinks")[2])[0]["dedup_unsafe_tables"]
        assert sorted(unsafe) == ["db.mem", "db.mt"], unsafe
        assert s.stop() == 0
        mt = [json.loads(l) for l in s.proc.output().splitlines() if '"db.mt"' in l]
        assert mt and "upgrade ClickHouse" in mt[0]["fix"], mt
    finally:
        tmp.close()


if __name__ == "__main__":
    H.run_tests(globals())
