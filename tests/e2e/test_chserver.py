"""test_chserver.py - the modern ClickHouse engine's test server (tests/support/chserver) and
the TensorZero fixtures (tests/fixtures/tensorzero): the server speaks ClickHouse's HTTP
interface the way sluice and TensorZero's gateway need it, and the fixtures' requests land
on both engines (schema_modern.sql on chDB's 26.x, schema_18.sql on Debian's 18.16)."""
import base64
import gzip
import json
import os
import random
import sys
import threading
import urllib.parse
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

sys.path.insert(0, os.path.join(harness.SRC, "tests", "fixtures", "tensorzero"))
import tz  # noqa: E402

DB = "tz"


def url(server, **params):
    return server.url + "/?" + urllib.parse.urlencode(params)


def post(server, sql, body=None, headers=None, **params):
    if body is not None:
        params["query"] = sql
        data = body
    else:
        data = sql
    return harness.http_request(url(server, **params), "POST", data, headers or {})


def rows_of(text):
    return [json.loads(l) for l in text.splitlines() if l.strip()]


def select_rows(server, sql):
    return rows_of(server.query(sql, output_format_json_quote_64bit_integers=1))


def start(name="ch", users=None):
    td = harness.TempDir("sluice-chserver-")
    return td, harness.ChServer(td.sub(name), users=users)


# Columns that are String / Nullable(String) / Array(String) in the modern schema and get
# nested JSON from the gateway: the engine stores the JSON text.
def check_row(table, sent, stored):
    for k, v in sent.items():
        got = stored.get(k)
        if isinstance(v, list) and k in ("dynamic_tools", "dynamic_provider_tools"):
            assert [json.loads(x) for x in got] == v, (table, k, got, v)
        elif k == "tags":
            assert got == v, (table, k, got, v)
        elif isinstance(v, (dict, list)):
            assert isinstance(got, str) and json.loads(got) == v, (table, k, got, v)
        elif k == "cost":
            assert abs(float(got) - v) < 1e-12, (table, k, got, v)
        else:
            assert got == v, (table, k, got, v)


def test_ping_and_version():
    td, ch = start()
    try:
        st, _, body = harness.http_request(ch.url + "/ping")
        assert st == 200 and body == b"Ok.\n", (st, body)
        st, h, body = harness.http_request(url(ch, query="SELECT version()"))
        assert st == 200, body
        assert body.decode().startswith("26."), body
        summary = json.loads(h["x-clickhouse-summary"])
        assert all(isinstance(v, str) for v in summary.values()), summary
        for k in ("read_rows", "read_bytes", "written_rows", "written_bytes", "total_rows_to_read",
                  "result_rows", "result_bytes", "elapsed_ns"):
            assert k in summary, summary
        assert h["x-clickhouse-format"] == "TabSeparated", h
        assert h.get("x-clickhouse-query-id"), h
        st, h, _ = harness.http_request(url(ch, query="SELECT 1", query_id="my-query-1"))
        assert h["x-clickhouse-query-id"] == "my-query-1", h
    finally:
        ch.stop()
        td.close()


def test_tensorzero_schema_and_gateway_inserts():
    td, ch = start()
    try:
        tz.create_schema(ch.url, DB)
        tables = set(ch.query("SELECT name FROM system.tables WHERE database = '%s'" % DB).split())
        for t in ("ChatInference", "JsonInference", "ModelInference", "BooleanMetricFeedback",
                  "FloatMetricFeedback", "CommentFeedback", "DemonstrationFeedback",
                  "StaticEvaluationHumanFeedback", "ModelInferenceCache", "InferenceById",
                  "ChatInferenceByIdView", "JsonInferenceByIdView"):
            assert t in tables, (t, tables)
        rng = random.Random(7)
        infs = [tz.make_inference(rng, DB, kind="chat"),
                tz.make_inference(rng, DB, kind="json"),
                tz.make_inference(rng, DB, kind="chat", payload_bytes=3 << 20)]
        for inf in infs:
            # the gateway sends the two requests concurrently
            results = [None, None]

            def send(i, r):
                results[i] = r.send(ch.url)
            ths = [threading.Thread(target=send, args=(i, r)) for i, r in enumerate(inf["requests"])]
            for t in ths:
                t.start()
            for t in ths:
                t.join()
            for (st, h, body), r in zip(results, inf["requests"]):
                assert st == 200, (r, st, body)
                assert body.startswith(b"INSERT") is False
                s = json.loads(h["x-clickhouse-summary"])
                # the inference table's MV writes into InferenceById too
                assert int(s["written_rows"]) >= 1, s
        assert infs[2]["requests"][0].body.count(b"\n") == 3  # head lines + 1 row, no trailing newline
        assert len(infs[2]["requests"][0].body) > 6 << 20
        fbs = []
        for kind in tz.FEEDBACK_TABLES:
            r = tz.feedback_request(kind, infs[0]["inference_id"], DB, rng=rng)
            st, _, body = r.send(ch.url)
            assert st == 200, (kind, st, body)
            fbs.append(r)
        # identical values
        for inf in infs:
            for table, row in inf["rows"].items():
                got = select_rows(ch, "SELECT * FROM %s.%s WHERE id = '%s' FORMAT JSONEachRow"
                                  % (DB, table, row["id"]))
                assert len(got) == 1, (table, got)
                check_row(table, row, got[0])
        for r in fbs:
            row = r.rows[0]
            key = "feedback_id" if r.table == "StaticEvaluationHumanFeedback" else "id"
            got = select_rows(ch, "SELECT * FROM %s.%s WHERE %s = '%s' FORMAT JSONEachRow"
                              % (DB, r.table, key, row[key]))
            assert len(got) == 1, (r.table, got)
            check_row(r.table, row, got[0])
        # the feedback endpoint's existence check, exactly as the gateway sends it
        for inf in infs:
            st, h, body = tz.inference_by_id_request(inf["inference_id"], DB).send(ch.url)
            assert st == 200, body
            got = rows_of(body.decode())
            assert got == [{"function_name": inf["function_name"], "function_type": inf["function_type"],
                            "variant_name": inf["variant_name"], "episode_id": inf["episode_id"]}], got
            assert h["x-clickhouse-format"] == "JSONEachRow", h
        st, _, body = tz.inference_by_id_request(tz.uuid7(), DB).send(ch.url)
        assert st == 200 and body == b"", (st, body)
    finally:
        ch.stop()
        td.close()


def test_url_settings_apply_per_request():
    td, ch = start()
    try:
        ch.query("CREATE TABLE t (a UInt32, s String) ENGINE = MergeTree ORDER BY a")
        strict = {"input_format_skip_unknown_fields": "0", "input_format_null_as_default": "0"}
        st, h, body = post(ch, "INSERT INTO t FORMAT JSONEachRow", b'{"a":1,"s":"x","zz":1}', **strict)
        assert st == 400 and h["x-clickhouse-exception-code"] == "117", (st, h, body)
        assert b"Unknown field" in body and b"(INCORRECT_DATA)" in body, body
        st, h, body = post(ch, "INSERT INTO t FORMAT JSONEachRow", b'{"a":2,"s":null}', **strict)
        assert st != 200 and h.get("x-clickhouse-exception-code"), (st, body)
        # the next request without them gets the engine's defaults again
        st, _, body = post(ch, "INSERT INTO t FORMAT JSONEachRow", b'{"a":3,"s":"y","zz":1}\n{"a":4,"s":null}')
        assert st == 200, body
        assert ch.query("SELECT count() FROM t").strip() == "2"
        # SETTINGS in the statement, settings in the URL, an unknown setting (404, 115)
        st, _, body = post(ch, "INSERT INTO t SETTINGS async_insert=1, wait_for_async_insert=1\n"
                               "FORMAT JSONEachRow\n{\"a\":5,\"s\":\"z\"}", async_insert="1")
        assert st == 200, body
        st, h, body = post(ch, "SELECT 1", nosuch_setting="1")
        assert st == 404 and h["x-clickhouse-exception-code"] == "115", (st, body)
        assert ch.query("SELECT toUInt64(getSetting('max_threads'))", max_threads="3").strip() == "3"
        assert ch.query("SELECT toUInt64(getSetting('max_threads'))").strip() != "3"
        # a client's SET / USE lasts its request only
        assert post(ch, "SET max_threads = 3")[0] == 200
        assert ch.query("SELECT toUInt64(getSetting('max_threads'))").strip() != "3"
        ch.query("CREATE DATABASE u")
        assert post(ch, "USE u")[0] == 200
        assert ch.query("SELECT currentDatabase()").strip() == "default"
        # insert_deduplication_token (what sluice's clickhouse sink sends) deduplicates
        ch.query("CREATE TABLE dd (a UInt32) ENGINE = MergeTree ORDER BY a "
                 "SETTINGS non_replicated_deduplication_window = 100")
        for rows in (b'{"a":1}\n{"a":2}', b'{"a":1}\n{"a":2}', b'{"a":3}'):
            st, _, body = post(ch, "INSERT INTO dd FORMAT JSONEachRow", rows,
                               insert_deduplication_token="log1-sink-dd-1-2")
            assert st == 200, body
        assert ch.query("SELECT count() FROM dd").strip() == "2"
        # 64-bit integers quoted only when asked
        assert ch.query("SELECT toUInt64(5) AS x FORMAT JSONEachRow").strip() == '{"x":5}'
        assert ch.query("SELECT toUInt64(5) AS x FORMAT JSONEachRow",
                        output_format_json_quote_64bit_integers=1).strip() == '{"x":"5"}'
    finally:
        ch.stop()
        td.close()


def test_query_forms_database_params_formats():
    td, ch = start()
    try:
        ch.query("CREATE DATABASE d1")
        ch.query("CREATE TABLE d1.t (a UInt32, s String) ENGINE = MergeTree ORDER BY a")
        # statement in the query param, rows in the body
        st, _, body = post(ch, "INSERT INTO t FORMAT JSONEachRow", b'{"a":1,"s":"p"}', database="d1")
        assert st == 200, body
        # statement and rows in the body, database from the header
        st, _, body = post(ch, 'INSERT INTO t FORMAT JSONEachRow\n{"a":2,"s":"b"}',
                           headers={"X-ClickHouse-Database": "d1"})
        assert st == 200, body
        # query param first, then the body
        st, _, body = post(ch, "INSERT INTO d1.t VALUES", b"(3, 'v'), (4, 'w')")
        assert st == 200, body
        # GET with the query in the URL; default_format; the database is per request
        st, h, body = harness.http_request(url(ch, query="SELECT a, s FROM t ORDER BY a", database="d1",
                                               default_format="JSONEachRow"))
        assert st == 200, body
        assert rows_of(body.decode()) == [{"a": 1, "s": "p"}, {"a": 2, "s": "b"}, {"a": 3, "s": "v"},
                                          {"a": 4, "s": "w"}], body
        assert h["x-clickhouse-format"] == "JSONEachRow"
        assert ch.query("SELECT currentDatabase()").strip() == "default"
        st, h, body = post(ch, "SELECT currentDatabase()", database="nosuchdb")
        assert st == 404 and h["x-clickhouse-exception-code"] == "81", (st, body)
        # server-side parameters
        out = ch.query("SELECT s FROM d1.t WHERE a = {a:UInt32} AND s = {s:String}",
                       param_a="3", param_s="v")
        assert out == "v\n", out
        out = ch.query("SELECT {t:String} AS x FORMAT JSONEachRow", param_t="it's a\\tb")
        assert json.loads(out) == {"x": "it's a\tb"}, out  # values in the escaped text form
        st, _, body = post(ch, "INSERT INTO d1.t VALUES ({a:UInt32}, {s:String})", param_a="9", param_s="q")
        assert st == 200, body
        assert ch.query("SELECT s FROM d1.t WHERE a = 9") == "q\n"
        # external data is refused in ClickHouse's shape
        st, h, body = harness.http_request(
            url(ch, query="SELECT * FROM new_data"), "POST",
            b"--XX\r\nContent-Disposition: form-data; name=\"new_data\"; filename=\"d\"\r\n\r\n1\r\n--XX--\r\n",
            {"Content-Type": "multipart/form-data; boundary=XX"})
        assert st == 501 and h["x-clickhouse-exception-code"] == "48", (st, body)
        assert body.startswith(b"Code: 48. DB::Exception: ") and b"(NOT_IMPLEMENTED)" in body, body
    finally:
        ch.stop()
        td.close()


def test_credentials():
    td, ch = start(users="default:,alice:s3cr:et")
    try:
        sql = "SELECT currentUser() != ''"
        ok = [
            ({"X-ClickHouse-User": "alice", "X-ClickHouse-Key": "s3cr:et"}, {}),
            ({"Authorization": "Basic " + base64.b64encode(b"alice:s3cr:et").decode()}, {}),
            ({}, {"user": "alice", "password": "s3cr:et"}),
            ({}, {}),  # default user, empty password
        ]
        for headers, params in ok:
            st, _, body = post(ch, sql, headers=headers, **params)
            assert st == 200, (headers, params, st, body)
        bad = [
            ({"X-ClickHouse-User": "alice", "X-ClickHouse-Key": "wrong"}, {}),
            ({"Authorization": "Basic " + base64.b64encode(b"alice:wrong").decode()}, {}),
            ({}, {"user": "alice", "password": "wrong"}),
            ({}, {"user": "bob"}),
            ({"X-ClickHouse-User": "alice", "X-ClickHouse-Key": "s3cr:et"}, {"user": "alice"}),
        ]
        for headers, params in bad:
            st, h, body = post(ch, sql, headers=headers, **params)
            # exceptionCodeToHTTPStatus: AUTHENTICATION_FAILED -> 403 Forbidden
            assert st == 403, (headers, params, st, body)
            assert h["x-clickhouse-exception-code"] == "516", h
            assert body.startswith(b"Code: 516. DB::Exception: ") and b"(AUTHENTICATION_FAILED)" in body, body
    finally:
        ch.stop()
        td.close()


def test_errors_carry_code_and_engine_message():
    td, ch = start()
    try:
        st, h, body = post(ch, "SELECT * FROM nosuch_table")
        assert st == 404 and h["x-clickhouse-exception-code"] == "60", (st, h, body)
        text = body.decode()
        assert text.startswith("Code: 60. DB::Exception: ") and "(UNKNOWN_TABLE)" in text, text
        assert "(version 26." in text and text.endswith("\n"), text
        st, h, body = post(ch, "SELEC 1")
        assert st == 400 and h["x-clickhouse-exception-code"] == "62", (st, body)
        ch.query("CREATE TABLE n (a UInt32) ENGINE = MergeTree ORDER BY a")
        st, h, body = post(ch, "INSERT INTO n FORMAT JSONEachRow", b'{"a":"x"}')
        assert st == 400 and h["x-clickhouse-exception-code"] in ("27", "117", "6", "72"), (st, body)
        assert json.loads(h["x-clickhouse-summary"])["written_rows"] == "0"
        st, _, body = harness.http_request(ch.url + "/nosuch")
        assert st == 404, body
    finally:
        ch.stop()
        td.close()


def test_compressed_bodies():
    td, ch = start()
    try:
        ch.query("CREATE TABLE c (a UInt32, s String) ENGINE = MergeTree ORDER BY a")
        rows = "\n".join(json.dumps({"a": i, "s": "x" * (i % 50)}) for i in range(5000))
        body = ("INSERT INTO c FORMAT JSONEachRow\n" + rows).encode()
        for enc, data in (("gzip", gzip.compress(body)), ("deflate", zlib.compress(body))):
            st, h, out = harness.http_request(ch.url + "/", "POST", data, {"Content-Encoding": enc})
            assert st == 200, (enc, out)
            assert json.loads(h["x-clickhouse-summary"])["written_rows"] == "5000", h
        assert ch.query("SELECT count() FROM c").strip() == "10000"
        st, h, out = harness.http_request(ch.url + "/", "POST", b"garbage", {"Content-Encoding": "gzip"})
        assert st != 200 and h.get("x-clickhouse-exception-code"), (st, out)
    finally:
        ch.stop()
        td.close()


def test_concurrent_requests_are_serialized_safely():
    td, ch = start()
    try:
        ch.query("CREATE TABLE k (a UInt32, s String) ENGINE = MergeTree ORDER BY a")
        ch.query("CREATE DATABASE other")
        ch.query("CREATE TABLE other.k (a UInt32, s String) ENGINE = MergeTree ORDER BY a")
        errors = []

        def worker(w):
            for i in range(20):
                db = "other" if (w + i) % 2 else "default"
                body = "\n".join(json.dumps({"a": w * 1000 + i * 10 + j, "s": db}) for j in range(10))
                st, _, out = post(ch, "INSERT INTO k FORMAT JSONEachRow", body.encode(), database=db,
                                  input_format_skip_unknown_fields="0")
                if st != 200:
                    errors.append(out)
        ths = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        assert not errors, errors[:3]
        assert ch.query("SELECT count(), countIf(s = 'default') FROM k").split() == ["800", "800"]
        assert ch.query("SELECT count(), countIf(s = 'other') FROM other.k").split() == ["800", "800"]
    finally:
        ch.stop()
        td.close()


def test_restart_on_same_data_dir_keeps_data():
    td, ch = start()
    try:
        tz.create_schema(ch.url, DB)
        rng = random.Random(3)
        infs = [tz.make_inference(rng, DB) for _ in range(5)]
        for inf in infs:
            for r in inf["requests"]:
                st, _, body = r.send(ch.url)
                assert st == 200, body
        ch.kill()
        ch.start()
        assert ch.query("SELECT count() FROM %s.ChatInference" % DB).strip() == "5"
        assert ch.query("SELECT count() FROM %s.ModelInference" % DB).strip() == "5"
        st, _, body = tz.inference_by_id_request(infs[4]["inference_id"], DB).send(ch.url)
        assert st == 200 and rows_of(body.decode())[0]["episode_id"] == infs[4]["episode_id"], body
        # and it keeps taking writes
        for r in tz.make_inference(rng, DB)["requests"]:
            assert r.send(ch.url)[0] == 200
        assert ch.query("SELECT count() FROM %s.InferenceById" % DB).strip() == "6"
    finally:
        ch.stop()
        td.close()


def test_reduced_schema_on_clickhouse_18():
    td = harness.TempDir("sluice-ch18-")
    ch = harness.ClickHouse18(td.sub("ch18"))
    try:
        tz.create_schema(ch.url, DB, "schema_18.sql")
        rng = random.Random(5)
        infs = [tz.make_inference(rng, DB, kind=k, variant="ch18") for k in ("chat", "json")]
        for inf in infs:
            for r in inf["requests"]:
                assert b"SETTINGS" not in r.body.split(b"\n{")[0]
                st, _, body = r.send(ch.url)
                assert st == 200, (r, st, body)
        for kind in tz.FEEDBACK_TABLES:
            st, _, body = tz.feedback_request(kind, infs[0]["inference_id"], DB, variant="ch18",
                                              rng=rng).send(ch.url)
            assert st == 200, (kind, st, body)
        for inf in infs:
            st, _, body = tz.inference_by_id_request(inf["inference_id"], DB, variant="ch18").send(ch.url)
            assert st == 200, body
            got = rows_of(body.decode())
            assert got and got[0]["function_type"] == inf["function_type"], got
            row = inf["rows"]["ChatInference" if inf["function_type"] == "chat" else "JsonInference"]
            stored = rows_of(ch.query("SELECT input, tags FROM %s.%s WHERE id = '%s' FORMAT JSONEachRow"
                                      % (DB, "ChatInference" if inf["function_type"] == "chat"
                                         else "JsonInference", row["id"])))[0]
            assert json.loads(stored["input"]) == row["input"] and json.loads(stored["tags"]) == row["tags"]
        # the gateway's exact shape is what 18.16 refuses (tensorzero.md §5)
        st, _, body = tz.make_inference(rng, DB)["requests"][1].send(ch.url)
        assert st != 200 and b"Code: " in body, (st, body)
    finally:
        ch.stop()
        td.close()


if __name__ == "__main__":
    harness.run_tests(globals())
