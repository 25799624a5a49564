#!/usr/bin/env python3
"""chaos.py - try hard to break sluice's guarantees (issue 9 part 1; DESIGN.md §1).

sluice runs in front of Debian's clickhouse-server 18.16 (sink "ch") and the StarRocks
emulator (sink "sr"), all on loopback with temp dirs. Loader threads keep many keep-alive
connections busy with INSERTs of 1-500 rows into a few tables; every row has a unique id.
Some requests are invalid by construction:
  - bad JSON (one broken line)  -> must get 400 and land nowhere;
  - rows whose "v" is a string where both backends want a number -> the request is acked,
    those rows must end in the DLQ of each sink and nowhere else.
Rounds of load are mixed with faults chosen at random per round (a short run first goes
through every kind once, in a seeded random order):
  kill9_sluice    kill -9 sluice mid-load, restart
  sigterm_drain   SIGTERM (drain, must exit 0), restart
  ch_sigstop      SIGSTOP ClickHouse a few seconds (slow backend), SIGCONT
  ch_kill         kill -9 ClickHouse, restart it a few seconds later
  emu_<mode>      emulator faults: 503, hang, refuse, drop_mid_body, publish_timeout,
                  commit_then_drop, fail_retryable, running
  wal_full        both sinks paused, load until the log is full (503 + Retry-After), resume
  disk_fsize      RLIMIT_FSIZE of the running sluice lowered (prlimit) so its WAL writes
                  fail with EFBIG; sinks paused; restored after; sluice must recover
  disk_enospc     (root + mount -o loop only) the WAL lives on a small ext2 image; the
                  filesystem is filled up so the log cannot grow (ENOSPC), then freed
At the end the faults stop, both sinks catch up, sluice is stopped, and the ledger is
reconciled against ClickHouse, the emulator's sqlite and `sluice dlq show`:
  every acked valid row is in ClickHouse (>= 1, duplicates counted) and in the emulator
  exactly once; every acked type-invalid row is in each sink's DLQ and in no backend; every
  row of a request that got an error (or never reached sluice) is nowhere; a request whose
  outcome is unknown (connection cut mid-request) landed whole or not at all; the DLQ holds
  only invalid-by-construction rows. Exit 1 on any violation.

  SLUICE_BIN=build/sluice python3 tests/chaos/chaos.py [--long SECONDS] [--seed N]
"""
import argparse
import collections
import http.client
import json
import math
import os
import random
import resource
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import harness as H  # noqa: E402

DB = "chaos"
TABLES = ["t0", "t1", "t2"]
CH_DDL = ("CREATE TABLE IF NOT EXISTS %s.%s (id UInt64, tb String, v Float64, pad String) "
          "ENGINE = MergeTree ORDER BY id")
SR_COLS = [["id", "BIGINT"], ["tb", "VARCHAR(16)"], ["v", "DOUBLE"], ["pad", "VARCHAR(1024)"]]

CONFIG = """wal:
  dir: %(wal_dir)s
  max_bytes: %(wal_max)s
  sync: always
proxy:
  listen: {listen}
admin:
  listen: {admin}
log:
  level: warn
shutdown:
  drain_timeout_s: 5
sinks:
  - name: ch
    type: clickhouse
    url: %(ch)s
    batch:
      max_rows: 2000
      max_wait_ms: 100
    retry:
      initial_backoff_ms: 50
      max_backoff_ms: 1000
    connect_timeout_ms: 500
    request_timeout_ms: 4000
  - name: sr
    type: starrocks
    url: %(sr)s
    user: root
    password: "srpw"
    batch:
      max_rows: 2000
      max_wait_ms: 100
    retry:
      initial_backoff_ms: 50
      max_backoff_ms: 1000
    connect_timeout_ms: 500
    request_timeout_ms: 3000
"""

EMU_MODES = {
    "503": lambda r: {"count": r.randint(3, 10)},
    "hang": lambda r: {"seconds": r.randint(2, 7)},
    "refuse": lambda r: {"count": r.randint(2, 6)},
    "drop_mid_body": lambda r: {"count": r.randint(1, 3)},
    "publish_timeout": lambda r: {"count": r.randint(1, 3)},
    "commit_then_drop": lambda r: {"count": r.randint(1, 3)},
    "fail_retryable": lambda r: {"count": r.randint(1, 4)},
    "running": lambda r: {"count": r.randint(1, 3)},
}


SLUICE_FAULTS = {"kill9_sluice", "sigterm_drain", "wal_full", "disk_fsize", "disk_enospc"}


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


class Ledger:
    """What the clients were told, row id by row id."""

    def __init__(self):
        self.lock = threading.Lock()
        self.next_id = 1
        self.acked_good = set()   # 200: must be in every sink
        self.acked_bad = set()    # 200, wrong type by construction: DLQ of every sink only
        self.failed = set()       # an error answer or never sent: must be nowhere
        self.doubt = []           # (good ids, bad ids) of requests whose outcome is unknown
        self.doubt_badjson = set()  # ids of cut requests with a broken line: nowhere
        self.status = collections.Counter()
        self.violations = []      # answers that break the contract (e.g. bad JSON acked)
        self.retry_after_seen = 0
        self.acked_requests = 0

    def ids(self, n):
        with self.lock:
            a = self.next_id
            self.next_id += n
        return range(a, a + n)

    def record(self, outcome, good, bad, bad_json, status, headers=None, body=b""):
        with self.lock:
            self.status[status] += 1
            if outcome == "acked":
                self.acked_requests += 1
                if bad_json:
                    self.violations.append("bad JSON acked with 200 (ids %d..)" % min(good))
                self.acked_good.update(good)
                self.acked_bad.update(bad)
            elif outcome == "failed":
                self.failed.update(good)
                self.failed.update(bad)
                if status == 400 and not bad_json:
                    self.violations.append("valid request refused 400: %r" % body[:200])
                if status == 503 and headers is not None:
                    if "retry-after" in headers:
                        self.retry_after_seen += 1
                    else:
                        self.violations.append("503 without Retry-After: %r" % body[:200])
            elif bad_json:  # a cut request with a broken line can only have landed nowhere
                self.doubt_badjson.update(good)
                self.doubt_badjson.update(bad)
            else:
                self.doubt.append((tuple(good), tuple(bad)))


def make_request(rng, ledger, table, n, pad_max=200, p_bad_type=0.04, p_bad_json=0.03):
    """Returns (body bytes, good ids, bad-type ids, bad_json)."""
    ids = ledger.ids(n)
    bad_json = rng.random() < p_bad_json
    n_bad = rng.randint(1, min(3, n)) if (not bad_json and rng.random() < p_bad_type) else 0
    bad_pos = set(rng.sample(range(n), n_bad)) if n_bad else set()
    lines, good, bad = [], [], []
    for k, i in enumerate(ids):
        row = {"id": i, "tb": table, "v": i * 0.5, "pad": "x" * rng.randint(0, pad_max)}
        if k in bad_pos:
            row["v"] = "not-a-number-%d" % i
            bad.append(i)
        else:
            good.append(i)
        lines.append(json.dumps(row))
    if bad_json:
        k = rng.randrange(n)
        broken = [lines[k][:-1] if lines[k].endswith("}") else lines[k] + "{",  # unterminated
                  lines[k].replace(", ", " ", 1),                               # missing comma
                  "{\"id\": %d, \"v\": tru}" % ids[k],                           # bad literal
                  "this is not json"]
        lines[k] = rng.choice(broken)
    return "\n".join(lines).encode(), good, bad, bad_json


class Client:
    """One keep-alive connection to sluice; classifies every outcome into the ledger."""

    def __init__(self, cluster, ledger):
        self.cluster, self.ledger = cluster, ledger
        self.conn = None

    def close(self):
        if self.conn:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001
                pass
        self.conn = None

    def send(self, table, body, good, bad, bad_json):
        """Returns (status, headers); status -1 when the outcome is unknown, 0 when the
        request never reached sluice."""
        path = "/?" + urllib.parse.urlencode(
            {"query": "INSERT INTO %s.%s FORMAT JSONEachRow" % (DB, table)})
        sent = False
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.cluster.sluice.port,
                                                       timeout=30)
                self.conn.connect()
            sent = True
            self.conn.request("POST", path, body=body)
            r = self.conn.getresponse()
            data = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
            if r.getheader("connection", "").lower() == "close":
                self.close()
        except (ConnectionRefusedError, ConnectionResetError, BrokenPipeError, OSError,
                http.client.HTTPException) as e:
            self.close()
            if not sent:
                self.ledger.record("failed", good, bad, bad_json, "refused")
                return 0, {}
            self.ledger.record("doubt", good, bad, bad_json, "cut:" + type(e).__name__)
            return -1, {}
        if r.status == 200:
            self.ledger.record("acked", good, bad, bad_json, 200)
        else:
            self.ledger.record("failed", good, bad, bad_json, r.status, hdrs, data)
        return r.status, hdrs


class Loader(threading.Thread):
    def __init__(self, cluster, ledger, seed, pace):
        super().__init__(daemon=True)
        self.cluster, self.ledger = cluster, ledger
        self.rng = random.Random(seed)
        self.pace = pace
        self.halt = threading.Event()
        self.client = Client(cluster, ledger)

    def run(self):
        while not self.halt.is_set():
            table = self.rng.choice(TABLES)
            n = max(1, min(500, int(math.exp(self.rng.uniform(0, math.log(500))))))
            body, good, bad, bad_json = make_request(self.rng, self.ledger, table, n)
            st, hdrs = self.client.send(table, body, good, bad, bad_json)
            if st == 503:  # log full: come back later, as Retry-After says
                ra = hdrs.get("retry-after", "1")
                self.halt.wait(min(float(ra) if ra.isdigit() else 1.0, 2.0))
            elif st in (0, -1):
                self.halt.wait(0.2)  # sluice down: retry a bit later
            else:
                self.halt.wait(self.rng.uniform(*self.pace))
        self.client.close()


class LoopFs:
    """A small ext2 image mounted on a dir of ours (root and mount -o loop only)."""

    def __init__(self, path, size_mb):
        self.img = path + ".img"
        self.mnt = path
        self.mounted = False
        os.makedirs(path, exist_ok=True)
        if os.geteuid() != 0:
            return
        try:
            with open(self.img, "wb") as f:
                f.truncate(size_mb << 20)
            subprocess.run(["mkfs.ext2", "-q", "-F", self.img], check=True, capture_output=True,
                           timeout=60)
            r = subprocess.run(["mount", "-o", "loop", self.img, self.mnt], capture_output=True,
                               timeout=60)
            self.mounted = r.returncode == 0
            if not self.mounted:
                log("loop mount not available (%s): disk_enospc disabled" %
                    r.stderr.decode().strip())
        except Exception as e:  # noqa: BLE001
            log("loop mount not available (%r): disk_enospc disabled" % e)

    def fill(self):
        """Fill the filesystem up to (almost) nothing free; returns the filler path."""
        p = os.path.join(self.mnt, "filler")
        chunk = b"\0" * (1 << 20)
        with open(p, "wb") as f:
            try:
                while True:
                    f.write(chunk)
                    f.flush()
            except OSError:
                pass
            try:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
            except OSError:
                pass
            try:
                os.fsync(f.fileno())
            except OSError:
                pass
        return p

    def close(self):
        if self.mounted:
            subprocess.run(["umount", "-l", self.mnt], capture_output=True, timeout=60)
            self.mounted = False
        try:
            os.unlink(self.img)
        except OSError:
            pass


class Cluster:
    def __init__(self, tmp, wal_max):
        self.tmp = tmp
        self.ch = H.ClickHouse18(tmp.sub("ch"))
        self.ch.query("CREATE DATABASE IF NOT EXISTS " + DB)
        for t in TABLES:
            self.ch.query(CH_DDL % (DB, t))
        self.sr = H.StarRocksEmulator(tmp.sub("sr"), {"%s.%s" % (DB, t): SR_COLS for t in TABLES},
                                      password="srpw")
        self.loopfs = LoopFs(os.path.join(tmp.path, "walfs"), 48)
        wal_dir = os.path.join(self.loopfs.mnt, "wal") if self.loopfs.mounted else None
        cfg = CONFIG % {"wal_dir": wal_dir or "{wal_dir}", "wal_max": wal_max,
                        "ch": self.ch.url, "sr": self.sr.url}
        # SIGXFSZ keeps its default action: sluice itself must ignore it (disk_fsize faults
        # killed it before it did; tests/chaos/test_disk_limit.py)
        self.sluice = H.Sluice(tmp.sub("sluice"), cfg, start=False)
        if wal_dir:
            self.sluice.wal_dir = wal_dir
        self.sluice.start()
        self.ch_stopped = False
        self.expect_down = False

    def sluice_alive(self):
        return self.sluice.proc.alive()

    def admin(self, path, method="GET"):
        return H.http_request(self.sluice.admin_url + path, method, timeout=10)

    def metrics(self):
        st, _, body = self.admin("/metrics")
        out = {}
        if st == 200:
            for line in body.decode().splitlines():
                if line and not line.startswith("#"):
                    k, _, v = line.rpartition(" ")
                    try:
                        out[k] = float(v)
                    except ValueError:
                        pass
        return out

    def sinks(self, action):
        for name in ("ch", "sr"):
            st, _, body = self.admin("/v1/sinks/%s/%s" % (name, action), "POST")
            if st != 200:
                raise AssertionError("%s %s -> %d %s" % (action, name, st, body[:200]))

    def data_file(self):
        return os.path.join(self.sluice.wal_dir, "data.mdb")

    def close(self):
        for p in (self.sluice, self.sr, self.ch):
            try:
                if p is self.ch and self.ch_stopped:
                    self.ch.proc.signal(signal.SIGCONT)
                p.stop()
            except Exception:  # noqa: BLE001
                pass
        self.loopfs.close()


class Chaos:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.ledger = Ledger()
        self.faults = collections.Counter()
        self.fault_notes = collections.defaultdict(list)
        self.problems = []  # crashes, hangs, failed recoveries
        self.rounds = 0

    # ---- faults (each runs in the main thread while the loaders keep going) ----

    def f_kill9_sluice(self, c):
        c.expect_down = True
        c.sluice.kill9()
        time.sleep(self.rng.uniform(0, 1.0))
        c.sluice.start()
        c.expect_down = False

    def f_sigterm_drain(self, c):
        m = c.metrics()
        lag = "lag ch=%s sr=%s" % (m.get('sluice_sink_lag_records{sink="ch"}'),
                                   m.get('sluice_sink_lag_records{sink="sr"}'))
        c.expect_down = True
        t0 = time.time()
        rc = c.sluice.stop(signal.SIGTERM, timeout=30)
        took = time.time() - t0
        self.fault_notes["sigterm_drain"].append("%s: exit %s in %.1fs" % (lag, rc, took))
        if rc != 0:
            self.problems.append("SIGTERM drain: exit code %s after %.1fs" % (rc, took))
        c.sluice.start()
        c.expect_down = False

    def f_ch_sigstop(self, c):
        c.ch.proc.signal(signal.SIGSTOP)
        c.ch_stopped = True
        time.sleep(self.rng.uniform(2, 6))
        c.ch.proc.signal(signal.SIGCONT)
        c.ch_stopped = False

    def f_ch_kill(self, c):
        c.ch.kill()
        time.sleep(self.rng.uniform(1, 5))
        c.ch.start()

    def emu(self, mode):
        def f(c):
            kw = EMU_MODES[mode](self.rng)
            c.sr.faults(mode=mode, **kw)
            self.fault_notes["emu_" + mode].append(json.dumps(kw))
        return f

    def fill_until(self, c, stop, seconds):
        """Send big requests from this thread until stop(status) or seconds pass."""
        cl = Client(c, self.ledger)
        t_end = time.time() + seconds
        seen = collections.Counter()
        while time.time() < t_end:
            table = self.rng.choice(TABLES)
            body, good, bad, bj = make_request(self.rng, self.ledger, table, 500, pad_max=900,
                                               p_bad_type=0, p_bad_json=0)
            st, _ = cl.send(table, body, good, bad, bj)
            seen[st] += 1
            if stop(st):
                break
        cl.close()
        return seen

    def f_wal_full(self, c):
        c.sinks("pause")
        try:
            seen = self.fill_until(c, lambda st: st == 503, 20)
            self.fault_notes["wal_full"].append(dict(seen))
            if not seen.get(503):
                self.problems.append("wal_full: no 503 after 20 s of filling (%s)" % dict(seen))
            st, _, _ = c.admin("/readyz")
            if st != 503:
                self.problems.append("wal_full: /readyz answered %d while the log is full" % st)
        finally:
            c.sinks("resume")
        self.expect_recovery(c, "wal_full")

    def f_disk_fsize(self, c):
        size = os.path.getsize(c.data_file())
        # no growth at all, or even the upper half of the file unwritable
        # (a file already at its high-water mark only fills up: the half limit then)
        limit = size if size < (2 << 20) and self.rng.random() < 0.5 else max(1 << 16, size // 2)
        pid = c.sluice.proc.pid
        # paused sinks make the log grow; running ones also hit the limit with their
        # cursor commits (the writer shares the failing file)
        paused = self.rng.random() < 0.6
        if paused:
            c.sinks("pause")
        try:
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
            seen = self.fill_until(c, lambda st: st != 200, 15 if paused else 6)
            crash = self.rng.random() < 0.3
            self.fault_notes["disk_fsize"].append(
                "limit %d of %d%s: %s%s" % (limit, size, ", sinks paused" if paused else "",
                                           dict(seen), ", then kill -9" if crash else ""))
            if crash:  # a crash while writes are failing: the restart must recover all
                self.crash_restart(c)
                return
        finally:
            if c.sluice_alive() and c.sluice.proc.pid == pid:
                resource.prlimit(pid, resource.RLIMIT_FSIZE,
                                 (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
            if paused:
                c.sinks("resume")
        if not c.sluice_alive():
            self.problems.append("disk_fsize: sluice died:\n" + c.sluice.proc.output()[-2000:])
            c.sluice.start()
            return
        self.expect_recovery(c, "disk_fsize")

    def f_disk_enospc(self, c):
        c.sinks("pause")
        filler = None
        try:
            filler = c.loopfs.fill()
            seen = self.fill_until(c, lambda st: st != 200, 15)
            crash = self.rng.random() < 0.3
            self.fault_notes["disk_enospc"].append(
                "data.mdb %d B: %s%s" % (os.path.getsize(c.data_file()), dict(seen),
                                         ", then kill -9" if crash else ""))
            if crash:
                c.expect_down = True
                c.sluice.kill9()
        finally:
            if filler:
                os.unlink(filler)
            if c.expect_down:
                c.sluice.start()
                c.expect_down = False
            else:
                c.sinks("resume")
        if not c.sluice_alive():
            self.problems.append("disk_enospc: sluice died:\n" + c.sluice.proc.output()[-2000:])
            c.sluice.start()
            return
        self.expect_recovery(c, "disk_enospc")

    def crash_restart(self, c):
        """kill -9 sluice while its file-size limit is still low, restart it unlimited."""
        c.expect_down = True
        c.sluice.kill9()
        c.sluice.start()
        c.expect_down = False

    def expect_recovery(self, c, what):
        """After the fault: an insert is acked again within 30 s (sinks drain the log)."""
        cl = Client(c, self.ledger)
        t_end = time.time() + 30
        while time.time() < t_end:
            body, good, bad, bj = make_request(self.rng, self.ledger, "t0", 10, p_bad_type=0,
                                               p_bad_json=0)
            st, _ = cl.send("t0", body, good, bad, bj)
            if st == 200:
                cl.close()
                return
            time.sleep(0.5)
        cl.close()
        self.problems.append("%s: no insert acked within 30 s after the fault ended" % what)

    def kinds(self, c):
        k = ["kill9_sluice", "sigterm_drain", "ch_sigstop", "ch_kill", "wal_full", "disk_fsize"]
        k += ["emu_" + m for m in EMU_MODES]
        if c.loopfs.mounted:
            k.append("disk_enospc")
        return k

    def guarded(self, c, kind):
        try:
            self.run_fault(c, kind)
            self.faults[kind] += 1
        except Exception as e:  # noqa: BLE001
            self.problems.append("round %d %s: %r" % (self.rounds, kind, e))
            log("round %d %s raised %r" % (self.rounds, kind, e))

    def run_fault(self, c, kind):
        f = self.emu(kind[4:]) if kind.startswith("emu_") else getattr(self, "f_" + kind)
        f(c)

    # ---- the run ----

    def run(self):
        a = self.args
        tmp = H.TempDir(prefix="sluice-chaos-")
        log("chaos: seed %d, %s, binary %s, tmp %s" % (
            a.seed, "long %ds" % a.long if a.long else "short", H.SLUICE_BIN, tmp.path))
        c = None
        loaders = []
        ok = False
        try:
            c = Cluster(tmp, a.wal_max)
            log("cluster up: ch %s, sr %s, sluice %s (wal %s%s)" % (
                c.ch.url, c.sr.url, c.sluice.url, c.sluice.wal_dir,
                ", loop-mounted ext2" if c.loopfs.mounted else ""))
            for i in range(a.threads):
                ld = Loader(c, self.ledger, self.rng.randrange(1 << 30), (0.05, 0.3))
                ld.start()
                loaders.append(ld)
            budget = a.long if a.long else a.short_seconds
            t_end = time.time() + budget
            kinds = self.kinds(c)
            # disk faults first while the WAL file is still small, then the rest shuffled
            first = [k for k in kinds if k.startswith("disk_")]
            rest = [k for k in kinds if not k.startswith("disk_")]
            self.rng.shuffle(rest)
            plan = first + rest
            while time.time() < t_end or plan:
                if not a.long and not plan:
                    break
                if a.long and time.time() >= t_end:
                    break
                kind = plan.pop(0) if plan else self.rng.choice(kinds)
                self.rounds += 1
                rlen = self.rng.uniform(*a.round_len)
                r_end = time.time() + rlen
                time.sleep(self.rng.uniform(0.3, 1.5))
                self.check_alive(c)
                # long runs: a sluice-side fault sometimes meets a backend fault
                second = None
                if a.long and kind in SLUICE_FAULTS and self.rng.random() < 0.35:
                    second = self.rng.choice([k for k in kinds if k not in SLUICE_FAULTS])
                log("round %d: %s%s" % (self.rounds, kind, " + " + second if second else ""))
                th = None
                if second:
                    th = threading.Thread(target=self.guarded, args=(c, second), daemon=True)
                    th.start()
                self.guarded(c, kind)
                if th:
                    th.join(120)
                while time.time() < r_end:
                    time.sleep(0.2)
                self.check_alive(c)
            for ld in loaders:
                ld.halt.set()
            for ld in loaders:
                ld.join(60)
            ok = self.reconcile(c)
        finally:
            for ld in loaders:
                ld.halt.set()
            if c:
                c.close()
            tmp.close()
        return ok

    def check_alive(self, c):
        if not c.sluice_alive() and not c.expect_down:
            out = c.sluice.proc.output()[-3000:]
            self.problems.append("sluice died unexpectedly (exit %s):\n%s" % (
                c.sluice.proc.p.returncode, out))
            log("sluice died unexpectedly; restarting")
            c.sluice.start()

    # ---- reconciliation ----

    def wait_caught_up(self, c, timeout):
        def caught_up():
            m = c.metrics()
            return (m.get('sluice_sink_lag_records{sink="ch"}') == 0 and
                    m.get('sluice_sink_lag_records{sink="sr"}') == 0)
        try:
            H.wait_until(caught_up, timeout=timeout, interval=0.5, what="both sinks caught up")
            return True
        except AssertionError as e:
            m = c.metrics()
            self.problems.append("sinks did not catch up in %ds (lag ch=%s sr=%s): %s" % (
                timeout, m.get('sluice_sink_lag_records{sink="ch"}'),
                m.get('sluice_sink_lag_records{sink="sr"}'), e))
            return False

    def backend_counts(self, c):
        ch, sr = collections.Counter(), collections.Counter()
        for t in TABLES:
            out = c.ch.query("SELECT id, count() FROM %s.%s GROUP BY id FORMAT TSV" % (DB, t))
            for line in out.splitlines():
                i, n = line.split("\t")
                ch[int(i)] += int(n)
            st, _, body = H.http_request(c.sr.url + "/_emu/sql", "POST",
                                         'SELECT id, COUNT(*) AS n FROM "%s.%s" GROUP BY id'
                                         % (DB, t), timeout=120)
            assert st == 200, body[:300]
            for line in body.decode().splitlines():
                if line.strip():
                    d = json.loads(line)
                    sr[int(d["id"])] += int(d["n"])
        return ch, sr

    def dlq_rows(self, c):
        """{sink: Counter(id)} from `sluice dlq list/show` on the stopped instance."""
        _, out, _ = c.sluice.cli("dlq", "list", "--config", c.sluice.config_path)
        entries = []
        for line in out.splitlines():
            p = line.split()
            if len(p) >= 2 and p[0].isdigit() and p[1] in ("ch", "sr"):
                entries.append((int(p[0]), p[1]))

        def show(e):
            _, txt, _ = c.sluice.cli("dlq", "show", str(e[0]), "--config", c.sluice.config_path)
            rows = txt.split("\n---\n", 1)[1] if "\n---\n" in txt else ""
            ids = []
            for l in rows.splitlines():
                if l.strip():
                    try:
                        ids.append(int(json.loads(l)["id"]))
                    except Exception:  # noqa: BLE001
                        ids.append(("unparsable", l[:80]))
            return e[1], ids

        res = {"ch": collections.Counter(), "sr": collections.Counter()}
        with ThreadPoolExecutor(4) as ex:
            for sink, ids in ex.map(show, entries):
                res[sink].update(ids)
        return res, len(entries)

    def reconcile(self, c):
        L = self.ledger
        log("reconciling: faults cleared, waiting for the sinks to catch up")
        c.sr.faults(mode="clear")
        if c.ch_stopped:
            c.ch.proc.signal(signal.SIGCONT)
        if not c.sluice_alive():
            c.sluice.start()
        self.wait_caught_up(c, 120)
        time.sleep(0.5)
        rc = c.sluice.stop(signal.SIGTERM, timeout=30)
        if rc != 0:
            self.problems.append("final SIGTERM: exit code %s" % rc)
        ch, sr = self.backend_counts(c)
        dlq, n_entries = self.dlq_rows(c)
        errors = []

        def err(kind, ids):
            ids = sorted(ids)
            if ids:
                errors.append("%s: %d rows (e.g. %s)" % (kind, len(ids), ids[:8]))

        good, badt, failed = L.acked_good, L.acked_bad, L.failed
        lost_ch = [i for i in good if ch[i] < 1]
        lost_sr = [i for i in good if sr[i] < 1]
        dup_sr = [i for i in good if sr[i] > 1]
        dup_ch_rows = sum(ch[i] - 1 for i in good if ch[i] > 1)
        err("LOST acked rows missing in ClickHouse", lost_ch)
        err("LOST acked rows missing in StarRocks", lost_sr)
        err("DUPLICATE acked rows in StarRocks (must be exactly once)", dup_sr)
        for sink in ("ch", "sr"):
            err("acked type-invalid rows missing from the %s DLQ" % sink,
                [i for i in badt if dlq[sink][i] < 1])
        err("type-invalid rows in ClickHouse", [i for i in badt if ch[i]])
        err("type-invalid rows in StarRocks", [i for i in badt if sr[i]])
        err("failed-request rows in ClickHouse", [i for i in failed if ch[i]])
        err("failed-request rows in StarRocks", [i for i in failed if sr[i]])
        err("failed-request rows in a DLQ", [i for i in failed if dlq["ch"][i] or dlq["sr"][i]])
        err("rows of cut bad-JSON requests somewhere", [i for i in L.doubt_badjson
                                                        if ch[i] or sr[i] or dlq["ch"][i] or
                                                        dlq["sr"][i]])
        # in-doubt requests: whole or nothing, in every sink alike
        doubt_landed = doubt_none = 0
        partial = []
        doubt_good, doubt_bad = set(), set()
        for g, b in L.doubt:
            doubt_good.update(g)
            doubt_bad.update(b)
            marks = [ch[i] > 0 for i in g] + [sr[i] > 0 for i in g] + \
                    [dlq["ch"][i] > 0 for i in b] + [dlq["sr"][i] > 0 for i in b] + \
                    [ch[i] == 0 and sr[i] == 0 for i in b]
            pres = [ch[i] > 0 for i in g] + [sr[i] > 0 for i in g] + \
                   [dlq["ch"][i] > 0 for i in b] + [dlq["sr"][i] > 0 for i in b]
            if pres and all(pres) and all(marks):
                doubt_landed += 1
            elif not any(pres) and not any(ch[i] or sr[i] for i in b):
                doubt_none += 1
            else:
                partial.append(min(g + b))
        err("in-doubt requests landed partially (first id of each)", partial)
        err("DUPLICATE in-doubt rows in StarRocks", [i for i in doubt_good if sr[i] > 1])
        dup_ch_rows += sum(ch[i] - 1 for i in doubt_good if ch[i] > 1)
        known = good | badt | failed | doubt_good | doubt_bad | L.doubt_badjson
        err("unknown ids in ClickHouse", [i for i in ch if i not in known])
        err("unknown ids in StarRocks", [i for i in sr if i not in known])
        for sink in ("ch", "sr"):
            err("%s DLQ rows that are not invalid by construction" % sink,
                [i for i in dlq[sink] if not isinstance(i, int) or
                 (i not in badt and i not in doubt_bad)])
        for v in L.violations[:10]:
            errors.append("answer: " + v)
        for p in self.problems:
            errors.append("problem: " + p)

        delivered_ch = sum(1 for i in good if ch[i] >= 1)
        delivered_sr = sum(1 for i in good if sr[i] == 1)
        st = L.status
        lines = [
            ("seed", self.args.seed),
            ("rounds", self.rounds),
        ]
        for k in sorted(self.faults):
            lines.append(("  fault " + k, self.faults[k]))
        lines += [
            ("requests acked (200)", L.acked_requests),
            ("requests 400 (bad JSON by construction)", st[400]),
            ("requests 503 (log full, Retry-After)", st[503]),
            ("requests other errors", sum(v for k, v in st.items()
                                          if k not in (200, 400, 503, "refused") and
                                          not str(k).startswith("cut:"))),
            ("requests refused at connect", st["refused"]),
            ("requests cut mid-way (in doubt)", sum(v for k, v in st.items()
                                                   if str(k).startswith("cut:"))),
            ("  in doubt: landed whole / nowhere", "%d / %d" % (doubt_landed, doubt_none)),
            ("rows acked valid", len(good)),
            ("rows acked type-invalid (-> DLQ)", len(badt)),
            ("rows in failed requests", len(failed)),
            ("rows delivered ch (>=1)", delivered_ch),
            ("rows delivered sr (exactly 1)", delivered_sr),
            ("DLQ entries / rows ch / rows sr", "%d / %d / %d" % (
                n_entries, sum(dlq["ch"].values()), sum(dlq["sr"].values()))),
            ("lost ch / sr (must be 0)", "%d / %d" % (len(lost_ch), len(lost_sr))),
            ("duplicates ch (allowed) / sr (must be 0)", "%d / %d" % (dup_ch_rows, len(dup_sr))),
            ("misplaced rows / problems", "%d / %d" % (len(errors), len(self.problems))),
        ]
        lines.append(("answers by status", ", ".join(
            "%s: %d" % (k, v) for k, v in sorted(st.items(), key=lambda kv: str(kv[0])))))
        w = max(len(k) for k, _ in lines)
        print("\n| %-*s | %s |" % (w, "chaos " + ("long" if self.args.long else "short"), "value"))
        print("|%s|%s|" % ("-" * (w + 2), "-" * 14))
        for k, v in lines:
            print("| %-*s | %s |" % (w, k, v))
        for k in sorted(self.fault_notes):
            print("  %s: %s" % (k, "; ".join(str(x) for x in self.fault_notes[k][:6])))
        print()
        for e in errors:
            print("VIOLATION " + e)
        ok = not errors
        print("reconciliation: %s (seed %d)" % ("OK" if ok else "FAILED", self.args.seed))
        print("%d passed, %d failed" % ((1, 0) if ok else (0, 1)), flush=True)
        return ok


def main():
    ap = argparse.ArgumentParser(description="sluice chaos suite")
    ap.add_argument("--long", type=int, default=0, metavar="SECONDS",
                    help="run random rounds for this long (default: short form, every fault once)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--threads", type=int, default=6, help="loader threads (connections)")
    ap.add_argument("--wal-max", default="4MiB", help="wal.max_bytes (small: the log fills)")
    a = ap.parse_args()
    if a.seed is None:
        a.seed = int.from_bytes(os.urandom(4), "big") % 1000000
    a.short_seconds = 0
    a.round_len = (3.0, 6.0) if not a.long else (5.0, 15.0)
    sys.exit(0 if Chaos(a).run() else 1)


if __name__ == "__main__":
    main()
