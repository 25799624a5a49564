/* test_migrate.c — the pure parts of backfill and verify: time parsing, slice arithmetic on
 * the epoch-aligned grid, backfill label derivation (shape, determinism, what changes it), the
 * checksum's canonical form and order independence, the flat JSON reader, verify's SQL per
 * dialect, and argument parsing errors. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/url.h"
#include "cli/cli.h"
#include "migrate/migrate_internal.h"

static void test_time_parsing_is_utc(void **st)
{
    (void)st;
    int64_t t;
    assert_int_equal(migrate_parse_time("2024-03-01", &t), 0);
    assert_int_equal(t, 1709251200);
    assert_int_equal(migrate_parse_time("2024-03-01 01:00:00", &t), 0);
    assert_int_equal(t, 1709251200 + 3600);
    assert_int_equal(migrate_parse_time("2024-03-01T01:00:00Z", &t), 0);
    assert_int_equal(t, 1709251200 + 3600);
    assert_int_equal(migrate_parse_time("1709251200", &t), 0);
    assert_int_equal(t, 1709251200);
    assert_int_equal(migrate_parse_wallclock("2024-03-01 00:00:01.500", 23, &t), 0);
    assert_int_equal(t, 1709251201);
    assert_true(migrate_parse_time("2024-13-01", &t) < 0);
    assert_true(migrate_parse_time("yesterday", &t) < 0);
    assert_true(migrate_parse_time("2024-03-01 1:00", &t) < 0);
    char buf[20];
    migrate_format_time(1709251200 + 3661, buf);
    assert_string_equal(buf, "2024-03-01 01:01:01");
    assert_int_equal(migrate_parse_duration("1h", &t), 0);
    assert_int_equal(t, 3600);
    assert_int_equal(migrate_parse_duration("30m", &t), 0);
    assert_int_equal(t, 1800);
    assert_int_equal(migrate_parse_duration("2d", &t), 0);
    assert_int_equal(t, 172800);
    assert_int_equal(migrate_parse_duration("90", &t), 0);
    assert_int_equal(t, 90);
    assert_true(migrate_parse_duration("0h", &t) < 0);
    assert_true(migrate_parse_duration("-1h", &t) < 0);
    assert_true(migrate_parse_duration("1w", &t) < 0);
}

static void test_slices_cover_the_range_on_an_aligned_grid(void **st)
{
    (void)st;
    int64_t s, e;
    /* aligned: 2 whole hours */
    assert_int_equal(migrate_slice_count(7200, 14400, 3600), 2);
    migrate_slice_get(7200, 14400, 3600, 1, &s, &e);
    assert_int_equal(s, 10800);
    assert_int_equal(e, 14400);
    /* unaligned ends are cut, not shifted: [100, 3600) [3600, 7200) [7200, 7300) */
    assert_int_equal(migrate_slice_count(100, 7300, 3600), 3);
    migrate_slice_get(100, 7300, 3600, 0, &s, &e);
    assert_int_equal(s, 100);
    assert_int_equal(e, 3600);
    migrate_slice_get(100, 7300, 3600, 2, &s, &e);
    assert_int_equal(s, 7200);
    assert_int_equal(e, 7300);
    /* contiguous, no gaps or overlaps, for an odd width */
    int64_t since = 12345, until = 98765, prev = since;
    uint64_t n = migrate_slice_count(since, until, 777);
    for (uint64_t i = 0; i < n; i++) {
        migrate_slice_get(since, until, 777, i, &s, &e);
        assert_int_equal(s, prev);
        assert_true(e > s && e - s <= 777);
        prev = e;
    }
    assert_int_equal(prev, until);
    /* the grid does not depend on since: a later rerun cuts the same slices */
    migrate_slice_get(5000, 20000, 3600, 0, &s, &e);
    assert_int_equal(e, 7200);
    assert_int_equal(migrate_slice_count(10, 10, 3600), 0);
    assert_int_equal(migrate_slice_count(20, 10, 3600), 0);
    assert_int_equal(migrate_slice_count(0, 1, 3600), 1);
    assert_int_equal(migrate_slice_count(-3600, 3600, 3600), 2); /* before 1970 */
}

static int label_ok(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > MIGRATE_LABEL_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return 0;
    }
    return 1;
}

static void test_label_derivation(void **st)
{
    (void)st;
    char a[MIGRATE_LABEL_MAX + 1], b[MIGRATE_LABEL_MAX + 1];
    backfill_label(a, 0xab12ull, "sr", "ChatInference", 1709251200, 3, 0xdeadbeefu);
    assert_string_equal(a, "sluice_000000000000ab12_sr_ChatInference_b1709251200_3_deadbeef");
    backfill_label(b, 0xab12ull, "sr", "ChatInference", 1709251200, 3, 0xdeadbeefu);
    assert_string_equal(a, b); /* deterministic: a resend carries the same label */
    backfill_label(b, 0xab12ull, "sr", "ChatInference", 1709251200, 4, 0xdeadbeefu);
    assert_string_not_equal(a, b);
    backfill_label(b, 0xab12ull, "sr", "ChatInference", 1709254800, 3, 0xdeadbeefu);
    assert_string_not_equal(a, b);
    backfill_label(b, 0xab13ull, "sr", "ChatInference", 1709251200, 3, 0xdeadbeefu);
    assert_string_not_equal(a, b);
    /* names outside [A-Za-z0-9_] or too long are hashed; worst case stays <= 128 */
    backfill_label(a, UINT64_MAX, "my-sink", "a.b", 1709251200, 3, 1);
    assert_true(label_ok(a));
    assert_non_null(strstr(a, "_h"));
    backfill_label(a, UINT64_MAX, "ssssssssssssssssssssssssssssssss",
                   "tttttttttttttttttttttttttttttttt", INT64_MAX, UINT32_MAX, UINT32_MAX);
    assert_true(label_ok(a));
    /* never the shape of a live key (sluice_{id}_{sink}_{table}_{first}_{last}) */
    backfill_label(a, 1, "sr", "t", 10, 0, 0);
    assert_non_null(strstr(a, "_t_b10_0_"));
    /* the plan changes with everything that changes what a batch index holds */
    uint32_t p = backfill_plan_hash(NULL, "ts", 7200, 1000, 1 << 20);
    assert_int_equal(p, backfill_plan_hash(NULL, "ts", 7200, 1000, 1 << 20));
    assert_int_not_equal(p, backfill_plan_hash("kind = 1", "ts", 7200, 1000, 1 << 20));
    assert_int_not_equal(p, backfill_plan_hash(NULL, "ts2", 7200, 1000, 1 << 20));
    assert_int_not_equal(p, backfill_plan_hash(NULL, "ts", 7100, 1000, 1 << 20));
    assert_int_not_equal(p, backfill_plan_hash(NULL, "ts", 7200, 999, 1 << 20));
    assert_int_not_equal(p, backfill_plan_hash(NULL, "ts", 7200, 1000, 1 << 21));
}

static void canon_is(const char *in, const char *want)
{
    buf_t b = {0};
    assert_int_equal(migrate_canonical(&b, in, strlen(in)), 0);
    assert_string_equal(b.data ? b.data : "", want);
    buf_free(&b);
}

static void test_checksum_canonical_form(void **st)
{
    (void)st;
    canon_is("12", "12");
    canon_is("0012", "12");
    canon_is("-7", "-7");
    canon_is("18446744073709551615", "18446744073709551615");
    canon_is("0.5", "0.5");
    canon_is("0.50", "0.5");
    canon_is("5e-1", "0.5");
    canon_is("3.0", "3");
    canon_is("0.1", "0.10000000000000001");
    canon_is("-0.0", "0");
    canon_is("1e+20", "1e+20");
    canon_is("100000000000000000000", "1e+20"); /* past 64 bits: as a double */
    canon_is("2024-03-01 10:00:00", "2024-03-01 10:00:00");
    canon_is("2024-03-01T10:00:00", "2024-03-01 10:00:00");
    canon_is("2024-03-01 10:00:00.120000", "2024-03-01 10:00:00.12");
    canon_is("2024-03-01 10:00:00.000", "2024-03-01 10:00:00");
    canon_is("true", "1");
    canon_is("false", "0");
    canon_is("0x1A", "0x1A"); /* not decimal: kept */
    canon_is("inf", "inf");
    canon_is("héllo \"q\"", "héllo \"q\"");
    canon_is("", "");
    /* JSON by value: StarRocks prints {"k": "v"}, ClickHouse {"k":"v"} (issue 16) */
    canon_is("{\"k\": \"v\", \"n\": [1, 2.50]}", "{\"k\":\"v\",\"n\":[1,2.5]}");
    canon_is("{\"k\":\"v\",\"n\":[1,2.5]}", "{\"k\":\"v\",\"n\":[1,2.5]}");
    canon_is("{\"b\": 1, \"a\": {\"y\": null, \"x\": true}}",
             "{\"a\":{\"x\":true,\"y\":null},\"b\":1}");
    canon_is("[ ]", "[]");
    canon_is(" {} ", " {} "); /* leading space: not a JSON column's text, kept */
    canon_is("{\"s\": \"\\u00e9\\/x\"}", "{\"s\":\"\xc3\xa9/x\"}");
    canon_is("[INFO] started", "[INFO] started"); /* not JSON: the text */
    canon_is("{\"a\": 1,}", "{\"a\": 1,}");
    canon_is("[1, 2] tail", "[1, 2] tail");

    /* row hash: NULL differs from "", column boundaries matter, values canonicalised */
    buf_t s = {0};
    const char *r1[] = {"1", "ab"}, *r2[] = {"1", "a"}, *r3[] = {"01", "ab"};
    size_t l1[] = {1, 2}, l2[] = {1, 1}, l3[] = {2, 2};
    const char *n1[] = {NULL}, *e1[] = {""};
    size_t z[] = {0};
    assert_int_not_equal(migrate_row_hash(r1, l1, 2, &s), migrate_row_hash(r2, l2, 2, &s));
    assert_int_equal(migrate_row_hash(r1, l1, 2, &s), migrate_row_hash(r3, l3, 2, &s));
    assert_int_not_equal(migrate_row_hash(n1, z, 1, &s), migrate_row_hash(e1, z, 1, &s));
    const char *x[] = {"a", "bc"}, *y[] = {"ab", "c"};
    size_t lx[] = {1, 2}, ly[] = {2, 1};
    assert_int_not_equal(migrate_row_hash(x, lx, 2, &s), migrate_row_hash(y, ly, 2, &s));
    /* the bucket sum does not depend on row order */
    uint64_t h1 = migrate_row_hash(r1, l1, 2, &s), h2 = migrate_row_hash(r2, l2, 2, &s);
    assert_int_equal(h1 + h2, h2 + h1);
    /* pinned: a change of the canonical form must be a deliberate one */
    const char *one[] = {"1"};
    size_t lone[] = {1};
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *p = "1:1;"; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
    assert_int_equal(migrate_row_hash(one, lone, 1, &s), h);
    buf_free(&s);
}

static void test_json_fields_and_values(void **st)
{
    (void)st;
    const char *line = "{\"b\":\"2024-03-01\", \"v0\":\"n\\u00e9 \\\"q\\\" \\/ \\ud83d\\ude00\","
                       "\"v1\":null,\"v2\":12.5,\"v3\":{\"a\":[1,\"}\"]},\"v4\":true}";
    json_member_t f[8];
    int n = json_members(line, strlen(line), f, 8);
    assert_int_equal(n, 6);
    assert_int_equal(f[1].key_len, 2);
    buf_t b = {0};
    int is_null;
    assert_int_equal(json_value_text(f[1].val, f[1].val_len, &b, &is_null), 0);
    assert_string_equal(b.data, "n\xc3\xa9 \"q\" / \xf0\x9f\x98\x80");
    assert_false(is_null);
    b.len = 0;
    assert_int_equal(json_value_text(f[2].val, f[2].val_len, &b, &is_null), 0);
    assert_true(is_null);
    b.len = 0;
    json_value_text(f[4].val, f[4].val_len, &b, &is_null);
    assert_string_equal(b.data, "{\"a\":[1,\"}\"]}");
    buf_free(&b);
    assert_int_equal(json_members("{}", 2, f, 8), 0);
    assert_true(json_members("[1]", 3, f, 8) < 0);
    assert_true(json_members("{\"a\":1", 6, f, 8) < 0);
    assert_true(json_members("{\"a\":1}x", 8, f, 8) < 0);
    assert_true(json_members("Code: 241, e.displayText()", 26, f, 8) < 0);
    assert_int_equal(json_members("{\"a\":1,\"b\":2}", 13, f, 1), -E2BIG);
}

static void test_verify_sql_per_dialect(void **st)
{
    (void)st;
    const char *cols[] = {"id", "name"};
    verify_query_t q = {.database = "db",
                        .table = "t",
                        .time_column = "ts",
                        .by = VERIFY_BY_DAY,
                        .columns = cols,
                        .n_columns = 2,
                        .since = 1709251200,
                        .has_since = 1};
    buf_t b = {0};
    assert_int_equal(verify_build_sql(MIGRATE_SQL_CLICKHOUSE, &q, 0, "db", &b), 0);
    assert_string_equal(b.data, "SELECT toString(toDate(`ts`)) AS b, count(*) AS n FROM `db`.`t` "
                                "WHERE `ts` >= toDateTime('2024-03-01 00:00:00') GROUP BY "
                                "toString(toDate(`ts`)) ORDER BY b FORMAT JSONEachRow");
    buf_free(&b);
    q.by = VERIFY_BY_HOUR;
    assert_int_equal(verify_build_sql(MIGRATE_SQL_SQLITE, &q, 1, "db", &b), 0);
    assert_string_equal(b.data,
                        "SELECT substr(\"ts\", 1, 13) || ':00:00' AS b, \"id\" AS v0, "
                        "\"name\" AS v1 FROM \"db.t\" WHERE \"ts\" >= '2024-03-01 00:00:00'");
    buf_free(&b);
    q.has_until = 1;
    q.until = 1709337600;
    assert_int_equal(verify_build_sql(MIGRATE_SQL_MYSQL, &q, 0, "db", &b), 0);
    assert_non_null(strstr(b.data, "DATE_FORMAT(`ts`, '%Y-%m-%d %H:00:00') AS b"));
    assert_non_null(strstr(b.data, "`ts` < '2024-03-02 00:00:00'"));
    buf_free(&b);
    q.table = "t`; DROP TABLE x";
    assert_true(verify_build_sql(MIGRATE_SQL_MYSQL, &q, 0, "db", &b) < 0);
    buf_free(&b);
}

#define ARGV(...) ((char *[]){__VA_ARGS__})
#define ARGC(...) ((int)(sizeof((char *[]){__VA_ARGS__}) / sizeof(char *)))

static int bf_parse(int argc, char **argv, backfill_opts_t *o, char *err)
{
    return cli_backfill_parse(argc, argv, o, err, 256);
}

static void test_backfill_argument_errors(void **st)
{
    (void)st;
    backfill_opts_t o;
    char err[256];
#define BF(...) bf_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), &o, err)
    assert_int_equal(
        BF("--config", "f", "--source", "http://h:1", "--sink", "sr", "--table", "db.t"), 0);
    assert_string_equal(o.database, "db");
    assert_string_equal(o.table, "t");
    assert_int_equal(o.slice_s, 3600);
    assert_string_equal(o.time_column, "timestamp");
    assert_false(o.has_until);
    assert_int_equal(BF("--source", "u", "--sink", "sr", "--table", "t", "--slice", "15m",
                        "--since", "2024-03-01", "--until", "2024-03-02", "--where", "x = 1"),
                     0);
    assert_string_equal(o.database, "default");
    assert_int_equal(o.slice_s, 900);
    assert_int_equal(o.until - o.since, 86400);

    assert_true(BF("--sink", "sr", "--table", "t") < 0);
    assert_non_null(strstr(err, "--source"));
    assert_true(BF("--source", "u", "--table", "t") < 0);
    assert_non_null(strstr(err, "--sink"));
    assert_true(BF("--source", "u", "--sink", "s") < 0);
    assert_non_null(strstr(err, "--table"));
    assert_true(BF("--source", "u", "--sink", "s", "--table", "t", "--slice", "1x") < 0);
    assert_non_null(strstr(err, "--slice"));
    assert_true(BF("--source", "u", "--sink", "s", "--table", "t", "--since", "soon") < 0);
    assert_non_null(strstr(err, "--since"));
    assert_true(BF("--source", "u", "--sink", "s", "--table", "t", "--since", "2024-03-02",
                   "--until", "2024-03-01") < 0);
    assert_non_null(strstr(err, "before"));
    assert_true(BF("--source", "u", "--sink", "s", "--table", "t", "--bogus", "1") < 0);
    assert_non_null(strstr(err, "--bogus"));
    assert_true(BF("--source", "u", "--sink", "s", "--table") < 0);
    assert_non_null(strstr(err, "needs a value"));
    assert_true(BF("--source", "u", "--sink", "s", "--table", "t`x") < 0);
    assert_true(BF("--source", "u", "--sink", "s", "--table", ".t") < 0);
    assert_true(BF("--source", "u", "--sink", "s", "--table", "t", "stray") < 0);
#undef BF
}

static void test_backfill_flags_parse_as_flags_and_urls_hide_passwords(void **st)
{
    (void)st;
    backfill_opts_t o;
    char err[256], u[256];
#define BF(...) bf_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), &o, err)
    assert_int_equal(BF("--source", "u", "--sink", "s", "--table", "t", "--dry-run", "--json",
                        "--force", "--restart", "--slice=30m", "--parallel", "4"),
                     0);
    assert_true(o.dry_run && o.json && o.force && o.restart);
    assert_int_equal(o.slice_s, 1800);
    assert_int_equal(o.max_slice_s, 86400);
    assert_int_equal(o.parallel, 4);
    assert_int_equal(BF("--sink", "s", "--table", "t", "--status"), 0); /* no --source needed */
    assert_true(o.status);
    assert_true(BF("--source", "u", "--sink", "s", "--table", "t", "--dry-run=1") < 0);
    assert_true(BF("--source", "u", "--sink", "s", "--table", "t", "--max-slice", "45m") < 0);
    assert_true(BF("--source", "u", "--source-sink", "ch", "--sink", "s", "--table", "t") < 0);
#undef BF
    url_redact("http://u:s3cret@h:1/db", u, sizeof u);
    assert_string_equal(u, "http://u:***@h:1/db");
    url_redact("http://h:1", u, sizeof u);
    assert_string_equal(u, "http://h:1");
    assert_int_equal(migrate_url_with_auth("http://u@h:1/x", NULL, "p@ss:w", u, sizeof u), 0);
    assert_string_equal(u, "http://u:p%40ss%3Aw@h:1/x");
    assert_int_equal(migrate_url_with_auth("http://h:1", "us er", "", u, sizeof u), 0);
    assert_string_equal(u, "http://us%20er:@h:1");
    char host[64], db[64];
    unsigned port;
    assert_int_equal(migrate_url_endpoint("http://x:y@LocalHost:8123/tz", host, 64, &port, db, 64), 0);
    assert_string_equal(host, "loopback");
    assert_int_equal(port, 8123);
    assert_string_equal(db, "tz");
    assert_int_equal(migrate_url_endpoint("https://ch.example", host, 64, &port, db, 64), 0);
    assert_int_equal(port, 443);
    assert_string_equal(db, "");
    assert_int_equal(migrate_url_endpoint("clickhouse://[::1]/d", host, 64, &port, db, 64), 0);
    assert_string_equal(host, "loopback");
    assert_int_equal(port, 8123);
    assert_string_equal(db, "d");
    assert_true(migrate_url_endpoint("http://h:0", host, 64, &port, db, 64) < 0);
    assert_int_equal(migrate_url_with_auth("mysql://root@h:9030/db", NULL, "pw", u, sizeof u), 0);
    assert_string_equal(u, "mysql://root:pw@h:9030/db");
}

static void test_verify_argument_errors(void **st)
{
    (void)st;
    verify_opts_t o;
    char err[256];
#define VF(...) cli_verify_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), &o, err, sizeof err)
    assert_int_equal(VF("--a", "http://h:1", "--b", "mysql://root@h:9030/db", "--table", "db.t",
                        "--by", "hour", "--columns", "id, name ,v"),
                     0);
    assert_int_equal(o.by, VERIFY_BY_HOUR);
    assert_int_equal(o.n_columns, 3);
    assert_string_equal(o.columns[1], "name");
    assert_string_equal(o.database, "db");
    assert_int_equal(VF("--a", "clickhouse://h:1", "--b", "emu+http://h:2", "--table", "t"), 0);
    assert_int_equal(o.by, VERIFY_BY_DAY);
    assert_int_equal(o.n_columns, 0);

    assert_true(VF("--a", "http://h:1", "--table", "t") < 0);
    assert_non_null(strstr(err, "--b"));
    assert_true(VF("--a", "http://h:1", "--b", "http://h:2") < 0);
    assert_non_null(strstr(err, "--table"));
    assert_true(VF("--a", "ftp://h", "--b", "http://h:2", "--table", "t") < 0);
    assert_non_null(strstr(err, "scheme"));
    assert_true(VF("--a", "http://h:1", "--b", "http://h:2", "--table", "t", "--by", "week") < 0);
    assert_non_null(strstr(err, "--by"));
    assert_true(VF("--a", "http://h:1", "--b", "http://h:2", "--table", "t", "--columns", ",") < 0);
    assert_true(VF("--a", "http://h:1", "--b", "http://h:2", "--table", "t", "--columns", "a,b`c") <
                0);
    assert_true(VF("--a", "http://h:1", "--b", "http://h:2", "--table", "t", "--until", "x") < 0);
#undef VF
}

static void test_http_base_urls(void **st)
{
    (void)st;
    char base[256], db[64];
    const char *why;
    assert_int_equal(migrate_http_base("clickhouse://h:8123", "clickhouse://", base, sizeof base,
                                       db, sizeof db, &why),
                     0);
    assert_string_equal(base, "http://h:8123/");
    assert_string_equal(db, "");
    assert_int_equal(
        migrate_http_base("http://u:p@h:1/tz", NULL, base, sizeof base, db, sizeof db, &why), 0);
    assert_string_equal(base, "http://u:p@h:1/");
    assert_string_equal(db, "tz");
    assert_int_equal(migrate_http_base("emu+http://h:2", "emu+http://", base, sizeof base, db,
                                       sizeof db, &why),
                     0);
    assert_string_equal(base, "http://h:2/");
    /* URLs split by the one rule (common/url): each refusal says why */
    assert_true(migrate_http_base("h:1", NULL, base, sizeof base, db, sizeof db, &why) < 0);
    assert_non_null(strstr(why, "scheme"));
    assert_true(migrate_http_base("http://h:1/tz?x=1", NULL, base, sizeof base, db, sizeof db,
                                  &why) < 0); /* was dropped without a word */
    assert_non_null(strstr(why, "query string"));
    assert_true(migrate_http_base("http://h:99999", NULL, base, sizeof base, db, sizeof db,
                                  &why) < 0);
    assert_non_null(strstr(why, "port"));
    assert_true(migrate_http_base("ftp://h:1", NULL, base, sizeof base, db, sizeof db, &why) < 0);
    assert_non_null(strstr(why, "http://"));
    assert_ptr_equal(verify_reader_for("mysql://x"), &verify_reader_mysql);
    assert_ptr_equal(verify_reader_for("emu+http://x"), &verify_reader_emu);
    assert_ptr_equal(verify_reader_for("https://x"), &verify_reader_clickhouse);
    assert_null(verify_reader_for("postgres://x"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_parsing_is_utc),
        cmocka_unit_test(test_slices_cover_the_range_on_an_aligned_grid),
        cmocka_unit_test(test_label_derivation),
        cmocka_unit_test(test_checksum_canonical_form),
        cmocka_unit_test(test_json_fields_and_values),
        cmocka_unit_test(test_verify_sql_per_dialect),
        cmocka_unit_test(test_backfill_argument_errors),
        cmocka_unit_test(test_backfill_flags_parse_as_flags_and_urls_hide_passwords),
        cmocka_unit_test(test_verify_argument_errors),
        cmocka_unit_test(test_http_base_urls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
