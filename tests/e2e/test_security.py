#!/usr/bin/env python3
"""test_security.py - the security review of issue 9 (docs/security.md), one test per point:
request smuggling, header injection into the passthrough request, table/database names that
are not plain identifiers (quoted safely in the ClickHouse sink's SQL and the StarRocks sink's
URL and label), path traversal in admin routes, admin off loopback only with a token, secrets
never printed, slowloris, memory under 10,000 idle connections and under huge bodies.

The backends are small recording fakes written here (raw sockets, so the test sees the exact
bytes sluice sends). Run: SLUICE_BIN=build/sluice python3 tests/e2e/test_security.py"""
import gzip
import json
import os
import re
import resource
import socket
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


# ---------------------------------------------------------------- recording fake backend


class Recorder:
    """A raw HTTP/1.1 server on loopback that records every request (request line, raw head,
    headers, body) and answers with answer(req) -> (status, headers dict, body bytes).
    Handles Expect: 100-continue and keep-alive; bodies by Content-Length only (libcurl's
    POSTFIELDS always sends one)."""

    def __init__(self, answer):
        self.answer = answer
        self.reqs = []
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        c.settimeout(10)
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.split(b"\r\n")
                hdrs = []
                for l in lines[1:]:
                    k, _, v = l.partition(b":")
                    hdrs.append((k.decode("latin-1").lower(), v.strip().decode("latin-1")))
                hd = dict(hdrs)
                if hd.get("expect", "").lower() == "100-continue":
                    c.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                n = int(hd.get("content-length", "0"))
                while len(buf) < n:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                body, buf = buf[:n], buf[n:]
                req = {"line": lines[0], "head": head, "headers": hdrs, "h": hd, "body": body,
                       "method": lines[0].split(b" ")[0].decode(),
                       "target": lines[0].split(b" ")[1].decode("latin-1")}
                with self.lock:
                    self.reqs.append(req)
                st, rh, rb = self.answer(req)
                out = "HTTP/1.1 %d X\r\n" % st + "".join("%s: %s\r\n" % kv for kv in rh.items())
                c.sendall(out.encode() + b"Content-Length: %d\r\n\r\n" % len(rb) + rb)
        except OSError:
            return
        finally:
            c.close()

    def requests(self):
        with self.lock:
            return list(self.reqs)

    def close(self):
        self.closed = True
        self.sock.close()


def ch_answer(req):
    """A ClickHouse: SELECT version() answers a modern version, everything else 200."""
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(req["target"]).query).get("query", [""])[0]
    if q.startswith("SELECT version()"):
        return 200, {}, b"24.3.2.23\n"
    return 200, {"X-ClickHouse-Summary": '{"written_rows":"1"}'}, b""


def sr_answer(req):
    return 200, {"Content-Type": "application/json"}, json.dumps(
        {"TxnId": 1, "Label": req["h"].get("label", ""), "Status": "Success", "Message": "OK",
         "NumberTotalRows": 1, "NumberLoadedRows": 1}).encode()


# ---------------------------------------------------------------- helpers


CONFIG = """wal:
  dir: {wal_dir}
proxy:
  listen: {listen}
  passthrough_url: %(pt)s
  idle_timeout_ms: %(idle)d
  max_body_bytes: %(max_body)s
  max_connections: %(maxconn)d
%(users)sadmin:
  listen: {admin}
%(token)sshutdown:
  drain_timeout_s: 1
sinks:
%(sinks)s"""

SINK_CH = """  - name: ch
    type: clickhouse
    primary: true
    url: %s
    password: "%s"
    batch: {{max_rows: 1000, max_wait_ms: 50}}
    retry: {{initial_backoff_ms: 50, max_backoff_ms: 200}}
    connect_timeout_ms: 500
    request_timeout_ms: 3000
"""
SINK_SR = """  - name: sr
    type: starrocks
    url: %s
    user: root
    password: "%s"
    batch: {{max_rows: 1000, max_wait_ms: 50}}
    retry: {{initial_backoff_ms: 50, max_backoff_ms: 200}}
    connect_timeout_ms: 500
    request_timeout_ms: 3000
"""


def make_config(pt="http://127.0.0.1:1", idle=60000, max_body="8MiB", maxconn=10000,
                users="", token="", sinks=None):
    return CONFIG % {"pt": pt, "idle": idle, "max_body": max_body, "maxconn": maxconn,
                     "users": users, "token": ("  token: %s\n" % token) if token else "",
                     "sinks": sinks or SINK_CH % ("http://127.0.0.1:%d" % h.free_port(), "")}


def raw(port, data, timeout=3.0):
    """Send raw bytes; return (everything answered, closed_by_server)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                d = s.recv(65536)
            except socket.timeout:
                return out, False
            except ConnectionResetError:
                return out, True
            if not d:
                return out, True
            out += d
        return out, False
    finally:
        s.close()


def statuses(resp):
    return [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) ", resp)]


def vmrss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def stop_clean(s):
    rc = s.stop()
    out = s.proc.output()
    assert "Sanitizer" not in out and "runtime error" not in out, out[-3000:]
    assert rc == 0, "sluice exited %r:\n%s" % (rc, out[-3000:])
    return out


INSERT = b"POST /?query=INSERT%20INTO%20t%20FORMAT%20JSONEachRow HTTP/1.1\r\nHost: x\r\n"
SMUGGLED = b"GET /?query=SELECT%20666 HTTP/1.1\r\nHost: x\r\n\r\n"


# ---------------------------------------------------------------- 1. request smuggling


def test_smuggling_ambiguous_framing_is_400_and_closes():
    """Every request whose framing two HTTP implementations could read differently is refused
    with 400 (501 for a coding sluice does not implement) and the connection is closed, so
    bytes after it (here a smuggled SELECT) are never read as a request: nothing reaches the
    passthrough backend or the WAL. CL+TE and duplicate CL alone are in test_proxy.py."""
    td = h.TempDir()
    ch = Recorder(ch_answer)
    s = h.Sluice(td.sub("s"), make_config(pt=ch.url))
    try:
        cases = {
            "cl_te_then_smuggled": (INSERT + b"Content-Length: 5\r\nTransfer-Encoding: chunked"
                                    b"\r\n\r\n0\r\n\r\n" + SMUGGLED, {400}),
            "te_cl_reversed": (INSERT + b"Transfer-Encoding: chunked\r\nContent-Length: 40\r\n"
                               b"\r\n0\r\n\r\n" + SMUGGLED, {400}),
            "differing_cl": (INSERT + b"Content-Length: 2\r\nContent-Length: 40\r\n\r\n{}" +
                             SMUGGLED, {400}),
            "cl_list": (INSERT + b"Content-Length: 2, 2\r\n\r\n{}" + SMUGGLED, {400}),
            "cl_plus_sign": (INSERT + b"Content-Length: +2\r\n\r\n{}" + SMUGGLED, {400}),
            "te_space_before_colon": (INSERT + b"Transfer-Encoding : chunked\r\n"
                                      b"Content-Length: 2\r\n\r\n{}" + SMUGGLED, {400}),
            "obs_fold_te": (INSERT + b"Transfer-Encoding:\r\n chunked\r\n\r\n"
                            b"2\r\n{}\r\n0\r\n\r\n" + SMUGGLED, {400}),
            "obs_fold_other": (INSERT + b"X-Foo: a\r\n\tb\r\nContent-Length: 2\r\n\r\n{}" +
                               SMUGGLED, {400}),
            "te_two_headers": (INSERT + b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked"
                               b"\r\n\r\n2\r\n{}\r\n0\r\n\r\n" + SMUGGLED, {400, 501}),
            "te_list_with_identity": (INSERT + b"Transfer-Encoding: identity, chunked\r\n\r\n"
                                      b"2\r\n{}\r\n0\r\n\r\n" + SMUGGLED, {400, 501}),
            "te_unknown": (INSERT + b"Transfer-Encoding: xchunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n" +
                           SMUGGLED, {400, 501}),
            "chunk_ext_bare_lf": (INSERT + b"Transfer-Encoding: chunked\r\n\r\n"
                                  b"2;a\n{}\r\n0\r\n\r\n" + SMUGGLED, {400}),
            "chunk_ext_nul": (INSERT + b"Transfer-Encoding: chunked\r\n\r\n"
                              b"2;a\x00b\r\n{}\r\n0\r\n\r\n" + SMUGGLED, {400}),
            "chunk_ext_ctl": (INSERT + b"Transfer-Encoding: chunked\r\n\r\n"
                              b"2;a=\x01\r\n{}\r\n0\r\n\r\n" + SMUGGLED, {400}),
            "chunk_ext_del": (INSERT + b"Transfer-Encoding: chunked\r\n\r\n"
                              b"2;\x7f\r\n{}\r\n0\r\n\r\n" + SMUGGLED, {400}),
            "chunk_data_not_crlf": (INSERT + b"Transfer-Encoding: chunked\r\n\r\n"
                                    b"2\r\n{}XX0\r\n\r\n" + SMUGGLED, {400}),
            "chunk_data_bare_lf": (INSERT + b"Transfer-Encoding: chunked\r\n\r\n"
                                   b"2\r\n{}\n0\r\n\r\n" + SMUGGLED, {400}),
            "chunk_size_overflow": (INSERT + b"Transfer-Encoding: chunked\r\n\r\n"
                                    b"10000000000000002\r\n{}\r\n0\r\n\r\n" + SMUGGLED, {400}),
            "chunk_size_junk": (INSERT + b"Transfer-Encoding: chunked\r\n\r\n"
                                b"2x\r\n{}\r\n0\r\n\r\n" + SMUGGLED, {400}),
            "header_line_starts_with_space": (b"GET /?query=SELECT%201 HTTP/1.1\r\n Host: x\r\n"
                                              b"\r\n" + SMUGGLED, {400}),
        }
        failures = []
        for name, (data, want) in cases.items():
            out, closed = raw(s.port, data)
            st = statuses(out)
            if not (st and st[0] in want and len(st) == 1 and closed):
                failures.append("%s: statuses %r closed %r: %r" % (name, st, closed, out[:200]))
        assert not failures, "\n".join(failures)
        assert not any(b"666" in r["line"] for r in ch.requests()), ch.requests()
        out = stop_clean(s)
        assert s.wal_dump() == [], "a refused request reached the WAL"
        assert "666" not in out or "SELECT" not in out
        # The well-formed forms of the same requests still work (not a blanket refusal).
        s.start()
        ok = INSERT + (b"Transfer-Encoding: chunked\r\n\r\n2;name=val\r\n{}\r\n"
                       b"3 ; q=\"a b;c\"\t\r\n{}\n\r\n0\r\nX-Trailer: 1\r\n\r\n")
        out, _ = raw(s.port, ok + b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert statuses(out) == [200, 200], out
        # the same, a byte per segment: the checks hold across reads
        c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(ok)):
            c.send(ok[i:i + 1])
        assert statuses(c.recv(4096)) == [200]
        bad = INSERT + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n"
        c.sendall(bad[:60])
        for i in range(60, len(bad)):
            try:
                c.send(bad[i:i + 1])
            except OSError:
                break
        assert statuses(c.recv(4096)) == [400]
        c.close()
    finally:
        s.stop()
        ch.close()
        td.close()


# ---------------------------------------------------------------- 2. header injection


def test_no_header_injection_into_passthrough():
    """CR, LF or NUL in a header value, and percent-encoded CR/LF in a query parameter, never
    become a new header line in the request sluice sends to the primary ClickHouse: the
    request is refused (400) or the bytes arrive still encoded. Checked on the bytes the
    recording backend received."""
    td = h.TempDir()
    ch = Recorder(ch_answer)
    s = h.Sluice(td.sub("s"), make_config(pt=ch.url))
    try:
        bad_headers = [b"X-A: a\rInjected: 1", b"X-A: a\x00Injected: 1",
                       b"X-A: a\r\n Injected: 1", b"X-ClickHouse-User: u\rInjected: 1",
                       b"X-A: a\x0bInjected: 1"]
        for hv in bad_headers:
            out, closed = raw(s.port, b"GET /?query=SELECT%201 HTTP/1.1\r\nHost: x\r\n" + hv +
                              b"\r\nConnection: close\r\n\r\n")
            st = statuses(out)
            # Either refused, or (for \x0b, a legal obs-text-ish byte) forwarded verbatim
            # inside the one header line.
            assert st and (st[0] == 400 or st[0] == 200), (hv, out)
        # Encoded CR/LF in params and path: forwarded still encoded.
        target = (b"/?query=SELECT%201&x=a%0d%0aInjected:%201&user_param=%00%0a"
                  b"&database=db%0D%0AX-Evil:%20y")
        out, _ = raw(s.port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     b"\r\n")
        assert statuses(out) == [200], out
        # An INSERT's header values are not forwarded at all, but must not break the WAL.
        got = ch.requests()
        assert got, "nothing reached the backend"
        for r in got:
            names = [k for k, _ in r["headers"]]
            assert "injected" not in names and "x-evil" not in names, r["head"]
            assert b"\x00" not in r["head"] and b"\x0b\r" not in r["head"], r["head"]
            for line in r["head"].split(b"\r\n"):
                assert b"\r" not in line and b"\n" not in line, line
        fwd = [r for r in got if b"Injected" in r["line"]]
        assert fwd and fwd[0]["target"] == target.decode(), [r["line"] for r in got]
    finally:
        stop_clean(s)
        ch.close()
        td.close()


# ---------------------------------------------------------------- 3. identifiers


def parse_ch_insert(sql):
    """INSERT INTO `db`.`t` FORMAT JSONEachRow -> (db, t), reading backtick identifiers the
    way ClickHouse's lexer does (\\x escapes, doubled backticks). Asserts nothing else."""
    m = re.match(r"INSERT INTO ", sql)
    assert m, sql
    pos = m.end()
    names = []
    for i in range(2):
        assert sql[pos] == "`", sql
        pos += 1
        name = ""
        while True:
            c = sql[pos]
            if c == "\\":
                name += {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}.get(sql[pos + 1],
                                                                         sql[pos + 1])
                pos += 2
            elif c == "`":
                if pos + 1 < len(sql) and sql[pos + 1] == "`":
                    name += "`"
                    pos += 2
                else:
                    pos += 1
                    break
            else:
                name += c
                pos += 1
        names.append(name)
        if i == 0:
            assert sql[pos] == ".", sql
            pos += 1
    assert sql[pos:] == " FORMAT JSONEachRow", sql
    return tuple(names)


WEIRD = ["we`ird", 'dq"uote', "dot.ted", "sp ace", "../../etc/passwd", "..", ".",
         "uni\u00e9\u8868", "semi;colon -- x", "nl\nline", "back\\slash`", "pct%2e%2e",
         "q?a#b&c=d", "slash/es", "x" * 255]


def quote_bt(name):
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`").replace("\n", "\\n") + "`"


def test_odd_identifiers_are_quoted_safely_in_sql_urls_and_labels():
    """Table and database names that are not plain identifiers are accepted as ClickHouse
    accepts them (quoted), and each sink carries them as data, never as syntax: the
    ClickHouse sink's SQL parses back to exactly the same (db, table) with nothing after
    FORMAT JSONEachRow; the StarRocks URL has exactly /api/{db}/{table}/_stream_load with
    each segment decoding to the name (no dot-segment or '/' escapes); labels stay
    [A-Za-z0-9_]{1,128}. Names over 255 bytes or with NUL are refused at ingest."""
    td = h.TempDir()
    ch = Recorder(ch_answer)
    sr = Recorder(sr_answer)
    sinks = SINK_CH % (ch.url, "") + SINK_SR % (sr.url, "")
    s = h.Sluice(td.sub("s"), make_config(sinks=sinks))
    try:
        pairs = [("db", n) for n in WEIRD] + [(n, "t") for n in ("d`b", "../x", "..", "d b")]
        for db, t in pairs:
            stmt = "INSERT INTO %s.%s FORMAT JSONEachRow\n" % (quote_bt(db), quote_bt(t))
            st, _, body = h.http_request(s.url + "/", "POST", stmt.encode() + b'{"a":1}\n')
            assert st == 200, (db, t, st, body)
        for bad in ("y" * 256, "nu\\0l"):
            stmt = "INSERT INTO `db`.`%s` FORMAT JSONEachRow\n" % bad
            st, _, body = h.http_request(s.url + "/", "POST", stmt.encode() + b'{"a":1}\n')
            assert st == 400 and b"Code: 62" in body, (bad[:20], st, body)
        want = set(pairs)

        def ch_names():
            got = set()
            for r in ch.requests():
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(r["target"]).query)
                sql = q.get("query", [""])[0]
                if sql.startswith("INSERT"):
                    got.add(parse_ch_insert(sql))
            return got

        def sr_names():
            got = set()
            for r in sr.requests():
                path = urllib.parse.urlsplit(r["target"]).path
                segs = path.split("/")
                assert len(segs) == 5 and segs[:2] == ["", "api"] and segs[4] == "_stream_load", \
                    path
                for seg in segs[2:4]:
                    assert seg not in (".", "..") and "/" not in seg, path
                got.add((urllib.parse.unquote(segs[2]), urllib.parse.unquote(segs[3])))
            return got

        h.wait_until(lambda: want <= ch_names(), timeout=20, what="clickhouse sink batches")
        h.wait_until(lambda: want <= sr_names(), timeout=20, what="starrocks sink loads")
        assert ch_names() == want, ch_names() ^ want
        assert sr_names() == want, sr_names() ^ want
        for r in sr.requests():
            assert re.fullmatch(r"[A-Za-z0-9_]{1,128}", r["h"]["label"]), r["h"]["label"]
        for r in ch.requests():
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(r["target"]).query)
            if "insert_deduplication_token" in q:
                assert re.fullmatch(r"[A-Za-z0-9_]{1,128}", q["insert_deduplication_token"][0])
    finally:
        stop_clean(s)
        ch.close()
        sr.close()
        td.close()


# ---------------------------------------------------------------- 4. admin path traversal


def test_admin_routes_resist_path_traversal():
    """Admin routes match the raw path exactly: dot-segments, encoded and double-encoded
    slashes and dots never reach a /v1/ route without the token, never act on a sink, and
    never name a file."""
    td = h.TempDir()
    tok = "tok-" + "A" * 20
    s = h.Sluice(td.sub("s"), make_config(token=tok))
    auth = {"Authorization": "Bearer " + tok}
    try:
        no_token = ["/healthz/../v1/sinks/ch/pause", "/metrics/..%2fv1/sinks/ch/pause",
                    "/%2e%2e/v1/sinks/ch/pause", "/readyz/%252e%252e/v1/sinks/ch/pause",
                    "//v1/sinks/ch/pause", "/./v1/sinks/ch/pause", "/V1/sinks/ch/pause",
                    "/healthz/../../../../etc/passwd", "/..%2f..%2f..%2fetc%2fpasswd",
                    "/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/%252e%252e%252fetc%252fpasswd"]
        for p in no_token:
            st, _, body = h.http_request(s.admin_url + p, "POST", b"")
            assert st in (401, 404, 405), (p, st, body)
            assert b"root:" not in body, p
        with_token = ["/v1/sinks/ch/../ch/pause", "/v1/sinks/..%2fch/pause",
                      "/v1/sinks/ch%2fpause", "/v1/sinks/%2e%2e/ch/pause",
                      "/v1/sinks/ch/pause/..", "/v1/sinks/ch/%70ause", "/v1/sinks/ch%252fpause",
                      "/v1/dlq/../dlq/replay", "/v1/sinks/../../etc/passwd"]
        for p in with_token:
            st, _, body = h.http_request(s.admin_url + p, "POST", b"", auth)
            assert st in (404, 405), (p, st, body)
            assert b"root:" not in body, p
        st, _, body = h.http_request(s.admin_url + "/v1/sinks", "GET", None, auth)
        assert st == 200, body
        sinks = json.loads(body)
        sinks = sinks.get("sinks", sinks) if isinstance(sinks, dict) else sinks
        assert all(x.get("state") != "paused" for x in sinks), sinks
        st, _, _ = h.http_request(s.admin_url + "/v1/../v1/sinks", "GET")
        assert st == 401
    finally:
        stop_clean(s)
        td.close()


# ---------------------------------------------------------------- 5. admin off loopback


def test_admin_off_loopback_requires_a_token():
    """check-config (and run) refuse an admin listener on a non-loopback address without
    admin.token; loopback needs none; the refusal does not print the rest of the config."""
    td = h.TempDir()
    d = td.sub("c")
    try:
        def check(admin, token=""):
            p = os.path.join(d, "c.yaml")
            with open(p, "w") as f:
                f.write("wal:\n  dir: %s\nproxy:\n  listen: 127.0.0.1:%d\nadmin:\n  listen: \"%s\"\n%s"
                        "sinks:\n  - name: ch\n    type: clickhouse\n    url: http://127.0.0.1:1\n"
                        "    password: pw-SECRET-admin\n"
                        % (os.path.join(d, "wal"), h.free_port(), admin,
                           ("  token: %s\n" % token) if token else ""))
            r = __import__("subprocess").run([h.SLUICE_BIN, "check-config", "--config", p],
                                             capture_output=True, timeout=30)
            return r.returncode, (r.stdout + r.stderr).decode()

        for addr in ("0.0.0.0:%d", "[::]:%d", "192.0.2.1:%d", "[::ffff:127.0.0.1]:%d"):
            rc, out = check(addr % h.free_port())
            assert rc != 0 and "admin.token" in out, (addr, rc, out)
            assert "pw-SECRET-admin" not in out, out
        for addr in ("127.0.0.1:%d", "[::1]:%d", "localhost:%d"):
            rc, out = check(addr % h.free_port())
            assert rc == 0, (addr, out)
        rc, out = check("0.0.0.0:%d" % h.free_port(), token="tok-SECRET-admin")
        assert rc == 0, out
        assert "tok-SECRET-admin" not in out and "pw-SECRET-admin" not in out, out
        # run refuses too, before listening
        p = os.path.join(d, "c.yaml")
        check("0.0.0.0:%d" % h.free_port())
        r = __import__("subprocess").run([h.SLUICE_BIN, "run", "--config", p],
                                         capture_output=True, timeout=30)
        assert r.returncode != 0 and b"admin.token" in r.stdout + r.stderr
    finally:
        td.close()


# ---------------------------------------------------------------- 6. secrets


SECRETS = ["chpw-SECRET1", "srpw-SECRET2", "tok-SECRET3", "userpw-SECRET4", "urlpw-SECRET5"]


def test_secrets_never_printed():
    """Sink passwords, the admin token, proxy.users passwords and the password inside
    SLUICE_CLICKHOUSE_URL appear nowhere in sluice's output while both sinks fail auth and
    clients fail auth, nor in check-config, the admin API, metrics or error answers; a bad
    SLUICE_CLICKHOUSE_URL is refused without echoing its password."""
    td = h.TempDir()

    def deny_ch(req):
        return 403, {"X-ClickHouse-Exception-Code": "516"}, (
            b"Code: 516. DB::Exception: u: Authentication failed: password is incorrect. "
            b"(AUTHENTICATION_FAILED)\n")

    def deny_sr(req):
        return 401, {"WWW-Authenticate": 'Basic realm=""'}, (
            b'{"status":"FAILED","code":"1","msg":"Access denied for root@127.0.0.1"}')

    ch = Recorder(deny_ch)
    sr = Recorder(deny_sr)
    sinks = SINK_CH % (ch.url, SECRETS[0]) + SINK_SR % (sr.url, SECRETS[1])
    users = '  users:\n    - {{user: alice, password: "%s"}}\n' % SECRETS[3]
    chu = urllib.parse.urlsplit(ch.url)
    env = {"SLUICE_CLICKHOUSE_URL": "http://bob:%s@%s/db" % (SECRETS[4], chu.netloc)}
    s = h.Sluice(td.sub("s"), make_config(pt=ch.url, users=users, token=SECRETS[2],
                                          sinks=sinks), env=env)
    try:
        path = "/?query=" + urllib.parse.quote("INSERT INTO db.t FORMAT JSONEachRow")
        creds = {"X-ClickHouse-User": "alice", "X-ClickHouse-Key": SECRETS[3]}
        for i in range(5):
            st, _, _ = h.http_request(s.url + path, "POST", b'{"a":%d}' % i, creds)
            assert st == 200
        st, _, body = h.http_request(s.url + path, "POST", b'{"a":1}',
                                     {"X-ClickHouse-User": "alice", "X-ClickHouse-Key": "x"})
        assert st == 403 and not any(x.encode() in body for x in SECRETS), body
        st, _, body = h.http_request(s.url + "/?query=SELECT%201", "GET", None, creds)
        assert not any(x.encode() in body for x in SECRETS), body
        # both sinks must have tried (and failed) with the credentials
        h.wait_until(lambda: len(ch.requests()) >= 2 and len(sr.requests()) >= 2, timeout=20,
                     what="sinks attempting delivery")
        assert any(SECRETS[4] in r["h"].get("x-clickhouse-key", "") for r in ch.requests()), \
            "SLUICE_CLICKHOUSE_URL's password is not the one the primary sink uses"
        auth = {"Authorization": "Bearer " + SECRETS[2]}
        api = b""
        for p in ("/v1/sinks", "/v1/dlq", "/metrics", "/readyz", "/healthz"):
            api += h.http_request(s.admin_url + p, "GET", None, auth)[2]
        h.wait_until(lambda: b"degraded" in h.http_request(s.admin_url + "/v1/sinks", "GET",
                                                           None, auth)[2], timeout=20,
                     what="sinks degraded by auth failures")
        rc, cc_out, cc_err = s.cli("check-config", "--config", s.config_path, check=False)
        out = stop_clean(s)
        text = out + cc_out + cc_err + api.decode("utf-8", "replace")
        leaked = [x for x in SECRETS if x in text]
        assert not leaked, (leaked, text[-3000:])
        assert "516" in out or "Authentication" in out or "degraded" in out, out[-2000:]
        # A malformed SLUICE_CLICKHOUSE_URL is refused without echoing its password.
        for bad in ("http://bob:%s@%s/db/extra" % (SECRETS[4], chu.netloc),
                    "http://bob:%s@:99999999/" % SECRETS[4],
                    "ftp://bob:%s@host/" % SECRETS[4],
                    "http://bob:%s%%zz@host/" % SECRETS[4]):
            s.env["SLUICE_CLICKHOUSE_URL"] = bad
            rc, o1, e1 = s.cli("check-config", "--config", s.config_path, check=False)
            assert rc != 0 and "SLUICE_CLICKHOUSE_URL" in o1 + e1, (bad, o1, e1)
            assert SECRETS[4] not in o1 + e1, (bad, o1 + e1)
        # Credentials inside a config URL are refused, also without echoing them.
        del s.env["SLUICE_CLICKHOUSE_URL"]
        for key in ("passthrough_url", "sink"):
            cfg = make_config(pt="http://u:%s@127.0.0.1:1" % SECRETS[4] if key != "sink"
                              else ch.url,
                              sinks=SINK_CH % ("http://u:%s@127.0.0.1:1" % SECRETS[0]
                                               if key == "sink" else ch.url, ""))
            p = os.path.join(td.path, "bad-%s.yaml" % key)
            with open(p, "w") as f:
                f.write(cfg.format(listen="127.0.0.1:1", admin="127.0.0.1:2", wal_dir=td.path))
            rc, o1, e1 = s.cli("check-config", "--config", p, check=False)
            assert rc != 0 and "credentials" in o1 + e1, (key, o1, e1)
            assert not any(x in o1 + e1 for x in SECRETS), (key, o1 + e1)
    finally:
        if s.proc.alive():
            s.stop()
        ch.close()
        sr.close()
        td.close()


# ---------------------------------------------------------------- 7. slowloris


def test_slowloris_does_not_block_others_and_is_cut_off():
    """Many connections trickling their headers a byte at a time (faster than the idle
    timeout) neither block a normal client nor keep their connection: the header deadline
    (proxy.idle_timeout_ms, from the first byte of the request) closes them."""
    td = h.TempDir()
    s = h.Sluice(td.sub("s"), make_config(idle=800))
    slow = []
    try:
        for _ in range(200):
            c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
            c.setblocking(False)
            slow.append(c)
        head = b"POST /?query=INSERT%20INTO%20t%20FORMAT%20JSONEachRow HTTP/1.1\r\nX-Pad: " + \
            b"a" * 10000
        closed = set()
        t0 = time.time()
        lat = []
        i = 0
        while time.time() - t0 < 3.0 and len(closed) < len(slow):
            for k, c in enumerate(slow):
                if k in closed:
                    continue
                try:
                    c.send(head[i:i + 1])
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    closed.add(k)
                    continue
                try:
                    if c.recv(4096) == b"":
                        closed.add(k)
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    closed.add(k)
            i += 1
            a = time.time()
            st, _, _ = s.insert("t", [{"a": i}])
            lat.append(time.time() - a)
            assert st == 200
            time.sleep(0.1)
        elapsed = time.time() - t0
        assert len(closed) == len(slow), "%d of %d slow connections still open after %.1fs" % (
            len(slow) - len(closed), len(slow), elapsed)
        assert elapsed < 2.5, elapsed
        assert max(lat) < 0.5, max(lat)
    finally:
        for c in slow:
            c.close()
        stop_clean(s)
        td.close()


# ---------------------------------------------------------------- 8. memory


def test_memory_bounded_under_10000_idle_connections():
    """10,000 idle connections cost little (no per-connection buffers until bytes arrive):
    sluice's RSS grows by < 100 MiB and a normal insert is still answered at once."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 10000 + 500
    if hard != resource.RLIM_INFINITY and hard < need:
        raise AssertionError("RLIMIT_NOFILE hard limit %d < %d: cannot run" % (hard, need))
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need) if hard == resource.RLIM_INFINITY
                                                else min(hard, max(soft, need)), hard))
    td = h.TempDir()
    s = h.Sluice(td.sub("s"), make_config(idle=120000, maxconn=20000))
    conns = []
    try:
        assert s.insert("t", [{"a": 0}])[0] == 200
        before = vmrss_kib(s.proc.p.pid)
        for _ in range(10000):
            c = socket.socket()
            c.setblocking(False)
            try:
                c.connect(("127.0.0.1", s.port))
            except BlockingIOError:
                pass
            conns.append(c)
        # half of them sent a partial request line (a few bytes of state each)
        for c in conns[::2]:
            try:
                c.send(b"GET /pi")
            except OSError:
                pass
        h.wait_until(lambda: _open_conns(s) >= 10000, timeout=30,
                     what="10000 connections accepted")
        after = vmrss_kib(s.proc.p.pid)
        t0 = time.time()
        st, _, _ = s.insert("t", [{"a": 1}])
        assert st == 200 and time.time() - t0 < 1.0
        grow = (after - before) / 1024.0
        print("RSS %.1f MiB -> %.1f MiB (+%.1f MiB, %.0f bytes/connection)" % (
            before / 1024.0, after / 1024.0, grow, (after - before) * 1024.0 / 10000))
        assert grow < 100, grow
    finally:
        for c in conns:
            c.close()
        stop_clean(s)
        td.close()


def _open_conns(s):
    body = h.http_request(s.admin_url + "/metrics")[2].decode()
    m = re.search(r"^sluice_connections_open (\d+)", body, re.M)
    return int(m.group(1)) if m else 0


def test_memory_bounded_under_huge_bodies():
    """Bodies over proxy.max_body_bytes get 413 without being buffered whole: a declared
    1 GiB Content-Length is refused before its body, a chunked 256 MiB stream is cut at the
    limit, and a gzip bomb inflating past the limit is 413 too; RSS stays bounded and the
    next request works."""
    td = h.TempDir()
    s = h.Sluice(td.sub("s"), make_config(max_body="4MiB"))
    try:
        pid = s.proc.p.pid
        base = vmrss_kib(pid)
        # declared huge
        out, closed = raw(s.port, INSERT + b"Content-Length: 1073741824\r\n\r\n" + b"{}" * 1000)
        assert statuses(out) == [413] and closed, out
        # streamed huge (chunked): keep sending until the server stops us
        c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        c.sendall(INSERT + b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n" % (1 << 20) + (b'{"a":1}\n' * (1 << 17)) + b"\r\n"
        sent = 0
        peak = base
        try:
            while sent < 256 << 20:
                c.sendall(chunk)
                sent += 1 << 20
                if sent % (16 << 20) == 0:
                    peak = max(peak, vmrss_kib(pid))
        except OSError:
            pass
        c.settimeout(5)
        resp = b""
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                resp += d
        except OSError:
            pass
        c.close()
        assert statuses(resp) == [413], resp[:200]
        assert sent < 64 << 20, "sluice kept reading %d MiB past a 4 MiB limit" % (sent >> 20)
        # gzip bomb: 64 MiB of rows in ~100 KiB
        bomb = gzip.compress(b'{"a":1}\n' * (8 << 20), 9)
        st, _, body = h.http_request(
            s.url + "/?query=" + urllib.parse.quote("INSERT INTO t FORMAT JSONEachRow"), "POST",
            bomb, {"Content-Encoding": "gzip"})
        assert st == 413, (st, body)
        peak = max(peak, vmrss_kib(pid))
        print("RSS base %.1f MiB, peak %.1f MiB" % (base / 1024.0, peak / 1024.0))
        assert (peak - base) / 1024.0 < 64, (base, peak)
        assert s.insert("t", [{"a": 1}])[0] == 200
    finally:
        stop_clean(s)
        td.close()


h.run_tests(globals())
