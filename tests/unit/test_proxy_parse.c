/* test_proxy_parse.c — the proxy's parsers: INSERT statement recognition, JSONEachRow
 * validation/normalisation, Content-Encoding decoding, credentials and URL parameters. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>
#include <zstd.h>

#include <http_parser.h>

#include "proxy/proxy_internal.h"

static proxy_stmt_t st;

static int parse(const char *s)
{
    return proxy_stmt_parse(s, strlen(s), &st);
}

static void test_stmt_simple_insert_is_recognised(void **state)
{
    (void)state;
    const char *q = "INSERT INTO t FORMAT JSONEachRow";
    assert_int_equal(parse(q), PROXY_STMT_INSERT);
    assert_null(st.db);
    assert_string_equal(st.table, "t");
    assert_null(st.columns);
    assert_int_equal(st.n_settings, 0);
    assert_int_equal(st.data_off, strlen(q));
}

static void test_stmt_db_columns_settings_comments(void **state)
{
    (void)state;
    const char *q = "  insert /* c */ into `my db`.\"Ta\"\"ble\" -- x\n ( a ,`b c`, n.x)\n"
                    " SETTINGS async_insert=1, wait_for_async_insert = 0, s='it''s', f=-1.5e3\n"
                    " format JSONEachRow\n{\"a\":1}";
    assert_int_equal(parse(q), PROXY_STMT_INSERT);
    assert_string_equal(st.db, "my db");
    assert_string_equal(st.table, "Ta\"ble");
    assert_string_equal(st.columns, "a, `b c`, n.x");
    assert_int_equal(st.n_settings, 4);
    assert_string_equal(st.settings[0].key, "async_insert");
    assert_string_equal(st.settings[0].value, "1");
    assert_string_equal(st.settings[1].value, "0");
    assert_string_equal(st.settings[2].value, "it's");
    assert_string_equal(st.settings[3].value, "-1.5e3");
    assert_memory_equal(q + st.data_off, "{\"a\":1}", 7); /* after the first newline */
}

static void test_stmt_tensorzero_body_head(void **state)
{
    (void)state;
    const char *q = "INSERT INTO ChatInference\nSETTINGS async_insert=1, wait_for_async_insert=1\n"
                    "FORMAT JSONEachRow\n{\"id\":\"x\"}";
    assert_int_equal(parse(q), PROXY_STMT_INSERT);
    assert_string_equal(st.table, "ChatInference");
    assert_int_equal(st.n_settings, 2);
}

static void test_stmt_backtick_escapes_and_table_keyword(void **state)
{
    (void)state;
    assert_int_equal(parse("INSERT INTO TABLE `a\\`b` FORMAT JSONEachRow"), PROXY_STMT_INSERT);
    assert_string_equal(st.table, "a`b");
    assert_int_equal(parse("INSERT INTO table FORMAT JSONEachRow"), PROXY_STMT_INSERT);
    assert_string_equal(st.table, "table");
    assert_int_equal(parse("INSERT INTO d.t FORMAT jsoneachrow"), PROXY_STMT_INSERT);
    assert_int_equal(parse("INSERT INTO t SETTINGS a=1,a=2 FORMAT JSONEachRow"), PROXY_STMT_INSERT);
    assert_int_equal(st.n_settings, 1);
    assert_string_equal(st.settings[0].value, "2");
}

static void test_stmt_other_formats_and_values_are_inserts(void **state)
{
    (void)state;
    assert_int_equal(parse("INSERT INTO t FORMAT TabSeparated"), PROXY_STMT_INSERT);
    assert_string_equal(st.format->name, "TabSeparated");
    assert_int_equal(parse("INSERT INTO t FORMAT jsoncompacteachrow"), PROXY_STMT_INSERT);
    assert_string_equal(st.format->name, "JSONCompactEachRow"); /* canonical spelling */
    assert_int_equal(parse("INSERT INTO t FORMAT NDJSON"), PROXY_STMT_INSERT);
    assert_string_equal(st.format->name, "NDJSON");
    const char *q = "INSERT INTO t (a) VALUES (1), (2)";
    assert_int_equal(parse(q), PROXY_STMT_INSERT);
    assert_string_equal(st.format->name, "Values");
    assert_string_equal(q + st.data_off, " (1), (2)");
    assert_int_equal(parse("INSERT INTO t FORMAT RowBinary"), PROXY_STMT_INSERT);
    assert_int_equal(st.format->kind, PROXY_FMT_BINARY);
}

static void test_stmt_non_matching_pass_through(void **state)
{
    (void)state;
    assert_int_equal(parse("SELECT 1"), PROXY_STMT_OTHER);
    assert_int_equal(parse("CREATE TABLE t (a UInt8) ENGINE=Memory"), PROXY_STMT_OTHER);
    assert_int_equal(parse("INSERT INTO t SELECT * FROM new_data"), PROXY_STMT_OTHER);
    assert_string_equal(st.table, "t"); /* counted per table as unbuffered */
    assert_non_null(st.unbuffered);
    assert_int_equal(parse("INSERT INTO t FORMAT JSONEachRowWithProgress"), PROXY_STMT_OTHER);
    assert_non_null(st.unbuffered);
    assert_int_equal(parse("INSERT INTO t FORMAT Parquet"), PROXY_STMT_OTHER);
    assert_int_equal(parse("INSERT INTO FUNCTION remote('h', d.t) FORMAT JSONEachRow"),
                     PROXY_STMT_OTHER);
    assert_int_equal(parse("INSERTX INTO t FORMAT JSONEachRow"), PROXY_STMT_OTHER);
    assert_int_equal(parse("WITH 1 AS x SELECT x"), PROXY_STMT_OTHER);
    assert_int_equal(parse(""), PROXY_STMT_OTHER);
}

static void test_stmt_syntax_errors_and_incomplete(void **state)
{
    (void)state;
    assert_int_equal(parse("INSERT INTO FORMAT JSONEachRow"), PROXY_STMT_ESYNTAX);
    assert_int_equal(parse("INSERT INTO (a) FORMAT JSONEachRow"), PROXY_STMT_ESYNTAX);
    assert_true(strstr(st.err, "table") != NULL);
    assert_int_equal(parse("INSERT INTO t (a, FORMAT JSONEachRow"), PROXY_STMT_ESYNTAX);
    assert_int_equal(parse("INSERT INTO t SETTINGS FORMAT JSONEachRow"), PROXY_STMT_ESYNTAX);
    assert_int_equal(parse("INSERT INTO t FORMAT"), PROXY_STMT_INCOMPLETE);
    assert_int_equal(parse("INSERT INTO"), PROXY_STMT_INCOMPLETE);
    assert_int_equal(parse("INSERT INTO t"), PROXY_STMT_INCOMPLETE);
    assert_int_equal(parse("INSERT INTO `t"), PROXY_STMT_INCOMPLETE);
    assert_int_equal(parse("INSERT INTO t /* x"), PROXY_STMT_INCOMPLETE);
    assert_int_equal(parse("INS"), PROXY_STMT_INCOMPLETE);
    assert_int_equal(parse("INSERT INTO ``.t FORMAT JSONEachRow"), PROXY_STMT_ESYNTAX);
    char big[600];
    memset(big, 'a', sizeof big);
    memcpy(big, "INSERT INTO ", 12);
    big[sizeof big - 1] = '\0';
    assert_int_equal(parse(big), PROXY_STMT_ESYNTAX); /* name longer than PROXY_NAME_MAX */
}

/* ---- rows ---- */

static int rows(const char *s, proxy_rows_t *r)
{
    static char buf[1 << 16];
    size_t n = strlen(s);
    memcpy(buf, s, n);
    return proxy_rows_parse(buf, n, n, r);
}

static void expect_rows(const char *in, const char *want, uint32_t n)
{
    proxy_rows_t r;
    assert_int_equal(rows(in, &r), 0);
    assert_int_equal(r.n_rows, n);
    assert_int_equal(r.len, strlen(want));
    assert_memory_equal(r.data, want, r.len);
    proxy_rows_free(&r);
}

static void expect_bad(const char *in, uint64_t row)
{
    proxy_rows_t r;
    assert_int_equal(rows(in, &r), -EINVAL);
    assert_int_equal(r.bad_row, row);
    assert_true(r.err[0] != '\0');
}

static void test_rows_canonical_input_is_not_copied(void **state)
{
    (void)state;
    char in[] = "{\"a\":1}\n{\"b\":[1,2,{\"c\":null}]}\n";
    proxy_rows_t r;
    assert_int_equal(proxy_rows_parse(in, strlen(in), sizeof in, &r), 0);
    assert_ptr_equal(r.data, in);
    assert_null(r.owned);
    assert_int_equal(r.n_rows, 2);
}

static void test_rows_missing_final_newline_added_in_place(void **state)
{
    (void)state;
    char in[32] = "{\"a\":1}\n{\"a\":2}";
    size_t n = strlen(in);
    proxy_rows_t r;
    assert_int_equal(proxy_rows_parse(in, n, sizeof in, &r), 0);
    assert_ptr_equal(r.data, in);
    assert_int_equal(r.len, n + 1);
    assert_memory_equal(r.data, "{\"a\":1}\n{\"a\":2}\n", n + 1);
    /* Without room, a copy is made. */
    expect_rows("{\"a\":1}\n{\"a\":2}", "{\"a\":1}\n{\"a\":2}\n", 2);
}

static void test_rows_normalised_forms(void **state)
{
    (void)state;
    expect_rows("[{\"a\":1},{\"a\":2}]", "{\"a\":1}\n{\"a\":2}\n", 2);
    expect_rows(" [ {\"a\":1} ,\n {\"a\":2} ] \n", "{\"a\":1}\n{\"a\":2}\n", 2);
    expect_rows("{\"a\":1} {\"a\":2}{\"a\":3}", "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n", 3);
    expect_rows("\n\n{\"a\":1}\r\n\r\n{\"a\":2}\n\n", "{\"a\":1}\n{\"a\":2}\n", 2);
    expect_rows("{\n  \"a\": 1,\r\n  \"b\": \"x\"\n}\n", "{   \"a\": 1,    \"b\": \"x\" }\n", 1);
    expect_rows("{\"a\":1},{\"a\":2}", "{\"a\":1}\n{\"a\":2}\n", 2);
    /* adjacent objects grow by one byte each (found by fuzz_rows: heap overflow) */
    expect_rows("{}{}{}{}{}{}", "{}\n{}\n{}\n{}\n{}\n{}\n", 6);
    expect_rows("{\r\r\t\r}{\r\r\r\r}{\r\r\r\r}", "{  \t }\n{    }\n{    }\n", 3);
    expect_rows("\xEF\xBB\xBF{\"a\":1}\n", "{\"a\":1}\n", 1);
    expect_rows("", "", 0);
    expect_rows("  \n ", "", 0);
    expect_rows("[]", "", 0);
    expect_rows("[ ]\n", "", 0);
}

static void test_rows_values_unicode_numbers(void **state)
{
    (void)state;
    expect_rows("{\"u\":\"\\u00e9\\ud83d\\ude00\\\"\\\\\\/\\b\\f\\n\\r\\t\",\"r\":\"\xc3\xa9\"}\n",
                "{\"u\":\"\\u00e9\\ud83d\\ude00\\\"\\\\\\/\\b\\f\\n\\r\\t\",\"r\":\"\xc3\xa9\"}\n",
                1);
    expect_rows("{\"n\":123456789012345678901234567890123456789,\"f\":-0.5e-300,\"z\":0,"
                "\"e\":1E+2,\"t\":true,\"f2\":false,\"x\":null,\"o\":{},\"a\":[]}\n",
                "{\"n\":123456789012345678901234567890123456789,\"f\":-0.5e-300,\"z\":0,"
                "\"e\":1E+2,\"t\":true,\"f2\":false,\"x\":null,\"o\":{},\"a\":[]}\n",
                1);
}

static void test_rows_invalid_inputs_name_the_row(void **state)
{
    (void)state;
    expect_bad("{\"a\":}", 1);
    expect_bad("{\"a\":1}\n{\"a\":1", 2);
    expect_bad("{\"a\":1}\n[1,2]\n", 2);
    expect_bad("{\"a\":1}\n\"x\"\n", 2);
    expect_bad("42", 1);
    expect_bad("{'a':1}", 1);
    expect_bad("{\"a\":01}", 1);
    expect_bad("{\"a\":1.}", 1);
    expect_bad("{\"a\":.5}", 1);
    expect_bad("{\"a\":+1}", 1);
    expect_bad("{\"a\":tru}", 1);
    expect_bad("{\"a\":\"\\x\"}", 1);
    expect_bad("{\"a\":\"\\u12g4\"}", 1);
    expect_bad("{\"a\":\"tab\there\"}", 1);
    expect_bad("{\"a\":1,}", 1);
    expect_bad("{\"a\" 1}", 1);
    expect_bad("{1:2}", 1);
    expect_bad("{\"a\":[1,]}", 1);
    expect_bad("{\"a\":1}}", 2);
    expect_bad("[{\"a\":1},]", 2);
    expect_bad("[{\"a\":1}", 2);
    expect_bad("[{\"a\":1}] x", 2);
    expect_bad("[{\"a\":1} {\"a\":2}]", 2);
    expect_bad("[1]", 1);
    expect_bad("{\"a\":NaN}", 1);
    expect_bad("{\"a\":\"unterminated}", 1);
}

static void test_rows_bad_row_1000(void **state)
{
    (void)state;
    size_t cap = 1000 * 16 + 64;
    char *buf = malloc(cap);
    size_t n = 0;
    for (int i = 1; i <= 1000; i++)
        n += (size_t)sprintf(buf + n, i == 1000 ? "{\"a\":%d,}\n" : "{\"a\":%d}\n", i);
    proxy_rows_t r;
    assert_int_equal(proxy_rows_parse(buf, n, cap, &r), -EINVAL);
    assert_int_equal(r.bad_row, 1000);
    assert_null(r.owned);
    free(buf);
}

static void test_rows_depth_is_bounded(void **state)
{
    (void)state;
    char buf[600];
    size_t n = 0;
    buf[n++] = '{';
    buf[n++] = '"';
    buf[n++] = 'a';
    buf[n++] = '"';
    buf[n++] = ':';
    for (int i = 0; i < 126; i++)
        buf[n++] = '[';
    for (int i = 0; i < 126; i++)
        buf[n++] = ']';
    buf[n++] = '}';
    proxy_rows_t r;
    assert_int_equal(proxy_rows_parse(buf, n, n, &r), 0); /* depth 127 */
    proxy_rows_free(&r);
    n = 0;
    for (int i = 0; i < 200; i++)
        buf[n++] = i == 0 ? '{' : '[';
    buf[1] = '"'; /* keep it an object: {"[[[... is a bad key anyway */
    assert_int_equal(proxy_rows_parse(buf, n, n, &r), -EINVAL);
    n = 0;
    memcpy(buf, "{\"a\":", 5);
    n = 5;
    for (int i = 0; i < 300; i++)
        buf[n++] = '[';
    assert_int_equal(proxy_rows_parse(buf, n, n, &r), -EINVAL);
    assert_non_null(strstr(r.err, "deep"));
}

/* ---- decode ---- */

static size_t gz(const char *in, size_t n, char *out, size_t cap, int window)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, window, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    size_t r = z.total_out;
    deflateEnd(&z);
    return r;
}

static void test_decode_gzip_deflate_zstd(void **state)
{
    (void)state;
    const char *text = "{\"a\":1}\n{\"a\":2}\n";
    size_t tn = strlen(text);
    char c[256], *out;
    size_t cn, on;
    char err[128];
    int windows[] = {16 + 15, 15, -15};
    const char *names[] = {"gzip", "deflate", "deflate"};
    for (int i = 0; i < 3; i++) {
        cn = gz(text, tn, c, sizeof c, windows[i]);
        assert_int_equal(proxy_decode(names[i], c, cn, 1 << 20, &out, &on, err, sizeof err), 0);
        assert_int_equal(on, tn);
        assert_memory_equal(out, text, tn);
        free(out);
    }
    cn = ZSTD_compress(c, sizeof c, text, tn, 3);
    assert_false(ZSTD_isError(cn));
    assert_int_equal(proxy_decode("zstd", c, cn, 1 << 20, &out, &on, err, sizeof err), 0);
    assert_int_equal(on, tn);
    assert_memory_equal(out, text, tn);
    free(out);
    /* identity: no copy */
    assert_int_equal(proxy_decode(NULL, text, tn, 1 << 20, &out, &on, err, sizeof err), 0);
    assert_null(out);
    assert_int_equal(on, tn);
}

static void test_decode_invalid_and_unknown(void **state)
{
    (void)state;
    char *out;
    size_t on;
    char err[128];
    const char junk[] = "this is not compressed at all";
    assert_int_equal(proxy_decode("gzip", junk, sizeof junk, 1 << 20, &out, &on, err, sizeof err),
                     PROXY_DECODE_EINVALID);
    assert_int_equal(proxy_decode("zstd", junk, sizeof junk, 1 << 20, &out, &on, err, sizeof err),
                     PROXY_DECODE_EINVALID);
    assert_int_equal(proxy_decode("br", junk, sizeof junk, 1 << 20, &out, &on, err, sizeof err),
                     PROXY_DECODE_EINVALID);
    assert_int_equal(proxy_decode("lz4", junk, sizeof junk, 1 << 20, &out, &on, err, sizeof err),
                     PROXY_DECODE_EUNSUPPORTED);
    /* truncated gzip */
    char c[256];
    size_t cn = gz("{\"a\":1}\n", 8, c, sizeof c, 31);
    assert_int_equal(proxy_decode("gzip", c, cn - 6, 1 << 20, &out, &on, err, sizeof err),
                     PROXY_DECODE_EINVALID);
}

static void test_decode_bomb_bounded_by_max(void **state)
{
    (void)state;
    size_t n = 8 << 20;
    char *zeros = calloc(1, n);
    size_t cap = n / 100 + 1024;
    char *c = malloc(cap);
    size_t cn = gz(zeros, n, c, cap, 31);
    char *out;
    size_t on;
    char err[128];
    assert_int_equal(proxy_decode("gzip", c, cn, 1 << 20, &out, &on, err, sizeof err),
                     PROXY_DECODE_ETOOBIG);
    cn = ZSTD_compress(c, cap, zeros, n, 1);
    assert_int_equal(proxy_decode("zstd", c, cn, 1 << 20, &out, &on, err, sizeof err),
                     PROXY_DECODE_ETOOBIG);
    assert_int_equal(proxy_decode("zstd", c, cn, n, &out, &on, err, sizeof err), 0);
    assert_int_equal(on, n);
    free(out);
    free(c);
    free(zeros);
}

/* ---- credentials, params ---- */

static void test_creds_three_forms_and_check(void **state)
{
    (void)state;
    proxy_creds_t c;
    assert_int_equal(proxy_creds_from(&c, NULL, NULL, NULL, NULL, NULL), 0);
    assert_string_equal(c.user, "default");
    assert_string_equal(c.password, "");
    assert_int_equal(proxy_creds_from(&c, "Basic dTE6cHc=", NULL, NULL, NULL, NULL), 0); /* u1:pw */
    assert_string_equal(c.user, "u1");
    assert_string_equal(c.password, "pw");
    assert_int_equal(proxy_creds_from(&c, NULL, "u2", "k", NULL, NULL), 0);
    assert_string_equal(c.user, "u2");
    assert_int_equal(proxy_creds_from(&c, NULL, NULL, NULL, "u3", "p3"), 0);
    assert_string_equal(c.password, "p3");
    assert_int_equal(proxy_creds_from(&c, "Basic dTE6cHc=", "u2", "k", NULL, NULL), -1);
    assert_int_equal(proxy_creds_from(&c, "Basic !!!", NULL, NULL, NULL, NULL), -1);

    cfg_user_t users[] = {{"u1", "pw"}, {"default", ""}};
    cfg_proxy_t p = {0};
    assert_int_equal(proxy_creds_from(&c, "Basic dTE6cHc=", NULL, NULL, NULL, NULL), 0);
    assert_int_equal(proxy_auth_check(&p, &c), 0); /* no users configured */
    p.users = users;
    p.n_users = 2;
    assert_int_equal(proxy_auth_check(&p, &c), 0);
    proxy_creds_from(&c, NULL, "u1", "px", NULL, NULL);
    assert_int_equal(proxy_auth_check(&p, &c), -1);
    proxy_creds_from(&c, NULL, NULL, NULL, NULL, NULL);
    assert_int_equal(proxy_auth_check(&p, &c), 0);
    proxy_creds_from(&c, NULL, "nobody", "", NULL, NULL);
    assert_int_equal(proxy_auth_check(&p, &c), -1);
}

static void test_params_decode_and_settings(void **state)
{
    (void)state;
    const char *qs = "query=INSERT%20INTO+t&database=db&async_insert=1&param_x=2&flag&a=%zz";
    proxy_param_t p[PROXY_MAX_PARAMS];
    size_t n;
    char *store;
    assert_int_equal(proxy_params_parse(qs, strlen(qs), p, &n, &store), -1);
    qs = "query=INSERT%20INTO+t&database=db&async_insert=1&param_x=2&flag&database=db2";
    assert_int_equal(proxy_params_parse(qs, strlen(qs), p, &n, &store), 0);
    assert_int_equal(n, 6);
    assert_string_equal(proxy_param_get(p, n, "query"), "INSERT INTO t");
    assert_string_equal(proxy_param_get(p, n, "database"), "db2");
    assert_string_equal(proxy_param_get(p, n, "flag"), "");
    assert_null(proxy_param_get(p, n, "nope"));
    free(store);
    assert_true(proxy_param_is_setting("async_insert"));
    assert_true(proxy_param_is_setting("input_format_skip_unknown_fields"));
    assert_false(proxy_param_is_setting("query"));
    assert_false(proxy_param_is_setting("param_x"));
    assert_false(proxy_param_is_setting("password"));
    char b64[16];
    size_t bl;
    assert_int_equal(proxy_base64_decode("YQ", 2, b64, sizeof b64, &bl), 0);
    assert_int_equal(bl, 1);
    assert_int_equal(proxy_base64_decode("Y", 1, b64, sizeof b64, &bl), -1);
}

static proxy_route_t route(int method, const char *path, int has_query, size_t body_len,
                           const char *ctype, const char *decompress)
{
    proxy_req_view_t v = {method, path, strlen(path), has_query, body_len, ctype, decompress};
    return proxy_classify(&v);
}

static void test_classify_routes_by_line_headers_and_decompress(void **st)
{
    (void)st;
    /* health probes answer here, whatever the backend's state */
    assert_int_equal(route(HTTP_GET, "/ping", 0, 0, NULL, NULL), PROXY_ROUTE_OK);
    assert_int_equal(route(HTTP_HEAD, "/replicas_status", 1, 0, NULL, NULL), PROXY_ROUTE_OK);
    assert_int_equal(route(HTTP_GET, "/", 0, 0, NULL, NULL), PROXY_ROUTE_OK);
    assert_int_equal(route(HTTP_POST, "/ping", 0, 0, NULL, NULL), PROXY_ROUTE_BAD_METHOD);
    /* "/" with a query string is a query, not a probe */
    assert_int_equal(route(HTTP_GET, "/", 1, 0, NULL, NULL), PROXY_ROUTE_PASS);
    /* statements: POST/PUT to "/" (or an empty path) */
    assert_int_equal(route(HTTP_POST, "/", 1, 10, NULL, NULL), PROXY_ROUTE_STATEMENT);
    assert_int_equal(route(HTTP_PUT, "", 0, 10, NULL, "0"), PROXY_ROUTE_STATEMENT);
    /* ClickHouse's to read: external tables, its own compression framing, other paths */
    assert_int_equal(route(HTTP_POST, "/", 1, 10, "multipart/form-data; boundary=x", NULL),
                     PROXY_ROUTE_PASS);
    assert_int_equal(route(HTTP_POST, "/", 1, 10, NULL, "1"), PROXY_ROUTE_PASS);
    assert_int_equal(route(HTTP_POST, "/play", 1, 10, NULL, NULL), PROXY_ROUTE_PASS);
    assert_int_equal(route(HTTP_GET, "/", 1, 0, NULL, NULL), PROXY_ROUTE_PASS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify_routes_by_line_headers_and_decompress),
        cmocka_unit_test(test_stmt_simple_insert_is_recognised),
        cmocka_unit_test(test_stmt_db_columns_settings_comments),
        cmocka_unit_test(test_stmt_tensorzero_body_head),
        cmocka_unit_test(test_stmt_backtick_escapes_and_table_keyword),
        cmocka_unit_test(test_stmt_non_matching_pass_through),
        cmocka_unit_test(test_stmt_syntax_errors_and_incomplete),
        cmocka_unit_test(test_rows_canonical_input_is_not_copied),
        cmocka_unit_test(test_rows_missing_final_newline_added_in_place),
        cmocka_unit_test(test_rows_normalised_forms),
        cmocka_unit_test(test_rows_values_unicode_numbers),
        cmocka_unit_test(test_rows_invalid_inputs_name_the_row),
        cmocka_unit_test(test_rows_bad_row_1000),
        cmocka_unit_test(test_rows_depth_is_bounded),
        cmocka_unit_test(test_stmt_other_formats_and_values_are_inserts),
        cmocka_unit_test(test_decode_gzip_deflate_zstd),
        cmocka_unit_test(test_decode_invalid_and_unknown),
        cmocka_unit_test(test_decode_bomb_bounded_by_max),
        cmocka_unit_test(test_creds_three_forms_and_check),
        cmocka_unit_test(test_params_decode_and_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
