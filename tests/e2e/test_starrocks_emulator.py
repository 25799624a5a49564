#!/usr/bin/env python3
"""test_starrocks_emulator.py - the StarRocks emulator behaves like PROTOCOLS.md section C says.

Drives tests/e2e/starrocks_emulator.py with a raw-socket Stream Load client (so that
`Expect: 100-continue`, the 307 and dropped connections are visible), one emulator per test.
Run: python3 tests/e2e/test_starrocks_emulator.py  (SLUICE_TEST_ONLY=substring to filter)
"""
import base64
import json
import os
import socket
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import StarRocksEmulator, TempDir, http_request, wait_until  # noqa: E402

TABLES = {
    "logs.events": [["id", "BIGINT"], ["n", "INT"], ["name", "VARCHAR(16)"], ["ts", "DATETIME"],
                    ["attrs", "JSON"], ["ok", "BOOLEAN"], ["score", "DOUBLE"]],
    "logs.strict": [["id", "BIGINT NOT NULL"], ["msg", "STRING"]],
}
USER, PW = "loader", "s3cret"


def start(tmp, **kw):
    return StarRocksEmulator(tmp.sub("emu"), TABLES, user=USER, password=PW, **kw)


class Reply:
    def __init__(self, status, headers, body, trace):
        self.status, self.headers, self.body, self.trace = status, headers, body, trace

    def json(self):
        return json.loads(self.body)


def read_head(f):
    line = f.readline()
    if not line:
        raise ConnectionError("connection closed before a reply")
    status = int(line.split()[1])
    headers = {}
    while True:
        h = f.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.decode().partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers


def raw_put(port, path, body, headers, expect=True, chunked=False, timeout=15):
    """One PUT on a fresh connection. With expect, the body is sent only after 100 Continue.
    Returns Reply; trace lists every status line seen (100 included)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    f = s.makefile("rb")
    try:
        h = dict(headers)
        if chunked:
            h["Transfer-Encoding"] = "chunked"
        else:
            h["Content-Length"] = str(len(body))
        if expect:
            h["Expect"] = "100-continue"
        head = "PUT %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % (path, port)
        head += "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
        payload = body
        if chunked:
            half = len(body) // 2
            payload = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:half], body[half:]) if p)
            payload += b"0\r\n\r\n"
        trace = []
        if expect:
            s.sendall(head.encode())
            status, rh = read_head(f)
            trace.append(status)
            if status == 100:
                s.sendall(payload)
                status, rh = read_head(f)
                trace.append(status)
        else:
            s.sendall(head.encode() + payload)
            status, rh = read_head(f)
            trace.append(status)
        data = f.read(int(rh.get("content-length", "0")))
        return Reply(status, rh, data, trace)
    finally:
        f.close()
        s.close()


def auth(user=USER, pw=PW):
    return "Basic " + base64.b64encode(("%s:%s" % (user, pw)).encode()).decode()


def body_of(rows):
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()


def stream_load(emu, rows, label, table="logs.events", headers=None, follow=True, **kw):
    """The sink's flow: PUT to the FE, follow the 307 to the BE with the same headers."""
    db, tbl = table.split(".")
    h = {"Authorization": auth(), "label": label, "format": "json", "strip_outer_array": "false"}
    h.update(headers or {})
    h = {k: v for k, v in h.items() if v is not None}
    body = rows if isinstance(rows, bytes) else body_of(rows)
    r = raw_put(emu.fe_port, "/api/%s/%s/_stream_load" % (db, tbl), body, h, **kw)
    if r.status != 307 or not follow:
        return r
    loc = urllib.parse.urlsplit(r.headers["location"])
    r2 = raw_put(loc.port, loc.path + "?" + loc.query, body, h, **kw)
    r2.trace = r.trace + r2.trace
    return r2


def emu_get(emu, path):
    st, _, body = http_request(emu.url + path)
    assert st == 200, (st, body)
    return body


def loads(emu):
    return json.loads(emu_get(emu, "/_emu/loads"))


def with_emu(fn):
    """Run fn(emu) with a fresh emulator, stopped and cleaned afterwards."""
    def wrapper():
        tmp = TempDir("sr-emu-")
        emu = start(tmp)
        try:
            fn(emu)
        except Exception:
            print(emu.proc.output()[-3000:])
            raise
        finally:
            emu.stop()
            tmp.close()
    wrapper.__name__ = fn.__name__
    return wrapper


ROW = {"id": 1, "n": 7, "name": "a", "ts": "2024-05-01 10:00:00", "attrs": {"k": [1, 2]},
       "ok": True, "score": 1.5}


# ------------------------------------------------------------------ FE and the 307 flow

@with_emu
def test_fe_redirects_before_body_and_be_loads_with_auth(emu):
    h = {"Authorization": auth(), "label": "l1", "format": "json"}
    r = raw_put(emu.fe_port, "/api/logs/events/_stream_load", body_of([ROW]), h)
    assert r.trace == [307], r.trace  # no 100 Continue: the FE never reads the body
    assert r.body == b"", r.body
    loc = r.headers["location"]
    assert loc.startswith("http://127.0.0.1:%d/api/logs/events/_stream_load?" % emu.be_port), loc
    r = stream_load(emu, [ROW, dict(ROW, id=2)], "l1")
    assert r.trace == [307, 100, 200], r.trace
    j = r.json()
    assert j["Status"] == "Success" and j["Message"] == "OK", j
    assert j["NumberTotalRows"] == 2 and j["NumberLoadedRows"] == 2, j
    assert j["NumberFilteredRows"] == 0 and j["NumberUnselectedRows"] == 0 and "ErrorURL" not in j
    assert j["Label"] == "l1" and j["TxnId"] >= 1000 and j["LoadBytes"] > 0, j
    assert b'\n    "TxnId"' in r.body  # pretty-printed like StarRocks
    assert emu.count("logs.events") == 2
    assert emu.rows("logs.events")[0] == ROW, emu.rows("logs.events")


@with_emu
def test_be_without_auth_fails_before_body(emu):
    h = {"label": "l1", "format": "json"}
    r = raw_put(emu.be_port, "/api/logs/events/_stream_load", body_of([ROW]), h)
    assert r.trace == [200], r.trace
    j = r.json()
    assert j["Status"] == "Fail" and j["Message"].startswith("Access denied for "), j
    h["Authorization"] = auth(pw="wrong")
    j = raw_put(emu.be_port, "/api/logs/events/_stream_load", body_of([ROW]), h).json()
    assert j["Status"] == "Fail" and j["Message"] == "Access denied for loader@127.0.0.1", j
    assert emu.count("logs.events") == 0


@with_emu
def test_fe_without_expect_is_FAILED(emu):
    r = stream_load(emu, [ROW], "l1", expect=False)
    assert r.status == 200, r.status
    assert r.json() == {"Status": "FAILED", "Message": "class com.starrocks.common.DdlException: "
                        "There is no 100-continue header"}, r.body


@with_emu
def test_fe_bad_auth_is_401(emu):
    for a in (None, auth(pw="nope"), "Basic !!!"):
        r = stream_load(emu, [ROW], "l1", headers={"Authorization": a})
        assert r.status == 401 and r.trace == [401], (r.status, r.trace)
        assert r.headers["www-authenticate"] == 'Basic realm=""', r.headers
        j = r.json()
        assert j["status"] == "FAILED" and j["code"] == "1" and j["msg"].startswith("Access denied for"), j
    # without Expect and with a body in flight, the reply still arrives intact
    r = stream_load(emu, [ROW] * 2000, "l1", headers={"Authorization": auth(pw="x")}, expect=False)
    assert r.status == 401, r.status


@with_emu
def test_be_accepts_without_expect_and_chunked(emu):
    h = {"Authorization": auth(), "label": "plain", "format": "json"}
    r = raw_put(emu.be_port, "/api/logs/events/_stream_load", body_of([ROW]), h, expect=False)
    assert r.json()["Status"] == "Success", r.body
    h["label"] = "chunky"
    r = raw_put(emu.be_port, "/api/logs/events/_stream_load", body_of([ROW] * 3), h, chunked=True)
    assert r.trace == [100, 200] and r.json()["NumberLoadedRows"] == 3, r.body
    assert emu.count("logs.events") == 4


# ------------------------------------------------------------------ labels

@with_emu
def test_label_reuse_is_label_already_exists_finished(emu):
    first = stream_load(emu, [ROW], "batch_1").json()
    assert first["Status"] == "Success", first
    r = stream_load(emu, [ROW, ROW], "batch_1")
    assert r.trace == [307, 200], r.trace  # refused before the body: no 100 Continue
    j = r.json()
    assert j["Status"] == "Label Already Exists" and j["ExistingJobStatus"] == "FINISHED", j
    assert j["TxnId"] == -1 and j["Message"] == "Label [batch_1] has already been used.", j
    assert emu.count("logs.events") == 1
    # labels are per database: the same label on another table of logs is taken too
    j = stream_load(emu, [{"id": 1}], "batch_1", table="logs.strict").json()
    assert j["Status"] == "Label Already Exists", j
    labels = json.loads(emu_get(emu, "/_emu/labels"))
    assert labels == [{"db": "logs", "label": "batch_1", "table": "events", "status": "FINISHED",
                       "rows": 1, "txn_id": first["TxnId"]}], labels


@with_emu
def test_label_format_unknown_db_and_table(emu):
    j = stream_load(emu, [ROW], "bad-label").json()
    assert j["Status"] == "Fail" and "Label format error" in j["Message"], j
    j = stream_load(emu, [ROW], "x" * 129).json()
    assert j["Status"] == "Fail", j
    j = stream_load(emu, [ROW], "ok", table="nodb.events").json()
    assert j["Status"] == "Fail" and j["Message"] == "unknown database, database=nodb", j
    j = stream_load(emu, [ROW], "ok", table="logs.nope").json()
    assert j["Status"] == "Fail" and j["Message"] == 'unknown table "logs.nope"', j
    j = stream_load(emu, [ROW], "ok", headers={"format": "csv"}).json()
    assert j["Status"] == "Fail", j
    assert emu.count("logs.events") == 0


def test_lenient_labels_accept_any_label():
    tmp = TempDir("sr-emu-")
    emu = start(tmp, strict_labels=False)
    try:
        j = stream_load(emu, [ROW], "bad-label:1").json()
        assert j["Status"] == "Success", j
    finally:
        emu.stop()
        tmp.close()


@with_emu
def test_failed_load_frees_label(emu):
    r = stream_load(emu, [ROW, dict(ROW, n="abc")], "lab", headers={"strict_mode": "true"})
    j = r.json()
    assert j["Status"] == "Fail" and j["Message"] == "too many filtered rows", j
    assert j["NumberFilteredRows"] == 1 and j["NumberTotalRows"] == 2, j
    st, _, log = http_request(j["ErrorURL"])
    assert st == 200 and b"'n'" in log and b"abc" in log, log
    assert emu.count("logs.events") == 0
    j = stream_load(emu, [ROW], "lab").json()
    assert j["Status"] == "Success", j
    assert emu.count("logs.events") == 1


# ------------------------------------------------------------------ rows and types

@with_emu
def test_type_checks_filter_rows_and_max_filter_ratio(emu):
    good = [
        {"id": 1},                                                   # missing -> NULL
        {"id": "2", "n": 3.0, "unknown": 1, "name": 42, "ok": "false"},
        {"id": 3, "name": {"a": 1}, "attrs": "text", "ts": "2024-01-02 03:04:05.123456"},
        {"id": 4, "name": True, "attrs": [1, {"b": None}], "score": "2.5", "ok": 1},
    ]
    bad = [
        {"id": 5, "n": "abc"},                 # not an INT
        {"id": 6, "n": 2 ** 31},               # INT out of range
        {"id": 7, "name": "x" * 17},           # longer than VARCHAR(16)
        {"id": 8, "ts": "2024-13-01 00:00:00"},
        {"id": 9, "ok": "maybe"},
        {"id": 10, "score": [1]},
        [1, 2],                                # not an object
        '"just a string"',              # a JSON string, not an object
    ]
    rows = good + bad
    strict = {"strict_mode": "true"}
    j = stream_load(emu, rows, "f1", headers=strict).json()
    assert j["Status"] == "Fail" and j["Message"] == "too many filtered rows", j
    j = stream_load(emu, rows, "f1", headers=dict(strict, max_filter_ratio="0.6")).json()  # 8/12
    assert j["Status"] == "Fail", j
    j = stream_load(emu, rows, "f1", headers=dict(strict, max_filter_ratio="0.7")).json()
    assert j["Status"] == "Success", j
    assert (j["NumberTotalRows"], j["NumberLoadedRows"], j["NumberFilteredRows"]) == (12, 4, 8), j
    st, _, log = http_request(j["ErrorURL"])
    assert st == 200 and len(log.decode().splitlines()) == 8, log
    assert b"object type" in log
    null = {c: None for c, _ in TABLES["logs.events"]}
    got = emu.rows("logs.events")
    assert got == [
        dict(null, id=1),
        dict(null, id=2, n=3, name="42", ok=False),
        dict(null, id=3, name='{"a":1}', attrs="text", ts="2024-01-02 03:04:05.123456"),
        dict(null, id=4, name="true", attrs=[1, {"b": None}], score=2.5, ok=True),
    ], got


@with_emu
def test_not_null_column_filters_nulls(emu):
    j = stream_load(emu, [{"id": 1, "msg": "m"}, {"msg": "no id"}], "nn", table="logs.strict",
                    headers={"max_filter_ratio": "1"}).json()
    assert j["Status"] == "Success" and j["NumberFilteredRows"] == 1, j
    assert emu.rows("logs.strict") == [{"id": 1, "msg": "m"}]


@with_emu
def test_invalid_json_fails_whole_load(emu):
    for body in (b'{"id": 1}\n{"id": 2\n', b'{"id": 1}\nnot json\n', b'{"id": NaN}\n'):
        j = stream_load(emu, body, "bad_json", headers={"max_filter_ratio": "1"}).json()
        assert j["Status"] == "Fail" and j["Message"] == "Failed to parse json as document stream", j
    # one row that is not UTF-8 fails the whole load (simdjson, json_parser.cpp)
    j = stream_load(emu, b'{"id": 1}\n{"id": 2, "name": "\xff\xfe"}\n', "bad_utf8",
                    headers={"max_filter_ratio": "1"}).json()
    assert j["Status"] == "Fail" and "UTF8_ERROR: The input is not valid UTF-8" in j["Message"], j
    assert emu.count("logs.events") == 0


@with_emu
def test_non_strict_mode_stores_null_for_values_that_do_not_convert(emu):
    # StarRocks' default (no strict_mode): a bad value is NULL in a nullable column, Success
    j = stream_load(emu, [{"id": 1, "n": "abc", "ok": "maybe"}], "ns").json()
    assert j["Status"] == "Success" and j["NumberFilteredRows"] == 0, j
    got = emu.rows("logs.events")
    assert got[0]["id"] == 1 and got[0]["n"] is None and got[0]["ok"] is None, got
    j = stream_load(emu, [{"id": 2, "n": "abc"}], "st", headers={"strict_mode": "true"}).json()
    assert j["Status"] == "Fail" and j["Message"] == "too many filtered rows", j
    # NOT NULL filters even without strict mode
    j = stream_load(emu, [{"id": "x", "msg": "m"}], "nn2", table="logs.strict").json()
    assert j["Status"] == "Fail", j


# ------------------------------------------------------------------ StarRocks' own SQL tests

def replay_label_already_exist(emu, label_mode):
    """test/sql/test_stream_load/R/test_stream_load_label_already_exist (CSV there, JSON here:
    the emulator loads JSON only): the first load Succeeds, the second with the same label
    answers TxnId -1, Label Already Exists, ExistingJobStatus FINISHED, Message "Label [...]
    has already been used."; the table holds the row once. In label mode used the reply is
    the newer Fail shape (issue #57982)."""
    label = "test_stream_load_label_already_exist"
    j = stream_load(emu, [{"id": 1, "msg": "2"}], label, table="logs.strict").json()
    assert (j["Label"], j["Status"], j["Message"]) == (label, "Success", "OK"), j
    j = stream_load(emu, [{"id": 1, "msg": "2"}], label, table="logs.strict").json()
    want_msg = "Label [%s] has already been used." % label
    if label_mode == "existing":
        assert (j["TxnId"], j["Label"], j["Status"], j["ExistingJobStatus"], j["Message"]) == \
            (-1, label, "Label Already Exists", "FINISHED", want_msg), j
    else:
        assert (j["Status"], j["Message"]) == ("Fail", want_msg), j
        assert "ExistingJobStatus" not in j, j
    assert emu.rows("logs.strict") == [{"id": 1, "msg": "2"}]


@with_emu
def test_replay_R_label_already_exist(emu):
    replay_label_already_exist(emu, "existing")


def test_replay_R_label_already_exist_newer_fail_shape():
    tmp = TempDir("sr-emu-")
    emu = start(tmp, extra_args=["--label-mode", "used"])
    try:
        replay_label_already_exist(emu, "used")
    finally:
        emu.stop()
        tmp.close()


@with_emu
def test_replay_R_non_utf8_json(emu):
    """R/test_stream_load_non_utf8_json: data/non_utf8.json is {"c1": 1, "c2": "\u000b"}
    (an escaped control character, valid UTF-8): Success, and hex(c2) = 0B."""
    j = stream_load(emu, b'{"id": 1, "msg": "\\u000b"}', "non_utf8", table="logs.strict").json()
    assert (j["Status"], j["Message"]) == ("Success", "OK"), j
    assert emu.rows("logs.strict") == [{"id": 1, "msg": "\x0b"}]


def fe_get(emu, path, user=USER, pw=PW):
    st, _, body = http_request(emu.url + path, headers={"Authorization": auth(user, pw)})
    return st, json.loads(body)


@with_emu
def test_json_column_text_is_starrocks_spelling(emu):
    # StarRocks prints JSON with a space after ':' and ',' (issue 16); ClickHouse does not
    assert stream_load(emu, [dict(ROW, attrs={"k": [1, 2]})], "js").json()["Status"] == "Success"
    st, _, body = http_request(emu.url + "/_emu/sql", "POST", b'SELECT attrs FROM "logs.events"')
    assert st == 200 and json.loads(body) == {"attrs": '{"k": [1, 2]}'}, body


@with_emu
def test_get_load_state_visible_prepare_aborted_unknown(emu):
    assert stream_load(emu, [ROW], "ok_1").json()["Status"] == "Success"
    st, j = fe_get(emu, "/api/logs/get_load_state?label=ok_1")
    assert st == 200 and j == {"state": "VISIBLE", "reason": "", "status": "OK", "code": "0",
                               "msg": "Success", "message": "OK"}, j
    emu.faults(mode="fail_retryable")
    assert stream_load(emu, [ROW], "failed_1").json()["Status"] == "Fail"
    assert fe_get(emu, "/api/logs/get_load_state?label=failed_1")[1]["state"] == "ABORTED"
    assert fe_get(emu, "/api/logs/get_load_state?label=never")[1]["state"] == "UNKNOWN"
    emu.faults(mode="hang", seconds=5)
    t = threading.Thread(target=stream_load, args=(emu, [ROW], "slow_1"))
    t.start()
    wait_until(lambda: fe_get(emu, "/api/logs/get_load_state?label=slow_1")[1]["state"] == "PREPARE",
               timeout=10, what="PREPARE while the load runs")
    emu.faults(mode="clear")
    t.join(10)
    assert fe_get(emu, "/api/logs/get_load_state?label=slow_1")[1]["state"] == "VISIBLE"
    st, j = fe_get(emu, "/api/nodb/get_load_state?label=x")
    assert st == 200 and j["status"] == "FAILED" and j["msg"] == "unknown database, database=nodb", j
    st, _ = fe_get(emu, "/api/logs/get_load_state?label=x", pw="wrong")
    assert st == 401


def test_json_size_limit_refused_before_the_body():
    tmp = TempDir("sr-emu-")
    emu = start(tmp, extra_args=["--json-max-bytes", "1000"])
    try:
        j = stream_load(emu, body_of([dict(ROW, id=i) for i in range(40)]), "big").json()
        assert j["Status"] == "Fail" and "exceed the max size [1000]" in j["Message"], j
        assert stream_load(emu, [ROW], "small").json()["Status"] == "Success"
    finally:
        emu.stop()
        tmp.close()


@with_emu
def test_fault_no_backend_alive_at_the_fe(emu):
    emu.faults(mode="no_backend")
    j = stream_load(emu, [ROW], "nb").json()
    assert j == {"Status": "FAILED", "Message": "class com.starrocks.common.DdlException: "
                                                "No backend alive."}, j
    assert stream_load(emu, [ROW], "nb").json()["Status"] == "Success"


@with_emu
def test_fault_poison_fails_loads_holding_the_match(emu):
    emu.faults(mode="poison", match="POISON", message="brand new error text")
    j = stream_load(emu, [ROW, dict(ROW, name="POISON")], "p1").json()
    assert (j["Status"], j["Message"]) == ("Fail", "brand new error text"), j
    assert stream_load(emu, [ROW], "p2").json()["Status"] == "Success"
    emu.faults(mode="clear")
    assert stream_load(emu, [dict(ROW, name="POISON")], "p1").json()["Status"] == "Success"


@with_emu
def test_empty_load_has_no_load_data(emu):
    for body in (b"", b"\n  \n"):
        j = stream_load(emu, body, "empty").json()
        assert j["Status"] == "Fail" and j["Message"] == "all partitions have no load data", j
    j = stream_load(emu, [{"id": "x"}], "empty",
                    headers={"max_filter_ratio": "1", "strict_mode": "true"}).json()
    assert j["Status"] == "Fail" and j["Message"] == "all partitions have no load data", j
    j = stream_load(emu, b"[]", "empty", headers={"strip_outer_array": "true"}).json()
    assert j["Status"] == "Fail" and j["Message"] == "all partitions have no load data", j


@with_emu
def test_strip_outer_array(emu):
    arr = json.dumps([dict(ROW, id=i) for i in range(5)]).encode()
    j = stream_load(emu, arr, "arr", headers={"strip_outer_array": "true"}).json()
    assert j["Status"] == "Success" and j["NumberLoadedRows"] == 5, j
    j = stream_load(emu, arr, "arr2").json()  # an array without the header
    assert j["Status"] == "Fail" and "strip_outer_array" in j["Message"], j
    j = stream_load(emu, [ROW], "arr3", headers={"strip_outer_array": "true"}).json()
    assert j["Status"] == "Fail" and "strip_outer_array" in j["Message"], j
    assert [r["id"] for r in emu.rows("logs.events")] == [0, 1, 2, 3, 4]


@with_emu
def test_columns_and_jsonpaths_headers(emu):
    j = stream_load(emu, [ROW], "c1", headers={"columns": "id, name"}).json()
    assert j["Status"] == "Success", j
    j = stream_load(emu, [{"a": {"b": 9}, "c": "zz"}], "c2",
                    headers={"columns": "id,name", "jsonpaths": '["$.a.b", "$.c"]'}).json()
    assert j["Status"] == "Success", j
    null = {c: None for c, _ in TABLES["logs.events"]}
    assert emu.rows("logs.events") == [dict(null, id=1, name="a"), dict(null, id=9, name="zz")]


# ------------------------------------------------------------------ faults

@with_emu
def test_fault_running_reports_label_running_once(emu):
    emu.faults(mode="running")
    r = stream_load(emu, [ROW], "run1")
    j = r.json()
    assert r.trace == [307, 200], r.trace
    assert j["Status"] == "Label Already Exists" and j["ExistingJobStatus"] == "RUNNING", j
    assert emu.count("logs.events") == 0
    j = stream_load(emu, [ROW], "run1").json()
    assert j["Status"] == "Success", j


@with_emu
def test_fault_hang_holds_load_and_label_is_running(emu):
    emu.faults(mode="hang", seconds=1.5)
    out = {}
    t = threading.Thread(target=lambda: out.update(r=stream_load(emu, [ROW], "slow")))
    t0 = time.time()
    t.start()
    wait_until(lambda: any(l["status"] == "RUNNING" for l in json.loads(emu_get(emu, "/_emu/labels"))),
               timeout=5, what="label RUNNING")
    j = stream_load(emu, [ROW], "slow").json()
    assert j["Status"] == "Label Already Exists" and j["ExistingJobStatus"] == "RUNNING", j
    t.join(10)
    assert time.time() - t0 >= 1.4
    assert out["r"].json()["Status"] == "Success", out["r"].body
    j = stream_load(emu, [ROW], "slow").json()
    assert j["ExistingJobStatus"] == "FINISHED", j
    assert emu.count("logs.events") == 1


@with_emu
def test_fault_clear_ends_a_hang(emu):
    emu.faults(mode="hang", seconds=30, count=-1)
    out = {}
    t = threading.Thread(target=lambda: out.update(r=stream_load(emu, [ROW], "h")))
    t.start()
    wait_until(lambda: json.loads(emu_get(emu, "/_emu/labels")), timeout=5, what="load started")
    t0 = time.time()
    emu.faults(mode="clear")
    t.join(10)
    assert time.time() - t0 < 5 and out["r"].json()["Status"] == "Success"
    assert json.loads(emu_get(emu, "/_emu/faults")) == []


@with_emu
def test_fault_refuse_resets_connections_on_both_ports(emu):
    emu.faults(mode="refuse", count=2)
    for _ in range(2):
        try:
            r = stream_load(emu, [ROW], "r1")
            raise AssertionError("expected a dropped connection, got %r" % r.body)
        except (ConnectionError, OSError):
            pass
    assert emu.count("logs.events") == 0  # /_emu/ is never refused
    emu.faults(mode="refuse", port="be")
    try:
        stream_load(emu, [ROW], "r1")
        raise AssertionError("expected the BE connection to be reset")
    except (ConnectionError, OSError):
        pass
    assert stream_load(emu, [ROW], "r1").json()["Status"] == "Success"


@with_emu
def test_fault_503(emu):
    emu.faults(mode="503")
    r = stream_load(emu, [ROW], "u1")
    assert r.status == 503 and r.trace == [307, 503], (r.status, r.trace)
    assert stream_load(emu, [ROW], "u1").json()["Status"] == "Success"
    emu.faults(mode="503", port="fe")
    r = stream_load(emu, [ROW], "u2")
    assert r.status == 503 and r.trace == [503], r.trace
    assert emu.count("logs.events") == 1


@with_emu
def test_fault_hang_at_fe_delays_the_redirect(emu):
    emu.faults(mode="hang", port="fe", seconds=1)
    t0 = time.time()
    assert stream_load(emu, [ROW], "fh").json()["Status"] == "Success"
    assert time.time() - t0 >= 0.9


@with_emu
def test_fault_publish_timeout_commits(emu):
    emu.faults(mode="publish_timeout")
    j = stream_load(emu, [ROW], "pt").json()
    assert j["Status"] == "Publish Timeout", j
    assert j["Message"] == "transaction commit successfully, BUT data will be visible later", j
    assert emu.count("logs.events") == 1
    j = stream_load(emu, [ROW], "pt").json()
    assert j["Status"] == "Label Already Exists" and j["ExistingJobStatus"] == "FINISHED", j


@with_emu
def test_fault_fail_retryable_then_success_same_label(emu):
    emu.faults(mode="fail_retryable", count=2)
    for _ in range(2):
        j = stream_load(emu, [ROW], "fr").json()
        assert j["Status"] == "Fail" and "too many versions" in j["Message"], j
    assert emu.count("logs.events") == 0
    assert stream_load(emu, [ROW], "fr").json()["Status"] == "Success"
    emu.faults(mode="fail_retryable", message="memory limit exceeded")
    j = stream_load(emu, [ROW], "fr2").json()
    assert j["Message"] == "memory limit exceeded", j


@with_emu
def test_fault_drop_mid_body_commits_nothing(emu):
    emu.faults(mode="drop_mid_body")
    body = body_of([dict(ROW, id=i) for i in range(2000)])
    try:
        r = stream_load(emu, body, "dm")
        raise AssertionError("expected a dropped connection, got %r" % r.body)
    except (ConnectionError, OSError):
        pass
    assert emu.count("logs.events") == 0
    j = stream_load(emu, body, "dm").json()
    assert j["Status"] == "Success" and j["NumberLoadedRows"] == 2000, j


@with_emu
def test_fault_commit_then_drop_then_resend_is_finished_once(emu):
    emu.faults(mode="commit_then_drop")
    rows = [dict(ROW, id=i) for i in range(10)]
    try:
        r = stream_load(emu, rows, "lost_reply")
        raise AssertionError("expected no reply, got %r" % r.body)
    except (ConnectionError, OSError):
        pass
    assert emu.count("logs.events") == 10  # committed although the reply was lost
    j = stream_load(emu, rows, "lost_reply").json()
    assert j["Status"] == "Label Already Exists" and j["ExistingJobStatus"] == "FINISHED", j
    assert emu.count("logs.events") == 10
    st = loads(emu)
    assert st["by_status"]["committed, reply dropped"] == 1, st
    assert st["by_status"]["Label Already Exists/FINISHED"] == 1, st


@with_emu
def test_fault_queue_runs_in_order_and_rejects_bad_specs(emu):
    st, _, body = http_request(emu.url + "/_emu/faults", "POST", json.dumps(
        [{"mode": "fail_retryable"}, {"mode": "running"}, {"mode": "publish_timeout"}]))
    assert st == 200 and len(json.loads(body)["queue"]) == 3, body
    assert stream_load(emu, [ROW], "q").json()["Status"] == "Fail"
    assert stream_load(emu, [ROW], "q").json()["ExistingJobStatus"] == "RUNNING"
    assert stream_load(emu, [ROW], "q").json()["Status"] == "Publish Timeout"
    assert stream_load(emu, [ROW], "q2").json()["Status"] == "Success"
    for bad in ({"mode": "explode"}, {"mode": "hang", "count": 0}, {"mode": "running", "port": "fe"}):
        st, _, body = http_request(emu.url + "/_emu/faults", "POST", json.dumps(bad))
        assert st == 400, (bad, st, body)


# ------------------------------------------------------------------ emulator endpoints

@with_emu
def test_emu_endpoints_count_rows_sql_delete_loads(emu):
    rows = [dict(ROW, id=i) for i in range(6)]
    assert stream_load(emu, rows[:3], "e1").json()["Status"] == "Success"
    assert stream_load(emu, rows[3:], "e2").json()["Status"] == "Success"
    assert emu.count("logs.events") == 6 and emu.count("logs.strict") == 0
    assert [r["id"] for r in emu.rows("logs.events")] == list(range(6))
    meta = [json.loads(l) for l in emu_get(emu, "/_emu/rows?table=logs.events&meta=1").splitlines()]
    assert [r["_label"] for r in meta] == ["e1"] * 3 + ["e2"] * 3, meta
    st, _, body = http_request(emu.url + "/_emu/sql", "POST",
                               'SELECT id, json_extract(attrs, \'$.k[1]\') AS k FROM "logs.events" '
                               'WHERE id >= 4 ORDER BY id')
    assert st == 200, body
    assert [json.loads(l) for l in body.decode().splitlines()] == [{"id": 4, "k": 2}, {"id": 5, "k": 2}]
    for bad in ('DELETE FROM "logs.events"', "SELECT * FROM nope", 'WITH x AS (SELECT 1) '
                'DELETE FROM "logs.events"'):
        st, _, body = http_request(emu.url + "/_emu/sql", "POST", bad)
        assert st == 400, (bad, st, body)
    assert emu.count("logs.events") == 6
    st, _, body = http_request(emu.url + "/_emu/rows?table=logs.events&where=" +
                               urllib.parse.quote("id % 2 = 0"), "DELETE")
    assert st == 200 and json.loads(body) == {"deleted": 3}, body
    assert [r["id"] for r in emu.rows("logs.events")] == [1, 3, 5]
    st, _, _ = http_request(emu.url + "/_emu/count?table=logs.nope")
    assert st == 400
    st, _, body = http_request(emu.be_url + "/_emu/health")  # also on the BE port
    assert st == 200 and json.loads(body) == {"ok": True}
    st = loads(emu)
    assert st["attempts"] == 2 and st["committed"] == 2 and st["failed"] == 0, st
    assert st["fe"]["redirects"] == 2 and [r["label"] for r in st["recent"]] == ["e1", "e2"], st


def test_labels_and_rows_survive_restart():
    tmp = TempDir("sr-emu-")
    emu = start(tmp)
    try:
        assert stream_load(emu, [ROW], "keep").json()["Status"] == "Success"
        emu.stop()
        emu.start()
        j = stream_load(emu, [ROW], "keep").json()
        assert j["Status"] == "Label Already Exists" and j["ExistingJobStatus"] == "FINISHED", j
        assert emu.count("logs.events") == 1
        assert stream_load(emu, [ROW], "next").json()["TxnId"] > j["TxnId"]
    finally:
        emu.stop()
        tmp.close()


@with_emu
def test_concurrent_loads(emu):
    res = []

    def worker(i):
        res.append(stream_load(emu, [dict(ROW, id=i * 100 + k) for k in range(50)], "c_%d" % i).json())
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    assert sorted(r["Status"] for r in res) == ["Success"] * 8, res
    assert emu.count("logs.events") == 400


if __name__ == "__main__":
    harness.run_tests(globals())
