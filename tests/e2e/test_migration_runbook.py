#!/usr/bin/env python3
"""test_migration_runbook.py - deploy/MIGRATION.md, run as written (issue 18): its YAML
becomes the config and its shell blocks run with bash, only the compose stack's host names,
ports and paths replaced by this test's (clickhouse-server 18.16 with a password, the
StarRocks emulator, sluice on free loopback ports). 200k TensorZero-shaped rows of history
over 10 days, live inserts through sluice all along, the backfill killed with kill -9 half
way and run again; verify must find 0 differences, with the default boundary and (once the
traffic stops and both sinks caught up) with --all, and StarRocks must hold every row once.
Run: SLUICE_BIN=build/sluice python3 tests/e2e/test_migration_runbook.py"""
import calendar
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

N_HISTORY = 200000
DAYS = 10
RUNBOOK = os.path.join(H.SRC, "deploy", "MIGRATION.md")
CH_DDL = ("CREATE TABLE tensorzero.ChatInference (id String, function_name String, "
          "variant_name String, episode_id String, input String, output String, "
          "timestamp DateTime) ENGINE = MergeTree ORDER BY (timestamp, id)")
SR_TABLES = {"tensorzero.ChatInference": [
    ["id", "VARCHAR(36)"], ["function_name", "VARCHAR(255)"], ["variant_name", "VARCHAR(255)"],
    ["episode_id", "VARCHAR(36)"], ["input", "VARCHAR(65533)"], ["output", "VARCHAR(65533)"],
    ["timestamp", "DATETIME"]]}
HEADER = """wal: {dir: %s}
proxy: {listen: "127.0.0.1:%d"}
admin: {listen: "127.0.0.1:%d", token: "${SLUICE_ADMIN_TOKEN}"}
log: {level: warn}
"""


def blocks(text):
    """(marker, lang, body) for every fenced block; marker is the e2e comment before it."""
    out = []
    for m in re.finditer(r"(?:<!-- e2e: ([^>]*?) -->\n)?```(\w+)\n(.*?)```", text, re.S):
        out.append((m.group(1) or "", m.group(2), m.group(3)))
    return out


def tz_row(i, t):
    return {"id": "0190%028x" % i, "function_name": "fn_%d" % (i % 7),
            "variant_name": "v%d" % (i % 3), "episode_id": "%032x" % (i // 4),
            "input": '{"messages":[{"role":"user","content":"q %d"}]}' % i,
            "output": '[{"type":"text","text":"a \\"%d\\""}]' % i,
            "timestamp": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))}


def test_migration_runbook_verbatim_with_live_traffic_and_a_kill():
    text = open(RUNBOOK).read()
    bl = blocks(text)
    yaml_blocks = [b for m, lang, b in bl if lang == "yaml"]
    sh = [(m, b) for m, lang, b in bl if lang == "sh"]
    assert len(yaml_blocks) == 1 and len(sh) >= 6, bl
    for m, _ in sh:
        assert m.startswith(("run", "skip", "backfill", "reload")), "unmarked block in MIGRATION.md"
    tmp = H.TempDir()
    traffic = {"stop": False, "acked": 0, "errors": 0, "seconds": []}
    try:
        ch = H.ClickHouse18(tmp.sub("ch"), password="chpw")
        q = lambda sql, **kw: ch.query(sql, password="chpw", **kw)  # noqa: E731
        q("CREATE DATABASE tensorzero")
        q(CH_DDL)
        now = int(time.time())
        t0 = now - DAYS * 86400
        for lo in range(0, N_HISTORY, 50000):
            body = "".join(json.dumps(tz_row(i, t0 + i * (DAYS * 86400 - 3600) // N_HISTORY)) + "\n"
                           for i in range(lo, min(N_HISTORY, lo + 50000)))
            q("INSERT INTO tensorzero.ChatInference FORMAT JSONEachRow", data=body.encode())
        sr = H.StarRocksEmulator(tmp.sub("sr"), SR_TABLES, password="srpw")

        d = tmp.sub("sluice")
        cfg = os.path.join(d, "sluice.yaml")
        port, admin = H.free_port(), H.free_port()
        subst = [("http://tensorzero@clickhouse:8123", "http://default@127.0.0.1:%d" % ch.http_port),
                 ("http://clickhouse:8123", ch.url), ("http://starrocks:8030", sr.url),
                 ("mysql://root@starrocks:9030/tensorzero", "emu+http://127.0.0.1:%d" % sr.fe_port),
                 ("/etc/sluice/sluice.yaml", cfg), ("localhost:8124", "127.0.0.1:%d" % admin)]

        def local(s):
            for a, b in subst:
                s = s.replace(a, b)
            return s
        env = dict(os.environ, CLICKHOUSE_USER="default", CLICKHOUSE_PASSWORD="chpw",
                   STARROCKS_PASSWORD="srpw", SLUICE_ADMIN_TOKEN="tok",
                   PATH=os.path.dirname(os.path.abspath(H.SLUICE_BIN)) + ":" + os.environ["PATH"])
        header = HEADER % (os.path.join(d, "wal"), port, admin)
        sinks = local(yaml_blocks[0])
        ch_only = sinks[:sinks.index("  - name: starrocks")]

        def write(yaml):
            with open(cfg, "w") as f:
                f.write(header + yaml)

        def run_sh(body, check=True):
            r = subprocess.run(["bash", "-euo", "pipefail", "-c", local(body)], env=env,
                               capture_output=True, timeout=600, cwd=H.SRC)
            out, err = r.stdout.decode(), r.stderr.decode()
            if check:
                assert r.returncode == 0, (body, r.returncode, out[-3000:], err[-3000:])
            return r.returncode, out, err

        def start():
            p = H.Proc([H.SLUICE_BIN, "run", "--config", cfg], os.path.join(d, "run.log"), env=env)
            H.wait_until(lambda: H.http_request("http://127.0.0.1:%d/ping" % port,
                                                timeout=2)[2] == b"Ok.\n" or not p.alive(),
                         timeout=30, what="sluice /ping")
            assert p.alive(), p.output()
            return p

        # Before: sluice in front of ClickHouse only.
        write(ch_only)
        run = start()

        # Step 1: the new sink, checked.
        write(sinks)
        steps = iter(sh)
        m, b = next(steps)
        assert "check-config" in b
        run_sh(b)
        # Step 2 is skipped (the emulator has its tables). Step 3: SIGHUP, under live traffic.
        m, b = next(steps)
        assert m.startswith("skip") and "tensorzero.sql" in b

        def insert_live():
            k = 0
            while not traffic["stop"]:
                st, _, _ = H.http_request("http://127.0.0.1:%d/ping" % port, timeout=5)
                traffic["errors"] += st != 200  # the listener stays up across the reload
                # Never stamped in the last 20 ms of a second: a row stamped in one second
                # that arrives in the next is on both sides of the boundary (MIGRATION.md,
                # caveats: late arrivals).
                if time.time() % 1 > 0.98:
                    time.sleep(1.001 - time.time() % 1)
                t = int(time.time())
                rows = [tz_row(10 ** 7 + k * 20 + j, t) for j in range(20)]
                k += 1
                body = "\n".join(json.dumps(r) for r in rows).encode()
                st, _, _ = H.http_request(
                    "http://127.0.0.1:%d/?query=%s" % (port, "INSERT%20INTO%20tensorzero."
                                                       "ChatInference%20FORMAT%20JSONEachRow"),
                    "POST", body, {"X-ClickHouse-User": "default", "X-ClickHouse-Key": "chpw"})
                if st == 200:
                    traffic["acked"] += len(rows)
                    traffic["seconds"].append((t, len(rows)))
                else:
                    traffic["errors"] += 1
                time.sleep(0.05)
        th = threading.Thread(target=insert_live, daemon=True)
        th.start()
        H.wait_until(lambda: traffic["acked"] >= 200, timeout=30, what="live traffic")
        m, b = next(steps)
        assert m.startswith("reload") and "HUP" in b
        # The traffic goes on across the reload: the new sink delivers from the second after
        # the one it started in, backfill copies every row stamped before it, and every row
        # is counted.
        run.signal(signal.SIGHUP)
        H.wait_until(lambda: b'"starrocks"' in H.http_request(
            "http://127.0.0.1:%d/v1/sinks" % admin, headers={"Authorization": "Bearer tok"})[2],
            timeout=30, what="the starrocks sink started by SIGHUP")
        H.wait_until(lambda: sr.count("tensorzero.ChatInference") > 0, timeout=30,
                     what="live rows in StarRocks")
        m, b = next(steps)
        assert "/v1/sinks" in b
        _, out, _ = run_sh(b)
        sinks_state = json.loads(out)
        if isinstance(sinks_state, dict):
            sinks_state = sinks_state["sinks"]
        assert {s["name"]: s["state"] for s in sinks_state} == {"clickhouse": "ok", "starrocks": "ok"}, out

        # Step 4: dry run, the backfill killed with kill -9 half way, the same command again.
        m, b = next(steps)
        assert "--dry-run" in b
        _, out, _ = run_sh(b)
        assert "dry run" in out and "live start" in out, out
        # Backfill's part: the history and the live rows stamped before the boundary.
        m_until = re.search(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC, the sink's live start", out)
        assert m_until, out
        boundary = calendar.timegm(time.strptime(m_until.group(1), "%Y-%m-%d %H:%M:%S"))
        history = N_HISTORY + sum(n for t, n in list(traffic["seconds"]) if t < boundary)
        assert history > N_HISTORY, (boundary, traffic["seconds"][:3])
        m, b = next(steps)
        assert m.startswith("backfill")
        live0 = sr.count("tensorzero.ChatInference")
        p = H.Proc(["bash", "-euo", "pipefail", "-c", local(b)], os.path.join(d, "bf1.log"), env=env,
                   cwd=H.SRC)
        H.wait_until(lambda: sr.count("tensorzero.ChatInference") - live0 >= history * 2 // 5
                     or not p.alive(), timeout=120, interval=0.02, what="40% of the history")
        assert p.alive(), "backfill finished before the kill:\n" + p.output()
        os.killpg(p.pid, signal.SIGKILL)
        p.stop()
        _, out, err = run_sh(b)
        assert "done before" in out and "0 dead-lettered" in out, (out, err)
        m, b = next(steps)
        assert "--status" in b
        _, out, _ = run_sh(b)
        assert "%d rows" % history in out, out

        # Step 5 with the default boundary, while the traffic goes on.
        m, b = next(steps)
        assert b.lstrip().startswith("sluice verify")
        _, out, err = run_sh(b)
        assert "%d rows in a, %d rows in b, 0 differ" % (history, history) in out, (out, err)
        traffic["stop"] = True
        th.join()
        assert traffic["acked"] > 0 and traffic["errors"] == 0, traffic
        total = N_HISTORY + traffic["acked"]
        H.wait_until(lambda: sr.count("tensorzero.ChatInference") == total and
                     int(q("SELECT count() FROM tensorzero.ChatInference")) == total,
                     timeout=60, what="both sinks caught up")
        rc, out, err = run_sh(b.rstrip() + " --all\n")
        assert "%d rows in a, %d rows in b, 0 differ" % (total, total) in out, (out, err)
        st, _, body = H.http_request(sr.url + "/_emu/sql", "POST",
                                     'SELECT count(*) AS n, count(DISTINCT id) AS d FROM '
                                     '"tensorzero.ChatInference"')
        r = json.loads(body.decode().splitlines()[0])
        assert r["n"] == r["d"] == total, r
        print("  %d history rows, %d live rows (none refused across the SIGHUP), 0 differences"
              % (history, traffic["acked"]))
        for m, b in steps:
            assert m.startswith("skip"), (m, b)
        assert run.stop() == 0
    finally:
        traffic["stop"] = True
        tmp.close()


if __name__ == "__main__":
    H.run_tests(globals())
