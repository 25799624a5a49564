"""test_proxy.py - the ingest proxy end to end: sluice in front of Debian's clickhouse-server
18.16. Request shapes of PROTOCOLS.md §A and tensorzero.md answered like ClickHouse does,
passthrough byte-identical, rows in the WAL exactly once and in order, the bad-input table
(each its own test), auth, and kill -9 under load (every 200 survives).

The log is held by a sink pointed at a closed port (it never delivers, so nothing is
truncated); passthrough goes to the real server through proxy.passthrough_url.
"""
import gzip
import http.client
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import urllib.parse
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

CONFIG = """wal:
  dir: {wal_dir}
  max_bytes: %(wal_max)s
proxy:
  listen: {listen}
  passthrough_url: %(ch)s
  max_body_bytes: %(max_body)s
  max_header_bytes: 8192
  idle_timeout_ms: %(idle)d
  max_connections: %(maxconn)d
%(users)sadmin:
  listen: {admin}
shutdown:
  drain_timeout_s: 1
sinks:
  - name: hold
    type: clickhouse
    url: http://127.0.0.1:%(dead)d
"""


class Env:
    """A ClickHouse 18.16 and a sluice in front of it (shared by the tests that can)."""

    def __init__(self, users=None, wal_max="64MiB", max_body="1MiB", idle=60000, ch=True,
                 max_connections=10000):
        self.td = h.TempDir()
        self.ch = h.ClickHouse18(self.td.sub("ch")) if ch else None
        ulines = ""
        if users:
            ulines = "  users:\n" + "".join(
                "    - {{user: %s, password: \"%s\"}}\n" % (u, p) for u, p in users)
        ch_url = self.ch.url if self.ch else "http://127.0.0.1:%d" % h.free_port()
        self.cfg = CONFIG % {"ch": ch_url, "dead": h.free_port(), "users": ulines,
                             "wal_max": wal_max, "max_body": max_body, "idle": idle,
                             "maxconn": max_connections}
        self.s = h.Sluice(self.td.sub("sluice"), self.cfg)
        if self.ch:
            self.ch.query("CREATE DATABASE IF NOT EXISTS db")
            self.ch.query("CREATE TABLE IF NOT EXISTS db.t (a UInt32, s String) ENGINE = Memory")

    def wal(self):
        """Records in the WAL (sluice is stopped first: the dump reads a stopped log)."""
        if self.s.proc and self.s.proc.alive():
            assert self.s.stop() == 0, self.s.proc.output()
        return self.s.wal_dump()

    def close(self):
        if self.s.proc:
            alive = self.s.proc.alive()
            rc = self.s.stop()
            out = self.s.proc.output()
            # Sanitizer builds: any report fails the test (ASan/UBSan/LSan exit non-zero).
            assert "Sanitizer" not in out and "runtime error" not in out, out[-3000:]
            assert not alive or rc == 0, "sluice exited %r:\n%s" % (rc, out[-3000:])
        if self.ch:
            self.ch.stop()
        self.td.close()


def req(base, method, path, body=None, headers=None):
    return h.http_request(base + path, method, body, headers)


def raw(url, data, timeout=5.0, shut=False):
    """Send raw bytes, return everything the server sends until it closes (or timeout)."""
    u = urllib.parse.urlsplit(url)
    s = socket.create_connection((u.hostname, u.port), timeout=timeout)
    try:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        out = b""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def status_of(resp):
    return int(resp.split(b" ", 2)[1]) if resp.startswith(b"HTTP/1.") else None


def klass(st):
    return st // 100


def assert_up(env):
    assert req(env.s.url, "GET", "/ping")[2] == b"Ok.\n"
    assert env.s.proc.alive()


def assert_ch_error(st, hdrs, body, code):
    assert body.startswith(b"Code: %d. DB::Exception: " % code), body
    assert hdrs.get("x-clickhouse-exception-code") == str(code), hdrs


# ---------------------------------------------------------------- request shapes

def test_ping_and_replicas_status():
    env = Env(ch=False)
    try:
        for path in ("/ping", "/replicas_status", "/"):
            st, _, body = req(env.s.url, "GET", path)
            assert (st, body) == (200, b"Ok.\n")
        st, hd, body = req(env.s.url, "HEAD", "/ping")
        assert st == 200 and body == b"" and hd["content-length"] == "4"
    finally:
        env.close()


def test_insert_shapes_match_clickhouse():
    env = Env()
    try:
        rows = '{"a":1,"s":"x"}\n{"a":2,"s":"y"}'
        q = urllib.parse.quote
        shapes = [
            # (name, path, body, headers, differs_on_18)
            ("query param", "/?query=" + q("INSERT INTO db.t FORMAT JSONEachRow"), rows, {}, False),
            ("body head", "/?database=db", "INSERT INTO t FORMAT JSONEachRow\n" + rows, {}, False),
            ("db header", "/", "INSERT INTO t FORMAT JSONEachRow\n" + rows,
             {"X-ClickHouse-Database": "db"}, True),  # 18.16 ignores the header (modern: ok)
            ("columns", "/?query=" + q("INSERT INTO db.t (a, s) FORMAT JSONEachRow"), rows, {}, False),
            ("settings clause", "/?query=" + q("INSERT INTO db.t SETTINGS async_insert=1, "
                                               "wait_for_async_insert=1 FORMAT JSONEachRow"),
             rows, {}, True),  # 18.16: Code 62 at SETTINGS (tensorzero.md §5); sluice accepts
            ("url settings", "/?query=" + q("INSERT INTO db.t FORMAT JSONEachRow") +
             "&input_format_skip_unknown_fields=0", rows, {}, False),
            ("param prefix + body", "/?query=" + q("INSERT INTO db.t"),
             "FORMAT JSONEachRow\n" + rows, {}, False),
            ("basic auth", "/?query=" + q("INSERT INTO db.t FORMAT JSONEachRow"), rows,
             {"Authorization": "Basic ZGVmYXVsdDo="}, False),
            ("x-clickhouse-user", "/?query=" + q("INSERT INTO db.t FORMAT JSONEachRow"), rows,
             {"X-ClickHouse-User": "default", "X-ClickHouse-Key": ""}, False),
        ]
        for name, path, body, hdrs, differs in shapes:
            st_d, hd_d, b_d = req(env.ch.url, "POST", path, body, hdrs)
            st_s, hd_s, b_s = req(env.s.url, "POST", path, body, hdrs)
            if differs:
                assert klass(st_d) == 4 and st_s == 200, (name, st_d, b_d, st_s, b_s)
            else:
                assert klass(st_d) == klass(st_s) == 2, (name, st_d, b_d, st_s, b_s)
            if st_s == 200:
                assert b_s == b"", (name, b_s)
                summary = json.loads(hd_s["x-clickhouse-summary"])
                assert summary["written_rows"] == "2", (name, summary)
                assert all(isinstance(v, str) for v in summary.values())
                assert hd_s["x-clickhouse-query-id"]
        # zero rows: 200, nothing logged
        st, _, _ = req(env.s.url, "POST", "/?query=" + q("INSERT INTO db.t FORMAT JSONEachRow"), "")
        assert st == 200
        recs = env.wal()
        assert len(recs) == len(shapes), recs
        assert all(r["n_rows"] == 2 and r["db"] == "db" and r["table"] == "t" for r in recs)
        assert recs[3]["columns"] == "a, s"
        assert recs[4]["settings"] == {"async_insert": "1", "wait_for_async_insert": "1"}
        assert recs[5]["settings"] == {"input_format_skip_unknown_fields": "0"}
    finally:
        env.close()


def test_tensorzero_gateway_request_shape():
    """The gateway's exact write: SQL + rows in the body, settings clause, URL settings,
    X-ClickHouse-User/Key, no trailing newline; read back from the WAL verbatim."""
    env = Env()
    try:
        params = "database=tz&input_format_skip_unknown_fields=0&input_format_null_as_default=0" \
                 "&output_format_json_quote_64bit_integers=1"
        row1 = {"id": "0192ced0-947e-74b3-a3d7-02fd2c54d637", "function_name": "draft_email",
                "input": {"messages": [{"role": "user", "content": "hi"}]}, "tags": {"a": "b"},
                "ttft_ms": None, "n": 340282366920938463463374607431768211455}
        row2 = dict(row1, id="0192ced0-947e-74b3-a3d7-02fd2c54d638")
        body = ("INSERT INTO ChatInference\nSETTINGS async_insert=1, wait_for_async_insert=1\n"
                "FORMAT JSONEachRow\n" + json.dumps(row1, separators=(",", ":")) + "\n" +
                json.dumps(row2, separators=(",", ":")))
        st, hd, b = req(env.s.url, "POST", "/?" + params, body,
                        {"X-ClickHouse-User": "default", "X-ClickHouse-Key": ""})
        assert st == 200 and b == b"", (st, b)
        json.loads(hd["x-clickhouse-summary"])
        recs = env.wal()
        assert len(recs) == 1
        r = recs[0]
        assert (r["db"], r["table"], r["n_rows"]) == ("tz", "ChatInference", 2)
        assert r["rows"] == [row1, row2]
        assert r["settings"] == {"input_format_skip_unknown_fields": "0",
                                 "input_format_null_as_default": "0",
                                 "output_format_json_quote_64bit_integers": "1",
                                 "async_insert": "1", "wait_for_async_insert": "1"}
    finally:
        env.close()


def test_passthrough_select_ddl_and_errors_byte_identical():
    env = Env()
    try:
        env.ch.query("INSERT INTO db.t FORMAT JSONEachRow", data=b'{"a":7,"s":"seven"}\n')
        q = urllib.parse.quote
        cases = [
            ("GET", "/?query=" + q("SELECT 1"), None, {}),
            ("POST", "/", "SELECT a, s FROM db.t ORDER BY a FORMAT JSONEachRow", {}),
            ("POST", "/?database=db", "SELECT count() FROM t", {}),
            ("POST", "/?query=" + q("SELECT number FROM system.numbers LIMIT 100000"), "", {}),
            ("POST", "/", "CREATE TABLE IF NOT EXISTS db.u (x UInt8) ENGINE = Memory", {}),
            # INSERT ... SELECT is not buffered (VALUES and TabSeparated are: test_formats.py)
            ("POST", "/", "INSERT INTO db.u SELECT number + 1 FROM numbers(2)", {}),
            ("POST", "/?query=" + q("INSERT INTO db.u SELECT 3"), "", {}),
            ("POST", "/", "SELECT * FROM db.nope", {}),          # UNKNOWN_TABLE passes through
            ("POST", "/", "SELEKT 1", {}),                        # syntax error of ClickHouse's
            ("GET", "/?query=" + q("SELECT 1") + "&default_format=JSONEachRow", None, {}),
            ("POST", "/", "SELECT x FROM db.u ORDER BY x", {"Accept-Encoding": "gzip"}),
        ]
        for method, path, body, hdrs in cases:
            d = req(env.ch.url, method, path, body, hdrs)
            s = req(env.s.url, method, path, body, hdrs)
            if "CREATE" in (body or "") or "INSERT" in (body or "") + path:
                assert klass(d[0]) == klass(s[0]), (path, body, d, s)
                continue
            assert d[0] == s[0] and d[2] == s[2], (path, body, d[:3:2], s[:3:2])
            for k, v in d[1].items():
                if k.startswith("x-clickhouse-") and k not in ("x-clickhouse-query-id",):
                    assert s[1].get(k) == v, (k, d[1], s[1])
        assert env.ch.query("SELECT count() FROM db.u") == "6\n"  # 3 via each path
        assert env.wal() == []  # none of that was logged
    finally:
        env.close()


def test_multipart_passes_through_untouched():
    env = Env()
    try:
        b = "XyZbOuNdArY"
        body = ("--%s\r\nContent-Disposition: form-data; name=\"ext\"; filename=\"d.tsv\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n1\n2\n3\n\r\n--%s--\r\n") % (b, b)
        path = "/?query=" + urllib.parse.quote("SELECT sum(x) FROM ext") + \
               "&ext_structure=x+UInt32&ext_format=TabSeparated"
        hdrs = {"Content-Type": "multipart/form-data; boundary=" + b}
        d = req(env.ch.url, "POST", path, body, hdrs)
        s = req(env.s.url, "POST", path, body, hdrs)
        assert d[0] == s[0] == 200 and d[2] == s[2] == b"6\n", (d, s)
    finally:
        env.close()


def test_compressed_insert_bodies():
    env = Env()
    try:
        rows = b'{"a":1,"s":"g"}\n{"a":2,"s":"g"}\n'
        path = "/?query=" + urllib.parse.quote("INSERT INTO db.t FORMAT JSONEachRow")
        for enc, data in (("gzip", gzip.compress(rows)), ("deflate", zlib.compress(rows))):
            st, _, b = req(env.s.url, "POST", path, data, {"Content-Encoding": enc})
            assert st == 200, (enc, st, b)
        # the statement itself may be in the compressed body
        st, _, b = req(env.s.url, "POST", "/?database=db",
                       gzip.compress(b"INSERT INTO t FORMAT JSONEachRow\n" + rows),
                       {"Content-Encoding": "gzip"})
        assert st == 200, b
        recs = env.wal()
        assert [r["n_rows"] for r in recs] == [2, 2, 2]
    finally:
        env.close()


def test_rows_land_in_wal_exactly_once_in_order():
    env = Env()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", env.s.port, timeout=10)
        path = "/?query=" + urllib.parse.quote("INSERT INTO db.t FORMAT JSONEachRow")
        for i in range(200):
            body = "\n".join(json.dumps({"a": i * 3 + k, "s": "r"}) for k in range(3))
            if i % 4 == 1:
                body = "[" + body.replace("\n", ",") + "]"  # array form, split into rows
            conn.request("POST", path, body)
            r = conn.getresponse()
            r.read()
            assert r.status == 200
        conn.close()
        recs = env.wal()
        seqs = [r["seq"] for r in recs]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        values = [row["a"] for r in recs for row in r["rows"]]
        assert values == list(range(600)), values[:20]
    finally:
        env.close()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


def test_large_insert_gives_its_memory_back():
    """A 40 MiB insert is acked and then its buffers go back: the WAL's journal kept a group
    buffer as large as the largest request ever, resident for the life of the process."""
    env = Env(wal_max="512MiB", max_body="64MiB")
    try:
        pid = env.s.proc.pid
        before = rss_kib(pid)
        row = json.dumps({"a": 7, "s": "x" * 200}) + "\n"
        body = (row * (40 * 1024 * 1024 // len(row))).encode()
        st, _, resp = h.http_request(env.s.url + "/?query=" + urllib.parse.quote(
            "INSERT INTO db.t FORMAT JSONEachRow"), "POST", body, timeout=120)
        assert st == 200, resp
        if "asan" not in h.SLUICE_BIN:  # ASan's quarantine holds freed memory on purpose
            h.wait_until(lambda: rss_kib(pid) < before + 16 * 1024, 15,
                         what="RSS back near %d KiB (now %d KiB)" % (before, rss_kib(pid)))
        recs = env.wal()
        assert sum(len(r["rows"]) for r in recs) == len(body) // len(row)
    finally:
        env.close()


def test_pipelined_requests_answered_in_order():
    env = Env()
    try:
        rows = b'{"a":1,"s":"p"}'
        ins = (b"POST /?query=INSERT%20INTO%20db.t%20FORMAT%20JSONEachRow HTTP/1.1\r\n"
               b"Host: x\r\nContent-Length: " + str(len(rows)).encode() + b"\r\n\r\n" + rows)
        ping = b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"
        sel = b"GET /?query=SELECT%2042 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        out = raw(env.s.url, ins + ping + ins + sel, timeout=10)
        heads = re.findall(rb"HTTP/1\.1 \d+ [A-Za-z ]+\r\n", out)
        assert heads == [b"HTTP/1.1 200 OK\r\n"] * 4, out
        order = [out.index(b"written_rows"), out.index(b"Ok.\n"), out.rindex(b"written_rows"),
                 out.index(b"42\n")]
        assert order == sorted(order), out
        assert out.endswith(b"42\n\r\n0\r\n\r\n"), out[-60:]
        assert [r["n_rows"] for r in env.wal()] == [1, 1]
    finally:
        env.close()


def test_thousands_of_concurrent_connections():
    """3000 keep-alive connections open at once on the one loop, each doing an INSERT."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 3000
    if soft < want + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, want + 500), hard))
    env = Env(ch=False)
    socks = []
    try:
        rows = b'{"a":1}'
        ins = (b"POST /?query=INSERT%20INTO%20t%20FORMAT%20JSONEachRow HTTP/1.1\r\n"
               b"Content-Length: " + str(len(rows)).encode() + b"\r\n\r\n" + rows)
        for _ in range(want):
            socks.append(socket.create_connection(("127.0.0.1", env.s.port), timeout=30))
        for so in socks:
            so.sendall(ins)
        ok = 0
        for so in socks:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = so.recv(4096)
                if not chunk:
                    break
                data += chunk
            ok += data.startswith(b"HTTP/1.1 200 ")
        assert ok == want, ok
        for so in socks:
            so.close()
        socks = []
        assert sum(r["n_rows"] for r in env.wal()) == want
    finally:
        for so in socks:
            so.close()
        env.close()


def test_max_connections_refuses_the_extra_ones():
    env = Env(ch=False, max_connections=4)
    socks = []
    try:
        for _ in range(4):
            so = socket.create_connection(("127.0.0.1", env.s.port), timeout=5)
            so.sendall(b"GET /ping HTTP/1.1\r\n\r\n")
            assert so.recv(4096).startswith(b"HTTP/1.1 200 ")
            socks.append(so)
        extra = socket.create_connection(("127.0.0.1", env.s.port), timeout=5)
        try:
            extra.sendall(b"GET /ping HTTP/1.1\r\n\r\n")
            assert extra.recv(4096) == b""  # closed at once
        except ConnectionResetError:
            pass
        extra.close()
        socks.pop().close()
        h.wait_until(lambda: req(env.s.url, "GET", "/ping")[2] == b"Ok.\n", timeout=5,
                     what="a slot after one connection closed")
    finally:
        for so in socks:
            so.close()
        env.close()


def test_half_close_after_pipelined_requests_gets_every_answer():
    env = Env(ch=False)
    try:
        rows = b'{"a":1}'
        ins = (b"POST /?query=INSERT%20INTO%20t%20FORMAT%20JSONEachRow HTTP/1.1\r\n"
               b"Content-Length: " + str(len(rows)).encode() + b"\r\n\r\n" + rows)
        out = raw(env.s.url, ins + b"GET /ping HTTP/1.1\r\n\r\n" + ins, shut=True)
        assert len(re.findall(rb"HTTP/1\.1 200 OK", out)) == 3, out
        assert [r["n_rows"] for r in env.wal()] == [1, 1]
    finally:
        env.close()


def test_read_barrier_gives_read_your_writes():
    """By default (proxy.read_barrier_ms: 3000) a SELECT right after an acked INSERT sees the
    row: the read makes the primary sink deliver what is pending now, without waiting for its
    batch timer (max_wait_ms 20000 here, far past the barrier's bound: a read that paid it would
    be answered with X-Sluice-Read-Barrier: timeout and a stale count)."""
    td = h.TempDir()
    ch = h.ClickHouse18(td.sub("ch"))
    s = None
    try:
        ch.query("CREATE DATABASE IF NOT EXISTS db")
        ch.query("CREATE TABLE db.t (a UInt32, s String) ENGINE = Memory")
        cfg = ("wal:\n  dir: {wal_dir}\nproxy:\n  listen: {listen}\n"
               "admin:\n  listen: {admin}\nshutdown:\n  drain_timeout_s: 5\nsinks:\n"
               "  - name: ch\n    type: clickhouse\n    url: %s\n"
               "    batch:\n      max_wait_ms: 20000\n" % ch.url)
        s = h.Sluice(td.sub("s"), cfg)
        q = urllib.parse.quote
        for i in range(1, 6):
            st, _, b = req(s.url, "POST", "/?query=" + q("INSERT INTO db.t FORMAT JSONEachRow"),
                           '{"a":%d,"s":"x"}' % i)
            assert st == 200, b
            st, hd, b = req(s.url, "GET", "/?query=" + q("SELECT count() FROM db.t"))
            assert (st, b) == (200, b"%d\n" % i), (st, b)
            assert hd.get("x-sluice-read-barrier") == "waited", hd
        # Nothing pending now: the read goes straight through, no barrier header.
        st, hd, b = req(s.url, "GET", "/?query=" + q("SELECT count() FROM db.t"))
        assert (st, b) == (200, b"5\n") and "x-sluice-read-barrier" not in hd, (st, hd, b)
    finally:
        if s:
            assert s.stop() == 0
        ch.stop()
        td.close()


# ---------------------------------------------------------------- bad input, one test each

def _bad(env, data, want_status, shut=False):
    out = raw(env.s.url, data, shut=shut)
    assert status_of(out) == want_status, out[:300]
    assert b"Code: " in out, out[:300]
    assert_up(env)
    return out


def test_bad_malformed_request_line():
    env = Env(ch=False)
    try:
        _bad(env, b"GARBAGE / HTTP/9\r\n\r\n", 400)
        _bad(env, b"POST /\x01 HTTP/1.1\r\n\r\n", 400)
        assert env.wal() == []
    finally:
        env.close()


def test_bad_oversized_headers():
    env = Env(ch=False)
    try:
        out = _bad(env, b"GET /ping HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431)
        assert b"max_header_bytes" in out
    finally:
        env.close()


def test_bad_body_over_limit():
    env = Env(ch=False, max_body="64KiB")
    try:
        big = b'{"a":1}\n' * 10000
        out = _bad(env, b"POST /?query=INSERT%20INTO%20t%20FORMAT%20JSONEachRow HTTP/1.1\r\n"
                   b"Content-Length: " + str(len(big)).encode() + b"\r\n\r\n" + big, 413)
        assert b"max_body_bytes" in out
        chunked = b"".join(b"%x\r\n%s\r\n" % (len(big[i:i + 4096]), big[i:i + 4096])
                           for i in range(0, len(big), 4096)) + b"0\r\n\r\n"
        _bad(env, b"POST /?query=INSERT%20INTO%20t%20FORMAT%20JSONEachRow HTTP/1.1\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n" + chunked, 413)
        # a gzip bomb is bounded by the same limit after decoding
        bomb = gzip.compress(b'{"a":1}\n' * 100000)
        st, hd, b = req(env.s.url, "POST", "/?query=INSERT%20INTO%20t%20FORMAT%20JSONEachRow", bomb,
                        {"Content-Encoding": "gzip"})
        assert st == 413, (st, b)
        assert env.wal() == []
    finally:
        env.close()


def test_bad_chunk_size():
    env = Env(ch=False)
    try:
        _bad(env, b"POST /?query=INSERT%20INTO%20t%20FORMAT%20JSONEachRow HTTP/1.1\r\n"
             b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", 400)
        assert env.wal() == []
    finally:
        env.close()


def test_chunked_insert_is_accepted():
    env = Env(ch=False)
    try:
        body = b'{"a":1}\n{"a":2}\n'
        out = raw(env.s.url, b"POST /?query=INSERT%20INTO%20t%20FORMAT%20JSONEachRow HTTP/1.1\r\n"
                  b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                  b"5\r\n" + body[:5] + b"\r\n" + b"%x\r\n" % (len(body) - 5) + body[5:] +
                  b"\r\n0\r\n\r\n")
        assert status_of(out) == 200, out
        assert [r["n_rows"] for r in env.wal()] == [2]
    finally:
        env.close()


def test_bad_truncated_body_then_disconnect():
    env = Env(ch=False)
    try:
        out = raw(env.s.url, b"POST /?query=INSERT%20INTO%20t%20FORMAT%20JSONEachRow HTTP/1.1\r\n"
                  b"Content-Length: 1000\r\n\r\n{\"a\":1}\n{\"a\":2}\n", shut=True, timeout=3)
        assert out == b"", out
        assert_up(env)
        assert env.wal() == []
    finally:
        env.close()


def _insert_bad(env, body, code, want_status=400, path=None, headers=None):
    path = path or "/?query=" + urllib.parse.quote("INSERT INTO db.t FORMAT JSONEachRow")
    st, hd, b = req(env.s.url, "POST", path, body, headers)
    assert st == want_status, (st, b)
    assert_ch_error(st, hd, b, code)
    assert_up(env)
    return b


def test_bad_json_at_row_1():
    env = Env(ch=False)
    try:
        b = _insert_bad(env, '{"a":1,,}\n{"a":2}', 26)
        assert b"at row 1:" in b and b"CANNOT_PARSE_INPUT_ASSERTION_FAILED" in b
        assert env.wal() == []
    finally:
        env.close()


def test_bad_json_at_row_1000():
    env = Env(ch=False)
    try:
        rows = ['{"a":%d}' % i for i in range(999)] + ['{"a":"unterminated}']
        b = _insert_bad(env, "\n".join(rows), 26)
        assert b"at row 1000:" in b, b
        assert env.wal() == []  # nothing of the 999 good rows either
    finally:
        env.close()


def test_bad_non_object_rows():
    env = Env(ch=False)
    try:
        for body in ('[1,2,3]', '"just a string"', '{"a":1}\n42\n', 'null'):
            _insert_bad(env, body, 26)
        assert env.wal() == []
    finally:
        env.close()


def test_bad_invalid_gzip():
    env = Env(ch=False)
    try:
        b = _insert_bad(env, b"\x1f\x8b\x08\x00garbage-not-gzip", 354,
                        headers={"Content-Encoding": "gzip"})
        assert b"gzip" in b
        _insert_bad(env, b"abc", 48, want_status=415, headers={"Content-Encoding": "lzma"})
        assert env.wal() == []
    finally:
        env.close()


def test_bad_unknown_format_is_passthrough():
    env = Env()
    try:
        path = "/?query=" + urllib.parse.quote("INSERT INTO db.t FORMAT NoSuchFormat")
        d = req(env.ch.url, "POST", path, "x")
        s = req(env.s.url, "POST", path, "x")
        assert d[0] == s[0] and klass(s[0]) in (4, 5) and s[2] == d[2], (d, s)
        assert_up(env)
        assert env.wal() == []
    finally:
        env.close()


def test_bad_missing_table_name():
    env = Env(ch=False)
    try:
        for body in ("INSERT INTO FORMAT JSONEachRow\n{}", "INSERT INTO\n"):
            b = _insert_bad(env, body, 62, path="/")
            assert b"SYNTAX_ERROR" in b
        assert env.wal() == []
    finally:
        env.close()


def test_bad_wrong_password():
    env = Env(ch=False, users=[("alice", "s3cret")])
    try:
        path = "/?query=" + urllib.parse.quote("INSERT INTO db.t FORMAT JSONEachRow")
        for hdrs in ({"X-ClickHouse-User": "alice", "X-ClickHouse-Key": "nope"},
                     {"Authorization": "Basic YWxpY2U6bm9wZQ=="}, {}):
            st, hd, b = req(env.s.url, "POST", path, '{"a":1}', hdrs)
            assert st == 403, (st, b)  # modern ClickHouse's mapping of 516
            assert_ch_error(st, hd, b, 516)
            assert b"Authentication failed" in b and b"nope" not in b
        st, _, _ = req(env.s.url, "POST", path + "&user=alice&password=s3cret", '{"a":1}')
        assert st == 200
        st, _, _ = req(env.s.url, "POST", path, '{"a":1}',
                       {"X-ClickHouse-User": "alice", "X-ClickHouse-Key": "s3cret"})
        assert st == 200
        assert "s3cret" not in env.s.proc.output() and "nope" not in env.s.proc.output()
        assert [r["n_rows"] for r in env.wal()] == [1, 1]
    finally:
        env.close()


def test_bad_smuggling_cl_and_te():
    env = Env(ch=False)
    try:
        _bad(env, b"POST /?query=INSERT%20INTO%20t%20FORMAT%20JSONEachRow HTTP/1.1\r\n"
             b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"2\r\n{}\r\n0\r\n\r\n", 400)
        assert env.wal() == []
    finally:
        env.close()


def test_bad_duplicate_content_length():
    env = Env(ch=False)
    try:
        _bad(env, b"POST /?query=INSERT%20INTO%20t%20FORMAT%20JSONEachRow HTTP/1.1\r\n"
             b"Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}", 400)
        _bad(env, b"POST /?query=INSERT%20INTO%20t%20FORMAT%20JSONEachRow HTTP/1.1\r\n"
             b"Content-Length: 2\r\nContent-Length: 7\r\n\r\n{}", 400)
        assert env.wal() == []
    finally:
        env.close()


def test_idle_connection_is_closed():
    env = Env(ch=False, idle=300)
    try:
        s = socket.create_connection(("127.0.0.1", env.s.port), timeout=5)
        s.sendall(b"GET /ping HTT")  # a slow client never finishing its headers
        t0 = time.time()
        assert s.recv(100) == b""
        assert time.time() - t0 < 3
        s.close()
        assert_up(env)
    finally:
        env.close()


def test_backend_down_is_a_clickhouse_shaped_502_and_writes_continue():
    env = Env(ch=False)
    try:
        st, hd, b = req(env.s.url, "GET", "/?query=SELECT%201")
        assert st == 502, (st, b)
        assert_ch_error(st, hd, b, 210)
        assert b"unreachable" in b
        st, _, _ = req(env.s.url, "POST", "/?query=INSERT%20INTO%20t%20FORMAT%20JSONEachRow",
                       '{"a":1}')
        assert st == 200
    finally:
        env.close()


def test_wal_full_is_503_with_retry_after():
    env = Env(ch=False, wal_max="1MiB", max_body="4MiB")
    try:
        path = "/?query=" + urllib.parse.quote("INSERT INTO t FORMAT JSONEachRow")
        row = json.dumps({"a": 1, "s": "x" * 900}) + "\n"
        got = []
        for _ in range(40):
            st, hd, b = req(env.s.url, "POST", path, row * 100)
            got.append(st)
            if st == 503:
                assert hd.get("retry-after") == "1"
                assert_ch_error(st, hd, b, 202)
                break
        assert got[-1] == 503 and 200 in got, got
        assert_up(env)
    finally:
        env.close()


# ---------------------------------------------------------------- the modern engine

def test_gateway_flow_against_modern_engine():
    """TensorZero's exact traffic (SETTINGS clause, null_as_default, Map tags, nested JSON)
    via sluice to the modern engine (tests/support/chserver): schema DDL passes through,
    inserts get 200 with a valid Summary as directly, and the feedback existence check
    (server-side parameter) finds the inference right away thanks to the read barrier."""
    import random
    sys.path.insert(0, os.path.join(h.SRC, "tests", "fixtures", "tensorzero"))
    import tz
    td = h.TempDir()
    ch = h.ChServer(td.sub("chs"))
    s = None
    try:
        cfg = ("wal:\n  dir: {wal_dir}\nproxy:\n  listen: {listen}\n  read_barrier_ms: 15000\n"
               "admin:\n  listen: {admin}\nshutdown:\n  drain_timeout_s: 5\nsinks:\n"
               "  - name: ch\n    type: clickhouse\n    url: %s\n"
               "    batch: {{max_wait_ms: 50}}\n" % ch.url)
        s = h.Sluice(td.sub("s"), cfg)
        tz.create_schema(s.url, "tz")  # DDL through the proxy
        rng = random.Random(11)
        direct = tz.make_inference(rng, "tz", kind="chat")
        for r in direct["requests"]:
            st, hd, b = r.send(ch.url)
            assert st == 200, b
        inf = tz.make_inference(rng, "tz", kind="chat")
        for r in inf["requests"]:
            st, hd, b = r.send(s.url)
            assert st == 200 and b == b"", (st, b)
            summary = json.loads(hd["x-clickhouse-summary"])
            assert summary["written_rows"] == str(len(r.rows))
        st, _, b = tz.inference_by_id_request(inf["inference_id"], "tz").send(s.url)
        assert st == 200 and inf["function_name"].encode() in b, (st, b)
        # An INSERT's answer names the same format, with the same Content-Type, as the
        # engine's: default_format, else the X-ClickHouse-Format header, else TabSeparated.
        q = urllib.parse.quote
        st, _, b = req(s.url, "POST", "/", "CREATE TABLE tz.fmt (a UInt8) ENGINE = Memory")
        assert st == 200, b
        ins = "/?query=" + q("INSERT INTO tz.fmt FORMAT JSONEachRow")
        for extra, hdrs in (("", {}), ("&default_format=JSONEachRow", {}),
                            ("", {"X-ClickHouse-Format": "CSV"}),
                            ("&default_format=TSVWithNames", {"X-ClickHouse-Format": "CSV"}),
                            ("&default_format=CSVWithNames", {}),
                            # no Content-Type of their own: text/plain, not JSON's
                            ("&default_format=JSONCompactEachRow", {}),
                            ("&default_format=JSONCompactStringsEachRowWithNames", {}),
                            ("&default_format=JSONStringsEachRow", {}),
                            ("&default_format=JSONCompactEachRowWithProgress", {}),
                            ("&default_format=JSONObjectEachRow", {})):
            got = []
            for base in (ch.url, s.url):
                st, hd, b = req(base, "POST", ins + extra, '{"a":1}\n', hdrs)
                assert st == 200, (base, extra, hdrs, b)
                got.append((hd.get("x-clickhouse-format"), hd.get("content-type")))
            assert got[0] == got[1], (extra, hdrs, got)
        # ... for every output format the engine has, with the Content-Type its own
        # system.formats gives (the chserver answers with that column).
        st, _, b = req(ch.url, "POST", "/", "SELECT name, content_type FROM system.formats "
                       "WHERE is_output ORDER BY name FORMAT TabSeparated")
        assert st == 200, b
        engine = [l.split("\t") for l in b.decode().splitlines()]
        assert len(engine) > 50 and ["JSONEachRow", "application/x-ndjson; charset=UTF-8"] in engine
        wrong = []
        for name, ctype in engine:
            st, hd, b = req(s.url, "POST", ins + "&default_format=" + name, '{"a":1}\n', {})
            assert st == 200, (name, b)
            if (hd.get("x-clickhouse-format"), hd.get("content-type")) != (name, ctype):
                wrong.append((name, ctype, hd.get("content-type")))
        assert not wrong, wrong
        fb = tz.feedback_request("boolean", inf["inference_id"], "tz", rng=rng)
        assert fb.send(s.url)[0] == 200
        # a bad row: 4xx both ways, ClickHouse-shaped both ways
        bad = tz.Request("POST", tz.url_path("tz"), tz.auth_headers(),
                         "INSERT INTO BooleanMetricFeedback FORMAT JSONEachRow\n{\"id\":")
        d, v = bad.send(ch.url), bad.send(s.url)
        assert klass(d[0]) == klass(v[0]) == 4, (d, v)
        assert d[2].startswith(b"Code: ") and v[2].startswith(b"Code: 26. DB::Exception: ")
    finally:
        if s:
            assert s.stop() == 0, s.proc.output()[-3000:]
        ch.stop()
        td.close()


# ---------------------------------------------------------------- crash safety

def test_kill9_under_load_keeps_every_acked_row():
    env = Env(ch=False)
    try:
        acked = set()
        lock = threading.Lock()
        stop = threading.Event()
        path = "/?query=" + urllib.parse.quote("INSERT INTO t FORMAT JSONEachRow")

        def worker(wid):
            n = 0
            conn = None
            while not stop.is_set():
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", env.s.port, timeout=5)
                    key = "%d-%d" % (wid, n)
                    n += 1
                    conn.request("POST", path, json.dumps({"k": key, "pad": "p" * 300}))
                    r = conn.getresponse()
                    r.read()
                    if r.status == 200:
                        with lock:
                            acked.add(key)
                except (OSError, http.client.HTTPException):
                    conn = None
                    time.sleep(0.01)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        h.wait_until(lambda: len(acked) > 500, timeout=60, what="500 acked inserts")
        env.s.kill9()
        stop.set()
        for t in threads:
            t.join()
        assert len(acked) > 500
        env.s.start()
        logged = [row["k"] for r in env.wal() for row in r["rows"]]
        missing = acked - set(logged)
        assert not missing, "acked but lost: %d of %d" % (len(missing), len(acked))
        assert len(logged) == len(set(logged)), "a request was logged twice"
    finally:
        env.close()


def test_sigterm_drains_and_exits_zero():
    env = Env(ch=False)
    try:
        st, _, _ = req(env.s.url, "POST", "/?query=INSERT%20INTO%20t%20FORMAT%20JSONEachRow",
                       '{"a":1}')
        assert st == 200
        assert env.s.stop(signal.SIGTERM) == 0
        assert [r["n_rows"] for r in env.s.wal_dump()] == [1]
    finally:
        env.close()


if __name__ == "__main__":
    h.run_tests(globals())
