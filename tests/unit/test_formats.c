/* test_formats.c — the input formats sluice makes durable (proxy/formats.c: validation and
 * row cutting without the schema) and their way out (sinks/convert.c: the byte-exact
 * ClickHouse body, the StarRocks conversion or its refusal with a reason). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/proxy_internal.h"
#include "sinks/convert.h"

static proxy_body_t b;
static char in[4096];

static int split_kv(const char *fmt, const char *text, const wal_kv_t *kv, size_t nkv)
{
    const proxy_format_t *f = proxy_format_find(fmt);
    assert_non_null(f);
    size_t n = strlen(text);
    memcpy(in, text, n + 1);
    proxy_body_free(&b);
    return proxy_format_split(f, kv, nkv, in, n, n, &b); /* cap == len: no room, copies */
}

static int split(const char *fmt, const char *text)
{
    return split_kv(fmt, text, NULL, 0);
}

static void assert_rows(const char *want)
{
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
}

static void test_names_are_the_engines(void **state)
{
    (void)state;
    assert_string_equal(proxy_format_find("JSONLines")->name, "JSONLines");
    assert_string_equal(proxy_format_find("tsv")->name, "TSV");
    assert_string_equal(proxy_format_find("csvwithnames")->name, "CSVWithNames");
    assert_null(proxy_format_find("JSONEachRowWithProgress")); /* output only */
    assert_null(proxy_format_find("Parquet"));
}

static void test_compact_rows_and_header(void **state)
{
    (void)state;
    assert_int_equal(split("JSONCompactEachRowWithNamesAndTypes",
                           "[\"a\",\"b\"]\n[\"UInt8\",\"String\"]\n[1,\"x\"] [2,\n\"y\"]"),
                     0);
    assert_int_equal(b.n_rows, 2);
    assert_int_equal(b.hdr_len, strlen("[\"a\",\"b\"]\n[\"UInt8\",\"String\"]\n"));
    assert_memory_equal(b.hdr, "[\"a\",\"b\"]\n", 10);
    assert_rows("[1,\"x\"]\n[2, \"y\"]\n");
    assert_int_equal(split("JSONCompactEachRow", "[1,2]\n{\"a\":1}\n"), -EINVAL);
    assert_int_equal(b.bad_row, 2);
    assert_int_equal(split("JSONCompactEachRow", "[1,2"), -EINVAL);
}

static void test_json_object_each_row(void **state)
{
    (void)state;
    assert_int_equal(split("JSONObjectEachRow", "{\"r1\": {\"a\":1},\n \"r2\":{\"a\":\n2}}"), 0);
    assert_int_equal(b.n_rows, 2);
    assert_rows("\"r1\":{\"a\":1}\n\"r2\":{\"a\": 2}\n");
    assert_int_equal(split("JSONObjectEachRow", "{\"r1\": [1]}"), -EINVAL);
    assert_int_equal(split("JSONObjectEachRow", "{\"r1\": {}} x"), -EINVAL);
}

static void test_csv_quotes_fields_header(void **state)
{
    (void)state;
    assert_int_equal(split("CSVWithNames", "a,b\n1,\"x,\"\"y\"\"\"\n2,z"), 0);
    assert_int_equal(b.n_rows, 2);
    assert_memory_equal(b.hdr, "a,b\n", 4);
    assert_int_equal(b.hdr_len, 4);
    assert_rows("1,\"x,\"\"y\"\"\"\n2,z\n");
    assert_false(b.whole);
    assert_int_equal(split("CSV", "1,2\n3\n"), -EINVAL); /* fewer fields than the first row */
    assert_int_equal(b.bad_row, 2);
    assert_int_equal(split("CSV", "1,\"open\n"), -EINVAL);
    assert_int_equal(split("CSV", "1,\"a\"b\n"), -EINVAL);
    /* A line break inside quotes: rows are not lines, the body is one unit. */
    assert_int_equal(split("CSV", "1,\"two\nlines\"\n2,x\n"), 0);
    assert_int_equal(b.n_rows, 2);
    assert_true(b.whole);
    wal_kv_t kv[2] = {{"format_csv_delimiter", ";"},
                      {"input_format_csv_allow_variable_number_of_columns", "1"}};
    assert_int_equal(split_kv("CSV", "1;2\n3\n", kv, 2), 0);
    assert_int_equal(b.n_rows, 2);
}

static void test_tsv_escapes_and_raw(void **state)
{
    (void)state;
    assert_int_equal(split("TabSeparatedWithNames", "a\tb\n1\tx\\ty\n2\t\\N\n"), 0);
    assert_int_equal(b.n_rows, 2);
    assert_rows("1\tx\\ty\n2\t\\N\n");
    assert_int_equal(split("TSV", "1\t2\n3\n"), -EINVAL);
    assert_int_equal(split("TSV", "1\tx\\"), -EINVAL);
    assert_int_equal(split("TSVRaw", "1\tx\\\n"), 0); /* no escapes in Raw */
    assert_int_equal(split("TSV", "1\tx\\\ny\n"), 0);  /* escaped line feed */
    assert_true(b.whole);
}

static void test_values_rows_and_parameters(void **state)
{
    (void)state;
    assert_int_equal(split("Values", " (1, 'a,)'), (2,\n[3, 4], {'k': 5}) ,(3,'it''s');"), 0);
    assert_int_equal(b.n_rows, 3);
    assert_rows("(1, 'a,)')\n(2, [3, 4], {'k': 5})\n(3,'it''s')\n");
    /* Tuples without separators: more '\n' added than the input has bytes to spare. */
    assert_int_equal(split("Values", "()()()()()()()()()()"), 0);
    assert_int_equal(b.n_rows, 10);
    assert_int_equal(split("Values", "(1, {p:UInt8})"), PROXY_FMT_UNBUFFERED);
    assert_int_equal(split("Values", "(1, 2"), -EINVAL);
    assert_int_equal(split("Values", "(1, 2]"), -EINVAL);
    assert_int_equal(split("Values", "1, 2"), -EINVAL);
    assert_int_equal(split("Values", "(1, 'two\nlines')"), 0);
    assert_true(b.whole);
}

static void test_binary_is_one_unit(void **state)
{
    (void)state;
    const proxy_format_t *f = proxy_format_find("RowBinary");
    char bin[5] = {1, 0, '\n', 0, 2};
    proxy_body_free(&b);
    assert_int_equal(proxy_format_split(f, NULL, 0, bin, 5, 5, &b), 0);
    assert_true(b.whole);
    assert_int_equal(b.len, 5);
}

static sink_batch_t batch(const char *fmt, const char *body, const char *hdr, const char *cols)
{
    sink_batch_t x = {.db = "d", .table = "t", .columns = cols, .body = body,
                      .body_len = strlen(body), .n_rows = 1, .fmt = fmt, .hdr = hdr,
                      .hdr_len = hdr ? strlen(hdr) : 0, .key = "k"};
    return x;
}

static void test_clickhouse_body_is_self_describing(void **state)
{
    (void)state;
    buf_t o = {0};
    const char *body;
    size_t len;
    sink_batch_t x = batch("CSVWithNames", "1,2\n", "a,b\n", NULL);
    assert_int_equal(sink_ch_body(&x, &o, &body, &len), 0);
    assert_int_equal(len, 8);
    assert_memory_equal(body, "a,b\n1,2\n", 8);
    x = batch("JSONObjectEachRow", "\"r1\":{\"a\":1}\n\"r2\":{\"a\":2}\n", NULL, NULL);
    assert_int_equal(sink_ch_body(&x, &o, &body, &len), 0);
    assert_string_equal(body, "{\"r1\":{\"a\":1}\n,\"r2\":{\"a\":2}\n}\n");
    x = batch("JSONEachRow", "{}\n", NULL, NULL);
    assert_int_equal(sink_ch_body(&x, &o, &body, &len), 0);
    assert_ptr_equal(body, x.body);
    assert_true(sink_fmt_name_ok("TabSeparatedRawWithNames"));
    assert_false(sink_fmt_name_ok("CSV SETTINGS x=1"));
    buf_free(&o);
}

static void test_starrocks_conversion(void **state)
{
    (void)state;
    buf_t o = {0};
    sink_sr_load_t ld;
    int whole;
    char err[256];
    sink_batch_t x = batch("JSONCompactEachRowWithNames", "[1,\"x\"]\n[2, null]\n",
                           "[\"a\",\"b\"]\n", NULL);
    assert_int_equal(sink_sr_convert(&x, &o, &ld, &whole, err, sizeof err), 0);
    assert_string_equal(ld.format, "json");
    assert_int_equal(ld.len, strlen("{\"a\":1,\"b\":\"x\"}\n{\"a\":2,\"b\":null}\n"));
    assert_memory_equal(ld.body, "{\"a\":1,\"b\":\"x\"}\n{\"a\":2,\"b\":null}\n", ld.len);
    x = batch("JSONCompactEachRow", "[1,\"x\"]\n", NULL, "a, `b`");
    assert_int_equal(sink_sr_convert(&x, &o, &ld, &whole, err, sizeof err), 0);
    assert_memory_equal(ld.body, "{\"a\":1,\"b\":\"x\"}\n", ld.len);
    x = batch("JSONCompactEachRow", "[1,\"x\",3]\n", NULL, "a, b");
    assert_int_equal(sink_sr_convert(&x, &o, &ld, &whole, err, sizeof err), -EINVAL);
    assert_false(whole); /* this row: bisect finds it */
    /* No names (the JS client's default insert): positional, as a CSV load. */
    x = batch("JSONCompactEachRow", "[1, \"a\\\"b,\\u00e9\\ud83d\\ude00\", null, [1,\"x\"], true]\n", NULL,
              NULL);
    assert_int_equal(sink_sr_convert(&x, &o, &ld, &whole, err, sizeof err), 0);
    assert_string_equal(ld.format, "csv");
    assert_string_equal(ld.enclose, "\"");
    assert_int_equal(ld.len, strlen("1,\"a\"\"b,\xc3\xa9\xf0\x9f\x98\x80\",\\N,\"[1,\"\"x\"\"]\",true\n"));
    assert_memory_equal(ld.body, "1,\"a\"\"b,\xc3\xa9\xf0\x9f\x98\x80\",\\N,\"[1,\"\"x\"\"]\",true\n", ld.len);
    x = batch("JSONObjectEachRow", "\"r1\":{\"a\":1}\n", NULL, NULL);
    assert_int_equal(sink_sr_convert(&x, &o, &ld, &whole, err, sizeof err), 0);
    assert_memory_equal(ld.body, "{\"a\":1}\n", ld.len);
    x = batch("CSVWithNames", "1,\"x\"\n", "a,\"b\"\n", NULL);
    assert_int_equal(sink_sr_convert(&x, &o, &ld, &whole, err, sizeof err), 0);
    assert_string_equal(ld.format, "csv");
    assert_string_equal(ld.columns, "a,b");
    assert_string_equal(ld.separator, "\\x2c");
    assert_string_equal(ld.enclose, "\"");
    assert_ptr_equal(ld.body, x.body);
    x = batch("TabSeparated", "1\tx\\ty\n", NULL, NULL);
    assert_int_equal(sink_sr_convert(&x, &o, &ld, &whole, err, sizeof err), -EINVAL);
    assert_false(whole);
    x = batch("TabSeparated", "1\t\\N\n", NULL, NULL);
    assert_int_equal(sink_sr_convert(&x, &o, &ld, &whole, err, sizeof err), 0);
    assert_string_equal(ld.separator, "\\x09");
    x = batch("RowBinary", "\x01", NULL, NULL);
    assert_int_equal(sink_sr_convert(&x, &o, &ld, &whole, err, sizeof err), -EINVAL);
    assert_true(whole);
    buf_free(&o);
}

static void test_rowbinary_rows_from_types(void **state)
{
    (void)state;
    const char *desc = "id\tUInt32\ns\tString\nv\tNullable(Float64)\n"
                       "a\tArray(LowCardinality(String))\nm\tMap(String, UInt8)\n"
                       "t\tTuple(x UInt8, y String)\n";
    /* row 1: 1, "ab", NULL, ["x"], {"k":7}, (1, "") ; row 2: 2, "", 0.5, [], {}, (2, "z") */
    const unsigned char row1[] = {1, 0, 0, 0, 2, 'a', 'b', 1, 1, 1, 'x', 1, 1, 'k', 7, 1, 0};
    const unsigned char row2[] = {2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xe0, 0x3f, 0, 0, 2, 1, 'z'};
    char data[64];
    memcpy(data, row1, sizeof row1);
    memcpy(data + sizeof row1, row2, sizeof row2);
    size_t hl, *off;
    uint32_t n;
    char err[128];
    assert_int_equal(sink_rowbinary_split("RowBinary", NULL, desc, data, sizeof row1 + sizeof row2,
                                          &hl, &off, &n, err, sizeof err),
                     0);
    assert_int_equal(n, 2);
    assert_int_equal(hl, 0);
    assert_int_equal(off[1], sizeof row1);
    assert_int_equal(off[2], sizeof row1 + sizeof row2);
    free(off);
    /* A column list picks and orders the types. */
    const unsigned char two[] = {2, 'h', 'i', 5, 0, 0, 0};
    assert_int_equal(sink_rowbinary_split("RowBinary", "s, `id`", desc, (const char *)two, 7, &hl,
                                          &off, &n, err, sizeof err),
                     0);
    assert_int_equal(n, 1);
    free(off);
    /* WithNamesAndTypes: the header carries the types; its length is reported. */
    const unsigned char wnt[] = {1, 1, 'c', 5, 'U', 'I', 'n', 't', '8', 42, 43};
    assert_int_equal(sink_rowbinary_split("RowBinaryWithNamesAndTypes", NULL, NULL,
                                          (const char *)wnt, sizeof wnt, &hl, &off, &n, err,
                                          sizeof err),
                     0);
    assert_int_equal(hl, 9);
    assert_int_equal(n, 2);
    free(off);
    /* Bytes that do not fit the types, and a type it cannot measure. */
    assert_int_equal(sink_rowbinary_split("RowBinary", NULL, desc, data, sizeof row1 - 1, &hl,
                                          &off, &n, err, sizeof err),
                     -EINVAL);
    assert_int_equal(sink_rowbinary_split("RowBinary", NULL, "j\tJSON\n", data, 4, &hl, &off, &n,
                                          err, sizeof err),
                     -EINVAL);
    assert_non_null(strstr(err, "JSON"));
    /* Zero-width values (found by fuzz_formats): a huge Array of Tuple() does not loop, a row
     * of nothing but zero-width columns is refused instead of never ending. */
    const char big[] = {'\xff', '\xff', '\xff', '\xff', 0x0f, 9};
    assert_int_equal(sink_rowbinary_split("RowBinary", NULL, "a\tArray(Tuple())\nb\tUInt8\n", big,
                                          sizeof big, &hl, &off, &n, err, sizeof err),
                     0);
    assert_int_equal(n, 1);
    free(off);
    assert_int_equal(sink_rowbinary_split("RowBinary", NULL, "t\tTuple()\n", big, 1, &hl, &off,
                                          &n, err, sizeof err),
                     -EINVAL);
}

static void test_rowbinary_with_types_to_json(void **state)
{
    (void)state;
    /* id Int32, m Map(UInt8, String), d Date, t DateTime64(3), x Decimal(9, 2), n Nullable(UUID) */
    const unsigned char h[] = {6, 2, 'i', 'd', 1, 'm', 1, 'd', 1, 't', 1, 'x', 1, 'n',
                               5, 'I', 'n', 't', '3', '2',
                               18, 'M', 'a', 'p', '(', 'U', 'I', 'n', 't', '8', ',', ' ', 'S', 't',
                               'r', 'i', 'n', 'g', ')',
                               4, 'D', 'a', 't', 'e',
                               13, 'D', 'a', 't', 'e', 'T', 'i', 'm', 'e', '6', '4', '(', '3', ')',
                               12, 'D', 'e', 'c', 'i', 'm', 'a', 'l', '(', '9', ',', '2', ')',
                               14, 'N', 'u', 'l', 'l', 'a', 'b', 'l', 'e', '(', 'U', 'U', 'I', 'D',
                               ')'};
    const unsigned char row[] = {0xfe, 0xff, 0xff, 0xff,             /* -2 */
                                 1, 7, 2, 'a', '"',                  /* {"7":"a\""} */
                                 0x8e, 0x4e,                         /* 20110 = 2025-01-22 */
                                 0xe9, 0x03, 0, 0, 0, 0, 0, 0,       /* 1.001 s */
                                 0x39, 0x30, 0, 0,                   /* 123.45 */
                                 1};                                 /* NULL */
    char data[256];
    memcpy(data, h, sizeof h);
    memcpy(data + sizeof h, row, sizeof row);
    buf_t o = {0};
    char err[128];
    assert_int_equal(sink_rowbinary_json(data, sizeof h + sizeof row, &o, err, sizeof err), 0);
    assert_string_equal(o.data, "{\"id\":-2,\"m\":{\"7\":\"a\\\"\"},\"d\":\"2025-01-22\","
                                "\"t\":\"1970-01-01 00:00:01.001\",\"x\":123.45,\"n\":null}\n");
    o.len = 0;
    assert_int_equal(sink_rowbinary_json(data, sizeof h + sizeof row - 1, &o, err, sizeof err),
                     -EINVAL);
    buf_free(&o);
}

static int teardown(void **state)
{
    (void)state;
    proxy_body_free(&b);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_are_the_engines),
        cmocka_unit_test(test_compact_rows_and_header),
        cmocka_unit_test(test_json_object_each_row),
        cmocka_unit_test(test_csv_quotes_fields_header),
        cmocka_unit_test(test_tsv_escapes_and_raw),
        cmocka_unit_test(test_values_rows_and_parameters),
        cmocka_unit_test(test_binary_is_one_unit),
        cmocka_unit_test(test_clickhouse_body_is_self_describing),
        cmocka_unit_test(test_starrocks_conversion),
        cmocka_unit_test(test_rowbinary_rows_from_types),
        cmocka_unit_test(test_rowbinary_with_types_to_json),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
