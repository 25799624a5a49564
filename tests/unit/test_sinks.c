/* test_sinks.c — the sinks' pure pieces: idempotency keys (charset, length, hashing,
 * determinism), reply classification for every ClickHouse code class and every Stream Load
 * Status of PROTOCOLS.md §B, the JSON member reader, grouping/filtering, backoff bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sinks/sink_internal.h"

static int key_ok(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > 128) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return 0;
    }
    return 1;
}

static void test_key_has_documented_shape(void **st)
{
    (void)st;
    char k[SINK_KEY_MAX + 1];
    sink_build_key(k, 0xab12ull, "sr", "ChatInference", 10, 20, 0, 0);
    assert_string_equal(k, "sluice_000000000000ab12_sr_ChatInference_10_20");
    sink_build_key(k, 0xab12ull, "sr", "ChatInference", 10, 20, 0, 500);
    assert_string_equal(k, "sluice_000000000000ab12_sr_ChatInference_10_20_r0_500");
}

static void test_key_hashes_bad_names_and_stays_short(void **st)
{
    (void)st;
    char k[SINK_KEY_MAX + 1], k2[SINK_KEY_MAX + 1];
    sink_build_key(k, UINT64_MAX, "ch-main", "my.table$", 1, 2, 0, 0);
    assert_true(key_ok(k));
    assert_null(strstr(k, "ch-main"));
    /* deterministic */
    sink_build_key(k2, UINT64_MAX, "ch-main", "my.table$", 1, 2, 0, 0);
    assert_string_equal(k, k2);
    /* distinct names → distinct keys */
    sink_build_key(k2, UINT64_MAX, "ch-main", "my.table%", 1, 2, 0, 0);
    assert_string_not_equal(k, k2);
    /* worst case: long names, max seqs, sub-range */
    char longname[200];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    sink_build_key(k, UINT64_MAX, longname, longname, UINT64_MAX - 1, UINT64_MAX, 4000000000u,
                   4000000001u);
    assert_true(key_ok(k));
    sink_build_key(k2, UINT64_MAX, longname, longname, UINT64_MAX - 1, UINT64_MAX, 4000000000u,
                   4000000002u);
    assert_true(key_ok(k2));
    assert_string_not_equal(k, k2);
    /* 32-char names are kept, 33 hashed */
    char n32[33], n33[34];
    memset(n32, 'b', 32);
    n32[32] = '\0';
    memset(n33, 'b', 33);
    n33[33] = '\0';
    sink_build_key(k, 1, n32, "t", 1, 1, 0, 0);
    assert_non_null(strstr(k, n32));
    sink_build_key(k, 1, n33, "t", 1, 1, 0, 0);
    assert_null(strstr(k, n32));
    assert_true(key_ok(k));
}

static void test_key_differs_per_log_and_range(void **st)
{
    (void)st;
    char a[SINK_KEY_MAX + 1], b[SINK_KEY_MAX + 1];
    sink_build_key(a, 1, "s", "t", 1, 9, 0, 0);
    sink_build_key(b, 2, "s", "t", 1, 9, 0, 0);
    assert_string_not_equal(a, b);
    sink_build_key(b, 1, "s", "t", 1, 10, 0, 0);
    assert_string_not_equal(a, b);
    sink_build_key(b, 1, "s", "t", 1, 9, 0, 4);
    assert_string_not_equal(a, b);
}

static void test_backoff_within_full_jitter_bounds(void **st)
{
    (void)st;
    uint64_t rnd = 42;
    for (uint32_t attempt = 0; attempt < 40; attempt++) {
        uint64_t cap = 100;
        for (uint32_t i = 0; i < attempt && cap < 30000; i++)
            cap *= 2;
        if (cap > 30000) cap = 30000;
        uint32_t maxseen = 0;
        for (int i = 0; i < 2000; i++) {
            uint32_t d = sink_backoff_ms(100, 30000, attempt, &rnd);
            assert_true(d >= 1 && d <= cap);
            if (d > maxseen) maxseen = d;
        }
        assert_true(maxseen > cap / 2); /* actually spreads up to the cap */
    }
    assert_true(sink_backoff_ms(0, 0, 5, &rnd) >= 1);
}

static void test_json_get_reads_top_level_members(void **st)
{
    (void)st;
    const char *j = "{\n  \"TxnId\": 1001,\n  \"Label\": \"x\\\"y\",\n"
                    "  \"Nested\": {\"Status\": \"Nope\", \"a\": [1, {\"b\": \"]\"}]},\n"
                    "  \"Message\": \"say \\\"Status\\\": no\\n\",\n"
                    "  \"Status\": \"Publish Timeout\",\n  \"ok\": true\n}";
    char v[128];
    assert_int_equal(sink_json_get(j, strlen(j), "Status", v, sizeof v), 1);
    assert_string_equal(v, "Publish Timeout");
    assert_int_equal(sink_json_get(j, strlen(j), "TxnId", v, sizeof v), 1);
    assert_string_equal(v, "1001");
    assert_int_equal(sink_json_get(j, strlen(j), "Label", v, sizeof v), 1);
    assert_string_equal(v, "x\"y");
    assert_int_equal(sink_json_get(j, strlen(j), "ok", v, sizeof v), 1);
    assert_string_equal(v, "true");
    assert_int_equal(sink_json_get(j, strlen(j), "a", v, sizeof v), 0);
    assert_int_equal(sink_json_get(j, strlen(j), "status", v, sizeof v), 0);
    assert_int_equal(sink_json_get("nope", 4, "Status", v, sizeof v), -1);
    assert_int_equal(sink_json_get("{\"Status\": \"Succ", 16, "Status", v, sizeof v), -1);
    /* truncation is safe */
    char small[4];
    assert_int_equal(sink_json_get(j, strlen(j), "Status", small, sizeof small), 1);
    assert_string_equal(small, "Pub");
}

/* ---- ClickHouse ---- */

static void test_ch_error_code_both_spellings(void **st)
{
    (void)st;
    const char *old = "Code: 27, e.displayText() = DB::Exception: Cannot parse input";
    const char *mod =
        "Code: 27. DB::Exception: Cannot parse input (CANNOT_PARSE_INPUT_ASSERTION_FAILED)";
    assert_int_equal(sink_ch_error_code(NULL, old, strlen(old)), 27);
    assert_int_equal(sink_ch_error_code(NULL, mod, strlen(mod)), 27);
    assert_int_equal(sink_ch_error_code("60", mod, strlen(mod)), 60); /* header wins */
    assert_int_equal(sink_ch_error_code("", "", 0), 0);
    const char *none = "Internal Server Error";
    assert_int_equal(sink_ch_error_code(NULL, none, strlen(none)), 0);
}

static sink_result_t ch(int status, int code)
{
    sink_result_t r;
    char body[64];
    snprintf(body, sizeof body, "Code: %d. DB::Exception: x", code);
    sink_ch_classify(status, code, body, strlen(body), 0, NULL, &r);
    return r;
}

static void test_ch_classification_table(void **st)
{
    (void)st;
    sink_result_t r;
    sink_ch_classify(200, 0, "", 0, 0, NULL, &r);
    assert_int_equal(r.kind, SINK_RES_OK);
    /* row errors: bisect */
    int rows[] = {26, 27, 117, 16, 53, 6, 72, 349, 469};
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        r = ch(i % 2 ? 500 : 400, rows[i]);
        assert_int_equal(r.kind, SINK_RES_PERMANENT);
        assert_int_equal(r.whole, 0);
    }
    /* statement errors: whole batch to the DLQ */
    int whole[] = {62, 115, 50};
    for (size_t i = 0; i < sizeof whole / sizeof *whole; i++) {
        r = ch(404, whole[i]);
        assert_int_equal(r.kind, SINK_RES_PERMANENT);
        assert_int_equal(r.whole, 1);
    }
    /* auth, missing table or database: configuration, retried, never DLQ (issue 16) */
    int auth[] = {516, 192, 193, 497, 60, 81};
    for (size_t i = 0; i < sizeof auth / sizeof *auth; i++)
        assert_int_equal(ch(i ? 401 : 403, auth[i]).kind, SINK_RES_CONFIG);
    sink_ch_classify(401, 0, "", 0, 0, NULL, &r);
    assert_int_equal(r.kind, SINK_RES_CONFIG);
    /* transient */
    assert_int_equal(ch(500, 252).kind, SINK_RES_RETRY); /* TOO_MANY_PARTS */
    assert_int_equal(ch(500, 241).kind, SINK_RES_RETRY); /* MEMORY_LIMIT_EXCEEDED */
    assert_int_equal(ch(503, 0).kind, SINK_RES_RETRY);
    assert_int_equal(ch(429, 0).kind, SINK_RES_RETRY);
    assert_int_equal(ch(502, 0).kind, SINK_RES_RETRY);
    assert_int_equal(ch(500, 159).kind, SINK_RES_RETRY); /* TIMEOUT_EXCEEDED */
    assert_int_equal(ch(500, 0).kind, SINK_RES_RETRY);   /* a proxy's 5xx, no exception */
    assert_int_equal(ch(503, 1001).kind, SINK_RES_RETRY);
    /* an exception code sluice does not know: bounded retries, then bisected (issue 16) */
    assert_int_equal(ch(500, 1001).kind, SINK_RES_UNKNOWN);
    assert_int_equal(ch(400, 9999).kind, SINK_RES_UNKNOWN);
    sink_ch_classify(0, 0, NULL, 0, 1, "Connection refused", &r);
    assert_int_equal(r.kind, SINK_RES_RETRY);
    assert_non_null(strstr(r.msg, "Connection refused"));
    /* the message is the backend's */
    const char *b = "Code: 27, e.displayText() = DB::Exception: Cannot parse input: expected , "
                    "before: x\n";
    sink_ch_classify(500, sink_ch_error_code(NULL, b, strlen(b)), b, strlen(b), 0, NULL, &r);
    assert_int_equal(r.kind, SINK_RES_PERMANENT);
    assert_string_equal(r.msg, "Code: 27, e.displayText() = DB::Exception: Cannot parse input: "
                               "expected , before: x");
}

static void test_ch_version_and_dedup(void **st)
{
    (void)st;
    assert_int_equal(sink_ch_parse_version("18.16.1\n"), 18016);
    assert_int_equal(sink_ch_parse_version("22.2.1.1"), 22002);
    assert_int_equal(sink_ch_parse_version("26.7.1.1"), 26007);
    assert_int_equal(sink_ch_parse_version("garbage"), -1);
    assert_false(sink_ch_dedup_enabled(CFG_DEDUP_AUTO, 18016));
    assert_false(sink_ch_dedup_enabled(CFG_DEDUP_AUTO, 22001));
    assert_true(sink_ch_dedup_enabled(CFG_DEDUP_AUTO, 22002));
    assert_true(sink_ch_dedup_enabled(CFG_DEDUP_AUTO, 26007));
    assert_false(sink_ch_dedup_enabled(CFG_DEDUP_AUTO, -1));
    assert_true(sink_ch_dedup_enabled(CFG_DEDUP_ON, 18016));
    assert_false(sink_ch_dedup_enabled(CFG_DEDUP_OFF, 26007));
}

/* engine_full strings as system.tables shows them (measured on chDB 26.7 and Debian's 18.16). */
static void test_ch_dedup_unsafe_tables(void **st)
{
    (void)st;
    char why[256], fix[512];
    /* TensorZero's ChatInference DDL: MergeTree, no window. */
    assert_int_equal(sink_ch_dedup_unsafe(26007, "tz.ChatInference", "MergeTree",
                                          "MergeTree PARTITION BY toYYYYMM(timestamp) ORDER BY "
                                          "(function_name, variant_name, episode_id) SETTINGS "
                                          "index_granularity = 8192",
                                          why, sizeof why, fix, sizeof fix),
                     1);
    assert_string_equal(why, "MergeTree without non_replicated_deduplication_window");
    assert_string_equal(fix, "ALTER TABLE tz.ChatInference MODIFY SETTING "
                             "non_replicated_deduplication_window = 1000");
    assert_int_equal(sink_ch_dedup_unsafe(26007, "tz.t", "ReplacingMergeTree",
                                          "ReplacingMergeTree ORDER BY x SETTINGS "
                                          "index_granularity = 256, "
                                          "non_replicated_deduplication_window = 1000",
                                          why, sizeof why, fix, sizeof fix),
                     0);
    /* A window of 0 is off; a similarly named setting does not count. */
    assert_int_equal(sink_ch_dedup_unsafe(26007, "tz.t", "MergeTree",
                                          "MergeTree ORDER BY x SETTINGS "
                                          "non_replicated_deduplication_window = 0",
                                          why, sizeof why, fix, sizeof fix),
                     1);
    assert_int_equal(sink_ch_dedup_unsafe(26007, "tz.t", "MergeTree",
                                          "MergeTree ORDER BY x SETTINGS "
                                          "x_non_replicated_deduplication_window = 5",
                                          why, sizeof why, fix, sizeof fix),
                     1);
    assert_int_equal(sink_ch_dedup_unsafe(26007, "tz.t", "ReplicatedMergeTree",
                                          "ReplicatedMergeTree('/ch/t', '{replica}') ORDER BY x",
                                          why, sizeof why, fix, sizeof fix),
                     0);
    assert_int_equal(sink_ch_dedup_unsafe(26007, "tz.t", "ReplicatedMergeTree",
                                          "ReplicatedMergeTree('/ch/t', '{replica}') ORDER BY x "
                                          "SETTINGS replicated_deduplication_window = 0",
                                          why, sizeof why, fix, sizeof fix),
                     1);
    assert_int_equal(sink_ch_dedup_unsafe(26007, "db.m", "Memory", "Memory", why, sizeof why, fix,
                                          sizeof fix),
                     1);
    assert_string_equal(why, "engine Memory does not deduplicate inserts");
    /* 18.16 has no such setting: the fix says to upgrade first. */
    assert_int_equal(sink_ch_dedup_unsafe(18016, "db.t", "MergeTree",
                                          "MergeTree PARTITION BY d ORDER BY x SETTINGS "
                                          "index_granularity = 8192",
                                          why, sizeof why, fix, sizeof fix),
                     1);
    assert_non_null(strstr(fix, "upgrade ClickHouse"));
}

static void test_ch_settings_filter(void **st)
{
    (void)st;
    char *drops[] = {"input_format_null_as_default"};
    cfg_kv_t own[] = {{"max_insert_block_size", "100"}};
    cfg_sink_t c = {.name = "ch",
                    .drop_settings = drops,
                    .n_drop_settings = 1,
                    .settings = own,
                    .n_settings = 1};
    assert_false(sink_ch_setting_forwarded(&c, "async_insert"));
    assert_false(sink_ch_setting_forwarded(&c, "wait_for_async_insert"));
    assert_false(sink_ch_setting_forwarded(&c, "input_format_null_as_default"));
    assert_false(sink_ch_setting_forwarded(&c, "max_insert_block_size")); /* sink's own wins */
    assert_false(sink_ch_setting_forwarded(&c, "database"));
    assert_true(sink_ch_setting_forwarded(&c, "input_format_skip_unknown_fields"));
}

/* ---- StarRocks ---- */

static sink_result_t sr(int status, const char *body)
{
    sink_result_t r;
    sink_sr_classify(status, body, body ? strlen(body) : 0, 0, NULL, &r);
    return r;
}

static void test_sr_status_table(void **st)
{
    (void)st;
    sink_result_t r;
    r = sr(200, "{\"TxnId\": 1, \"Label\": \"l\", \"Status\": \"Success\", \"Message\": \"OK\"}");
    assert_int_equal(r.kind, SINK_RES_OK);
    r = sr(200, "{\"Status\": \"Publish Timeout\", \"Message\": \"The data will be visible after a "
                "while\"}");
    assert_int_equal(r.kind, SINK_RES_OK);
    r = sr(200, "{\"Status\": \"Label Already Exists\", \"ExistingJobStatus\": \"FINISHED\"}");
    assert_int_equal(r.kind, SINK_RES_OK);
    assert_true(r.label_used);
    r = sr(200, "{\"Status\": \"Label Already Exists\", \"ExistingJobStatus\": \"RUNNING\"}");
    assert_int_equal(r.kind, SINK_RES_RETRY);
    assert_true(r.label_used);
    assert_string_equal(r.existing, "RUNNING");
    assert_true(r.min_delay_ms >= 1000);
    /* the newer shape (StarRocks issue #57982): a Fail naming the used label, no state */
    r = sr(200, "{\"TxnId\": -1, \"Label\": \"l\", \"Status\": \"Fail\", \"Message\": \"Label "
                "[l] has already been used.\"}");
    assert_true(r.label_used);
    assert_int_equal(r.kind, SINK_RES_RETRY);
    assert_string_equal(r.existing, "");
    /* filtered rows of an accepted load are reported with the ErrorURL */
    r = sr(200, "{\"Status\": \"Success\", \"NumberFilteredRows\": 2, \"ErrorURL\": "
                "\"http://be/api/_load_error_log?file=x\"}");
    assert_int_equal(r.kind, SINK_RES_OK);
    assert_int_equal(r.filtered_rows, 2);
    assert_string_equal(r.error_url, "http://be/api/_load_error_log?file=x");
    /* get_load_state (GetStreamLoadState.java: a RestBaseResult with state, reason) */
    char state[32];
    const char *gs = "{\"state\":\"VISIBLE\",\"reason\":\"\",\"status\":\"OK\",\"code\":\"0\","
                     "\"msg\":\"Success\",\"message\":\"OK\"}";
    assert_int_equal(sink_sr_load_state(gs, strlen(gs), state, sizeof state), 0);
    assert_string_equal(state, "VISIBLE");
    gs = "{\"status\":\"FAILED\",\"code\":\"1\",\"msg\":\"unknown database, database=x\"}";
    assert_int_equal(sink_sr_load_state(gs, strlen(gs), state, sizeof state), -1);
    /* permanent Fail messages */
    const char *perm[] = {
        "too many filtered rows",
        "Failed to parse json as document stream",
        "The value should be object type in json document stream",
        "Failed to iterate document stream as object. error: UTF8_ERROR: The input is not valid "
        "UTF-8",
        "The size of this batch exceed the max size [104857600]  of json type data  data [ "
        "104857700 ]. Set ignore_json_size to skip the check, although it may lead huge memory "
        "consuming.",
    };
    for (size_t i = 0; i < sizeof perm / sizeof *perm; i++) {
        char b[256];
        snprintf(b, sizeof b, "{\"Status\": \"Fail\", \"Message\": \"%s\", \"ErrorURL\": \"u\"}",
                 perm[i]);
        r = sr(200, b);
        assert_int_equal(r.kind, SINK_RES_PERMANENT);
        assert_int_equal(r.whole, 0);
        assert_string_equal(r.msg, perm[i]);
    }
    /* a missing database or table: configuration, retried, never DLQ (issue 16) */
    r = sr(200, "{\"Status\": \"Fail\", \"Message\": \"unknown database, database=x\"}");
    assert_int_equal(r.kind, SINK_RES_CONFIG);
    r = sr(200, "{\"Status\": \"Fail\", \"Message\": \"unknown table \\\"db.t\\\"\"}");
    assert_int_equal(r.kind, SINK_RES_CONFIG);
    /* a message nobody listed: bounded retries, then bisected */
    r = sr(200, "{\"Status\": \"Fail\", \"Message\": \"something new went wrong\"}");
    assert_int_equal(r.kind, SINK_RES_UNKNOWN);
    assert_string_equal(r.msg, "something new went wrong");
    /* FE: No backend alive (LoadAction.java) is transient, not configuration */
    r = sr(200, "{\"Status\": \"FAILED\", \"Message\": \"class com.starrocks.common.DdlException: "
                "No backend alive.\"}");
    assert_int_equal(r.kind, SINK_RES_RETRY);
    r = sr(200, "{\"Status\": \"Fail\", \"Message\": \"Access denied for root@127.0.0.1\"}");
    assert_int_equal(r.kind, SINK_RES_CONFIG);
    r = sr(200, "{\"Status\": \"Fail\", \"Message\": \"Access denied; you need (at least one of) "
                "the INSERT privilege(s)\"}");
    assert_int_equal(r.kind, SINK_RES_CONFIG);
    /* retryable Fail */
    r = sr(200, "{\"Status\": \"Fail\", \"Message\": \"too many versions\"}");
    assert_int_equal(r.kind, SINK_RES_RETRY);
    r = sr(200, "{\"Status\": \"Fail\", \"Message\": \"service unavailable\"}");
    assert_int_equal(r.kind, SINK_RES_RETRY);
    /* FE refusals: configuration */
    r = sr(200, "{\"Status\": \"FAILED\", \"Message\": \"class com.starrocks.common.DdlException: "
                "There is no 100-continue header\"}");
    assert_int_equal(r.kind, SINK_RES_CONFIG);
    assert_non_null(strstr(r.msg, "100-continue"));
    r = sr(401,
           "{\"status\":\"FAILED\",\"code\":\"1\",\"msg\":\"Access denied for root@127.0.0.1\"}");
    assert_int_equal(r.kind, SINK_RES_CONFIG);
    assert_non_null(strstr(r.msg, "Access denied"));
    r = sr(200, "{\"status\":\"FAILED\",\"msg\":\"no database selected\"}");
    assert_int_equal(r.kind, SINK_RES_CONFIG);
    /* failures */
    assert_int_equal(sr(503, "busy").kind, SINK_RES_RETRY);
    /* a 5xx/429 with a FE-style JSON body is overload, not configuration (chaos finding) */
    assert_int_equal(sr(503, "{\"status\":\"FAILED\",\"msg\":\"service unavailable\"}").kind,
                     SINK_RES_RETRY);
    assert_int_equal(sr(429, "{\"status\":\"FAILED\",\"msg\":\"too many requests\"}").kind,
                     SINK_RES_RETRY);
    assert_int_equal(sr(500, NULL).kind, SINK_RES_RETRY);
    assert_int_equal(sr(200, "{\"Status\": \"Weird\"}").kind, SINK_RES_UNKNOWN);
    assert_int_equal(sr(200, "{\"Foo\": 1}").kind, SINK_RES_UNKNOWN);
    assert_int_equal(sr(200, "not json").kind, SINK_RES_UNKNOWN);
    sink_sr_classify(0, NULL, 0, 1, "Operation timed out", &r);
    assert_int_equal(r.kind, SINK_RES_RETRY);
}

/* ---- grouping ---- */

static wal_record_t rec(uint64_t seq, const char *db, const char *table, const char *cols,
                        const char *target, const char *rows, uint32_t n)
{
    wal_record_t r = {.seq = seq,
                      .db = db,
                      .table = table,
                      .columns = cols,
                      .target = target,
                      .rows = rows,
                      .rows_len = strlen(rows),
                      .n_rows = n,
                      .fmt = "JSONEachRow"};
    return r;
}

static void test_grouping_per_table_in_log_order(void **st)
{
    (void)st;
    wal_kv_t s1[] = {{"a", "1"}};
    wal_record_t r[7] = {
        rec(1, "db", "A", NULL, NULL, "{\"x\":1}\n", 1),
        rec(2, "db", "B", NULL, NULL, "{\"x\":2}\n", 1),
        rec(3, "db", "A", NULL, NULL, "{\"x\":3}\n{\"x\":4}\n", 2),
        rec(4, "db", "A", "x", NULL, "{\"x\":5}\n", 1),     /* other columns */
        rec(5, "db", "A", NULL, "other", "{\"x\":6}\n", 1), /* for another sink */
        rec(6, "db", "A", NULL, "ch", "{\"x\":7}\n", 1),    /* for this sink */
        rec(7, "db", "A", NULL, NULL, "{\"x\":8}\n", 1),
    };
    r[6].settings = s1; /* other settings */
    r[6].n_settings = 1;
    const wal_record_t *p[7];
    for (int i = 0; i < 7; i++)
        p[i] = &r[i];
    cfg_sink_t c = {.name = "ch"};
    sink_group_t *g;
    size_t n;
    assert_int_equal(sink_group_records(&c, p, 7, &g, &n), 0);
    assert_int_equal(n, 4);
    assert_string_equal(g[0].table, "A");
    assert_int_equal(g[0].n, 3);
    assert_int_equal(g[0].recs[0]->seq, 1);
    assert_int_equal(g[0].recs[1]->seq, 3);
    assert_int_equal(g[0].recs[2]->seq, 6);
    assert_int_equal(g[0].first_seq, 1);
    assert_int_equal(g[0].last_seq, 6);
    assert_int_equal(g[0].n_rows, 4);
    assert_string_equal(g[1].table, "B");
    assert_int_equal(g[2].recs[0]->seq, 4);
    assert_int_equal(g[3].recs[0]->seq, 7);
    sink_groups_free(g, n);
}

static void test_grouping_filters_rename_and_database(void **st)
{
    (void)st;
    wal_record_t r[4] = {
        rec(1, "", "A", NULL, NULL, "{}\n", 1),
        rec(2, "db", "B", NULL, NULL, "{}\n", 1),
        rec(3, "db", "C", NULL, NULL, "{}\n", 1),
        rec(4, "other", "A", NULL, NULL, "{}\n", 1),
    };
    const wal_record_t *p[4] = {&r[0], &r[1], &r[2], &r[3]};
    char *exc[] = {"db.C"};
    cfg_kv_t ren[] = {{"A", "A_sr"}};
    cfg_sink_t c = {.name = "sr", .exclude = exc, .n_exclude = 1, .rename = ren, .n_rename = 1};
    sink_group_t *g;
    size_t n;
    assert_int_equal(sink_group_records(&c, p, 4, &g, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(g[0].db, "default");
    assert_string_equal(g[0].table, "A_sr");
    assert_string_equal(g[0].orig_table, "A");
    assert_string_equal(g[1].table, "B");
    assert_string_equal(g[2].db, "other");
    assert_string_equal(g[2].table, "A_sr");
    sink_groups_free(g, n);

    char *inc[] = {"B"};
    cfg_sink_t c2 = {.name = "sr", .include = inc, .n_include = 1, .database = "wh"};
    assert_int_equal(sink_group_records(&c2, p, 4, &g, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(g[0].db, "wh");
    assert_string_equal(g[0].table, "B");
    sink_groups_free(g, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_has_documented_shape),
        cmocka_unit_test(test_key_hashes_bad_names_and_stays_short),
        cmocka_unit_test(test_key_differs_per_log_and_range),
        cmocka_unit_test(test_backoff_within_full_jitter_bounds),
        cmocka_unit_test(test_json_get_reads_top_level_members),
        cmocka_unit_test(test_ch_error_code_both_spellings),
        cmocka_unit_test(test_ch_classification_table),
        cmocka_unit_test(test_ch_version_and_dedup),
        cmocka_unit_test(test_ch_dedup_unsafe_tables),
        cmocka_unit_test(test_ch_settings_filter),
        cmocka_unit_test(test_sr_status_table),
        cmocka_unit_test(test_grouping_per_table_in_log_order),
        cmocka_unit_test(test_grouping_filters_rename_and_database),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
