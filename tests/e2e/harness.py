"""harness.py - shared pieces of the end-to-end tests (python3 stdlib only).

Starts real servers on free loopback ports with temporary data dirs: Debian's
clickhouse-server 18.16, the modern ClickHouse engine behind tests/support/chserver,
the StarRocks emulator, and sluice itself. Every process is tracked by pid and killed
at exit (and by Harness.close()). Nothing here talks to anything but 127.0.0.1.
"""
import atexit
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

SRC = os.environ.get("SLUICE_SOURCE") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
SLUICE_BIN = os.environ.get("SLUICE_BIN") or os.path.join(SRC, "build", "sluice")

_live_pids = set()


def _kill_all():
    for pid in list(_live_pids):
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            os.waitpid(pid, 0)
        except OSError:
            pass
        _live_pids.discard(pid)


atexit.register(_kill_all)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_until(cond, timeout=30.0, interval=0.05, what="condition"):
    """Poll cond() until it returns a truthy value; raise after timeout."""
    deadline = time.time() + timeout
    last_exc = None
    while time.time() < deadline:
        try:
            v = cond()
            if v:
                return v
        except Exception as e:  # the server may not be up yet
            last_exc = e
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s (last error: %r)"
                         % (timeout, what, last_exc))


def http_request(url, method="GET", body=None, headers=None, timeout=30.0):
    """One HTTP request; returns (status, headers-dict-lowercase, body-bytes)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    if isinstance(body, str):
        body = body.encode()
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


def ch_query(base_url, sql, data=None, **params):
    """Run sql against a ClickHouse HTTP endpoint; raise on non-200; return body text."""
    params["query"] = sql
    url = base_url.rstrip("/") + "/?" + urllib.parse.urlencode(params)
    st, _, body = http_request(url, "POST", body=data or b"")
    if st != 200:
        raise RuntimeError("ClickHouse %s: %s -> %d %s" % (base_url, sql, st, body[:500]))
    return body.decode()


_SIGTERM = signal.SIGTERM  # Proc.signal() shadows the module inside the class body


class Proc:
    """A child process in its own process group, killed by pid at cleanup."""

    def __init__(self, argv, log_path, env=None, cwd=None, preexec=None):
        self.argv = argv
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                                  start_new_session=True, preexec_fn=preexec)
        self.pid = self.p.pid
        _live_pids.add(self.pid)

    def alive(self):
        return self.p.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def kill9(self):
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        self.p.wait()
        _live_pids.discard(self.pid)

    def stop(self, sig=_SIGTERM, timeout=30.0):
        """Send sig, wait for exit (SIGKILL after timeout); return the exit code."""
        if self.alive():
            try:
                os.kill(self.pid, sig)
            except OSError:
                pass
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
        try:
            os.killpg(self.pid, signal.SIGKILL)  # helpers it may have spawned
        except OSError:
            pass
        _live_pids.discard(self.pid)
        self.log.close()
        return self.p.returncode

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")


CH18_CONFIG = """<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/err.log</errorlog>
    <console>0</console></logger>
  <http_port>{http}</http_port>
  <tcp_port>{tcp}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>536870912</mark_cache_size>
  <max_concurrent_queries>200</max_concurrent_queries>
</yandex>
"""

CH18_USERS = """<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>10000000000</max_memory_usage></default></profiles>
  <users>
    <default><password>{pw}</password><networks><ip>::1</ip><ip>127.0.0.1</ip></networks>
      <profile>default</profile><quota>default</quota></default>
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
    <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
  </interval></default></quotas>
</yandex>
"""


class _ClickHouseBase:
    """What both ClickHouse test servers share: start (subclass: argv/log/what/timeout),
    kill -9, stop, query."""

    def _spawn(self, argv, log_path, what, timeout, cwd=None):
        self.proc = Proc(argv, log_path, cwd=cwd)
        wait_until(lambda: http_request(self.url + "/ping", timeout=2)[2] == b"Ok.\n",
                   timeout=timeout, what=what)

    def kill(self):
        self.proc.kill9()

    def stop(self):
        if self.proc:
            self.proc.stop()

    def query(self, sql, **params):
        return ch_query(self.url, sql, **params)


class ClickHouse18(_ClickHouseBase):
    """Debian's clickhouse-server 18.16 on free loopback ports, data in dirpath."""

    def __init__(self, dirpath, password=""):
        self.dir = dirpath
        os.makedirs(dirpath, exist_ok=True)
        self.http_port = free_port()
        self.tcp_port = free_port()
        with open(os.path.join(dirpath, "config.xml"), "w") as f:
            f.write(CH18_CONFIG.format(d=dirpath, http=self.http_port, tcp=self.tcp_port))
        with open(os.path.join(dirpath, "users.xml"), "w") as f:
            f.write(CH18_USERS.format(pw=password))
        self.url = "http://127.0.0.1:%d" % self.http_port
        self.proc = None
        self.start()

    def start(self):
        binary = shutil.which("clickhouse-server") or "/usr/sbin/clickhouse-server"
        self._spawn([binary, "--config-file=" + os.path.join(self.dir, "config.xml")],
                    os.path.join(self.dir, "stdout.log"), "clickhouse-server 18.16 /ping", 60,
                    cwd=self.dir)


class ChServer(_ClickHouseBase):
    """The modern ClickHouse engine (npm chdb) behind tests/support/chserver."""

    def __init__(self, dirpath, users=None):
        self.dir = dirpath
        os.makedirs(dirpath, exist_ok=True)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.users = users
        self.proc = None
        self.start()

    def start(self):
        server = os.path.join(SRC, "tests", "support", "chserver", "server.js")
        argv = ["node", server, "--port", str(self.port), "--data", os.path.join(self.dir, "data")]
        if self.users:
            argv += ["--users", self.users]
        self._spawn(argv, os.path.join(self.dir, "chserver.log"), "chserver /ping", 120)


class StarRocksEmulator:
    """tests/e2e/starrocks_emulator.py on two free ports (FE, BE); sqlite under dirpath.
    tables: {"db.table": [["col", "TYPE"], ...]}"""

    def __init__(self, dirpath, tables, user="root", password="", strict_labels=True,
                 extra_args=()):
        self.dir = dirpath
        os.makedirs(dirpath, exist_ok=True)
        self.fe_port = free_port()
        self.be_port = free_port()
        self.url = "http://127.0.0.1:%d" % self.fe_port
        self.be_url = "http://127.0.0.1:%d" % self.be_port
        self.user, self.password = user, password
        spec = os.path.join(dirpath, "tables.json")
        with open(spec, "w") as f:
            json.dump(tables, f)
        self.argv = [sys.executable, "-u", os.path.join(SRC, "tests", "e2e", "starrocks_emulator.py"),
                     "--fe-port", str(self.fe_port), "--be-port", str(self.be_port),
                     "--tables", spec, "--db", os.path.join(dirpath, "emu.sqlite"),
                     "--user", user, "--password", password]
        if not strict_labels:
            self.argv.append("--lenient-labels")
        self.argv += list(extra_args)  # e.g. ["--label-mode", "used"]
        self.proc = None
        self.start()

    def start(self):
        self.proc = Proc(self.argv, os.path.join(self.dir, "emulator.log"))
        wait_until(lambda: http_request(self.url + "/_emu/health", timeout=2)[0] == 200,
                   timeout=30, what="starrocks emulator")

    def stop(self):
        if self.proc:
            self.proc.stop()

    def faults(self, **kw):
        st, _, body = http_request(self.url + "/_emu/faults", "POST", json.dumps(kw),
                                   {"Content-Type": "application/json"})
        assert st == 200, body

    def count(self, table):
        st, _, body = http_request(self.url + "/_emu/count?" + urllib.parse.urlencode({"table": table}))
        assert st == 200, body
        return json.loads(body)["count"]

    def rows(self, table):
        st, _, body = http_request(self.url + "/_emu/rows?" + urllib.parse.urlencode({"table": table}))
        assert st == 200, body
        return [json.loads(l) for l in body.decode().splitlines() if l.strip()]


# The config every test starts from: sluice's addresses (filled in by Sluice) and one
# ClickHouse sink named "ch" whose url is the %s; a test appends the keys it needs.
# The benchmarks' table: TensorZero's ChatInference columns (one ~400-byte row per request),
# from tensorzero-core/src/db/clickhouse/migration_manager/migrations/migration_0000.rs (id,
# function_name, variant_name, episode_id, input, output, tool_params, inference_params,
# processing_time_ms) plus the later tags and ttft_ms. Kept loadable on ClickHouse 18.16: UUID
# and LowCardinality as String, tags (Map(String, String) upstream) as String, no
# materialized timestamp, ORDER BY id. The sluice path under test does not look at types.
BENCH_SCHEMA = ("CREATE TABLE IF NOT EXISTS bench.ChatInference (id String, function_name String, "
                "variant_name String, episode_id String, input String, output String, "
                "tool_params String, inference_params String, processing_time_ms UInt32, "
                "tags String, ttft_ms Nullable(UInt32)) ENGINE = MergeTree ORDER BY id")


def bench_config(ch_url, sync="always", max_bytes="4GiB", proxy_extra=""):
    """The benchmarks' sluice: one clickhouse sink, quiet log, a short drain."""
    return ("wal:\n  dir: {wal_dir}\n  max_bytes: %s\n  sync: %s\nproxy:\n  listen: {listen}\n%s"
            "admin:\n  listen: {admin}\nshutdown:\n  drain_timeout_s: 1\nlog:\n  level: warn\n"
            "sinks:\n  - name: ch\n    type: clickhouse\n    url: %s\n"
            % (max_bytes, sync, proxy_extra, ch_url))


CH_SINK_CONFIG = """wal:
  dir: {wal_dir}
proxy:
  listen: {listen}
admin:
  listen: {admin}
sinks:
  - name: ch
    type: clickhouse
    url: %s
"""


class Sluice:
    """The sluice binary with a YAML config written into dirpath; listen ports chosen free."""

    def __init__(self, dirpath, config_yaml, env=None, start=True, preexec=None):
        self.dir = dirpath
        os.makedirs(dirpath, exist_ok=True)
        self.port = free_port()
        self.admin_port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.admin_url = "http://127.0.0.1:%d" % self.admin_port
        self.wal_dir = os.path.join(dirpath, "wal")
        self.config_path = os.path.join(dirpath, "sluice.yaml")
        self.config_yaml = config_yaml
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.preexec = preexec
        self.write_config()
        self.proc = None
        self.runs = 0
        if start:
            self.start()

    def write_config(self):
        text = self.config_yaml.format(listen="127.0.0.1:%d" % self.port,
                                       admin="127.0.0.1:%d" % self.admin_port,
                                       wal_dir=self.wal_dir)
        with open(self.config_path, "w") as f:
            f.write(text)

    def start(self, wait=True):
        self.runs += 1
        self.proc = Proc([SLUICE_BIN, "run", "--config", self.config_path],
                         os.path.join(self.dir, "sluice.log"), env=self.env,
                         preexec=self.preexec)
        if wait:
            wait_until(lambda: http_request(self.url + "/ping", timeout=2)[2] == b"Ok.\n",
                       timeout=30, what="sluice /ping")
            if not self.proc.alive():
                raise AssertionError("sluice exited:\n" + self.proc.output())

    def kill9(self):
        self.proc.kill9()

    def stop(self, sig=signal.SIGTERM, timeout=60.0):
        return self.proc.stop(sig, timeout) if self.proc else None

    def cli(self, *args, check=True):
        """Run `sluice ARGS...`; returns (rc, stdout, stderr)."""
        r = subprocess.run([SLUICE_BIN] + list(args), capture_output=True, timeout=120,
                           env=self.env)
        if check and r.returncode != 0:
            raise AssertionError("sluice %s -> %d\n%s" % (" ".join(args), r.returncode,
                                                           r.stderr.decode()))
        return r.returncode, r.stdout.decode(), r.stderr.decode()

    def wal_dump(self):
        """Every record in the WAL as dicts (sluice wal dump --dir)."""
        _, out, _ = self.cli("wal", "dump", "--dir", self.wal_dir)
        return [json.loads(l) for l in out.splitlines() if l.strip()]

    def insert(self, table, rows, database=None, headers=None, query_in_body=False):
        """POST rows (list of dicts or str) as INSERT ... FORMAT JSONEachRow."""
        body = rows if isinstance(rows, (str, bytes)) else "\n".join(json.dumps(r) for r in rows)
        if isinstance(body, str):
            body = body.encode()
        params = {}
        if database:
            params["database"] = database
        stmt = "INSERT INTO %s FORMAT JSONEachRow" % table
        if query_in_body:
            body = stmt.encode() + b"\n" + body
        else:
            params["query"] = stmt
        return http_request(self.url + "/?" + urllib.parse.urlencode(params), "POST", body,
                            headers or {})


class TempDir:
    """A temporary directory removed at close unless SLUICE_KEEP_TMP is set."""

    def __init__(self, prefix="sluice-e2e-"):
        self.path = tempfile.mkdtemp(prefix=prefix)

    def sub(self, name):
        p = os.path.join(self.path, name)
        os.makedirs(p, exist_ok=True)
        return p

    def close(self):
        if not os.environ.get("SLUICE_KEEP_TMP"):
            shutil.rmtree(self.path, ignore_errors=True)


def run_tests(module_globals):
    """Run every test_* function of a module in order and print 'N passed, N failed'.
    Exit status 1 when any failed."""
    import traceback
    names = [n for n in module_globals if n.startswith("test_") and callable(module_globals[n])]
    only = os.environ.get("SLUICE_TEST_ONLY")
    passed = failed = 0
    for n in names:
        if only and only not in n:
            continue
        t0 = time.time()
        try:
            module_globals[n]()
            passed += 1
            print("PASS %s (%.1fs)" % (n, time.time() - t0), flush=True)
        except Exception:
            failed += 1
            print("FAIL %s (%.1fs)" % (n, time.time() - t0), flush=True)
            traceback.print_exc()
        finally:
            _kill_all()
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed else 0)
