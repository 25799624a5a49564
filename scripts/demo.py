#!/usr/bin/env python3
"""demo.py - sluice's main job, end to end on one machine (run by `make demo`).

Starts Debian's clickhouse-server on free loopback ports in a temporary directory, starts
sluice in front of it (WAL in the same directory), creates a reduced TensorZero schema,
sends TensorZero-shaped inserts through sluice exactly as the gateway does, shows them
arrive; then kills ClickHouse, keeps writing (every write still gets its 200), restarts
ClickHouse and shows the rows written during the outage arrive too. Cleans up at the end.
"""
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fixtures", "tensorzero"))
import harness  # noqa: E402
import tz  # noqa: E402

CONFIG = """
wal:
  dir: {wal_dir}
proxy:
  listen: {listen}
admin:
  listen: {admin}
sinks:
  - name: clickhouse
    type: clickhouse
    url: %s
    # Debian's 18.16 server does not know these newer settings TensorZero sends:
    drop_settings: [input_format_null_as_default, output_format_json_quote_64bit_integers]
    batch: {{max_wait_ms: 100}}
    retry: {{max_backoff_ms: 1000}}
"""


def count(ch, table):
    return int(ch.query("SELECT count() FROM tensorzero.%s" % table).strip() or 0)


def send(sl, n, rng):
    """n inferences, each the gateway's two INSERTs; returns the rows acked."""
    acked = 0
    for _ in range(n):
        inf = tz.make_inference(rng, database="tensorzero", variant="ch18")
        for req in inf["requests"]:
            st, _, resp = req.send(sl.url)
            if st != 200:
                raise SystemExit("sluice answered %d: %s" % (st, resp[:300]))
            acked += len(req.rows)
    return acked


def main():
    tmp = harness.TempDir("sluice-demo-")
    try:
        print("1. starting clickhouse-server (Debian 18.16) on loopback ...", flush=True)
        ch = harness.ClickHouse18(tmp.sub("clickhouse"))
        tz.create_schema(ch.url, "tensorzero", "schema_18.sql")
        print("   %s up, TensorZero tables created" % ch.url)

        print("2. starting sluice in front of it ...", flush=True)
        sl = harness.Sluice(tmp.sub("sluice"), CONFIG % ch.url)
        print("   sluice on %s (admin %s), WAL in %s" % (sl.url, sl.admin_url, sl.wal_dir))

        print("3. sending 50 inferences the way TensorZero's gateway does ...", flush=True)
        rng = random.Random(42)
        acked = send(sl, 50, rng)
        harness.wait_until(lambda: count(ch, "ChatInference") + count(ch, "ModelInference") >= acked,
                           timeout=30, what="rows in ClickHouse")
        print("   %d rows acked by sluice, now in ClickHouse: ChatInference=%d ModelInference=%d"
              % (acked, count(ch, "ChatInference"), count(ch, "ModelInference")))

        print("4. killing ClickHouse (kill -9) and writing 50 more inferences ...", flush=True)
        ch.kill()
        acked += send(sl, 50, rng)
        _, stats, _ = sl.cli("wal", "stats", "--dir", sl.wal_dir)
        print("   every write got 200 while ClickHouse was down; the WAL holds them:")
        print("   " + stats.strip().replace("\n", "\n   "))

        print("5. restarting ClickHouse on the same data ...", flush=True)
        ch.start()
        harness.wait_until(lambda: count(ch, "ChatInference") + count(ch, "ModelInference") >= acked,
                           timeout=60, what="outage rows in ClickHouse")
        print("   all %d acked rows are in ClickHouse: ChatInference=%d ModelInference=%d"
              % (acked, count(ch, "ChatInference"), count(ch, "ModelInference")))
        sample = ch.query("SELECT id, function_name, variant_name FROM tensorzero.ChatInference "
                          "ORDER BY id LIMIT 3 FORMAT JSONEachRow")
        print("   sample rows:\n   " + sample.strip().replace("\n", "\n   "))

        print("6. SIGTERM to sluice (graceful drain) ...", flush=True)
        rc = sl.stop()
        print("   sluice exited with %s" % rc)
        ch.stop()
        print("demo done: %d rows acked through sluice, all %d in ClickHouse" % (acked, acked))
    finally:
        harness._kill_all()
        tmp.close()


if __name__ == "__main__":
    main()
