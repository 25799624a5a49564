/* test_config.c — config/ unit tests: every key parsed, defaults, each error path (message
 * text with file, line and key), ${VAR} interpolation, environment overrides including the
 * TensorZero URL form, print -> load round trip, and the shipped examples. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"

static char err[1024];

static void clear_env(void)
{
    static const char *vars[] = {"SLUICE_LISTEN",
                                 "SLUICE_ADMIN_LISTEN",
                                 "SLUICE_WAL_DIR",
                                 "SLUICE_CLICKHOUSE_URL",
                                 "CFGT_A",
                                 "CFGT_B",
                                 "CFGT_EMPTY",
                                 "CLICKHOUSE_PASSWORD",
                                 "SLUICE_ADMIN_TOKEN",
                                 "CLICKHOUSE_URL"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
}

static int setup(void **state)
{
    (void)state;
    clear_env();
    err[0] = '\0';
    return 0;
}

static int load(sluice_cfg_t *cfg, const char *yaml)
{
    return cfg_load_string(cfg, yaml, "t.yaml", err, sizeof err);
}

static int is_zero(const sluice_cfg_t *cfg)
{
    static const sluice_cfg_t zero;
    return memcmp(cfg, &zero, sizeof zero) == 0;
}

/* Load must fail with a message that starts with want; cfg must come back zeroed. */
#define expect_error(yaml, want)                                                                   \
    do {                                                                                           \
        sluice_cfg_t c_;                                                                           \
        int rc_ = load(&c_, (yaml));                                                               \
        if (rc_ >= 0 || strncmp(err, (want), strlen(want)) != 0)                                   \
            fail_msg("rc=%d\n got:  %s\n want: %s", rc_, err, (want));                             \
        assert_true(is_zero(&c_));                                                                 \
    } while (0)

/* Load and finish must succeed. */
static void load_ok(sluice_cfg_t *cfg, const char *yaml)
{
    int rc = load(cfg, yaml);
    if (rc != 0) fail_msg("load failed: %s", err);
    rc = cfg_finish(cfg, err, sizeof err);
    if (rc != 0) fail_msg("finish failed: %s", err);
}

static const char *MIN_SINK = "sinks:\n  - {name: ch, type: clickhouse, url: http://h:8123}\n";

/* ---- defaults ---- */

static void test_defaults_match_header(void **state)
{
    (void)state;
    sluice_cfg_t c;
    cfg_defaults(&c);
    assert_null(c.path);
    assert_string_equal(c.wal.dir, "./sluice-wal");
    assert_int_equal(c.wal.max_bytes, 1ULL << 30);
    assert_int_equal(c.wal.max_record_bytes, 1u << 20);
    assert_int_equal(c.wal.sync, CFG_SYNC_ALWAYS);
    assert_int_equal(c.wal.sync_interval_ms, 100);
    assert_int_equal(c.wal.when_full, CFG_FULL_REJECT);
    assert_int_equal(c.wal.block_timeout_ms, 5000);
    assert_int_equal(c.wal.truncate_chunk, 1000);
    assert_int_equal(c.wal.ready_below_pct, 90);
    assert_string_equal(c.proxy.listen, "127.0.0.1:8123");
    assert_null(c.proxy.passthrough_url);
    assert_int_equal(c.proxy.max_body_bytes, 64ULL << 20);
    assert_int_equal(c.proxy.max_header_bytes, 64u << 10);
    assert_int_equal(c.proxy.idle_timeout_ms, 60000);
    assert_int_equal(c.proxy.passthrough_timeout_ms, 300000);
    assert_int_equal(c.proxy.read_barrier_ms, 3000);
    assert_int_equal(c.proxy.max_connections, 10000);
    assert_int_equal(c.proxy.n_users, 0);
    assert_int_equal(c.n_sinks, 0);
    assert_string_equal(c.admin.listen, "127.0.0.1:8124");
    assert_null(c.admin.token);
    assert_int_equal(c.log.level, LOG_LEVEL_INFO);
    assert_int_equal(c.shutdown.drain_timeout_s, 30);
    cfg_free(&c);
    assert_true(is_zero(&c));
}

static void test_sink_defaults_and_empty_sections(void **state)
{
    (void)state;
    sluice_cfg_t c;
    load_ok(&c, "wal:\nproxy: ~\nadmin: null\nsinks:\n"
                "  - {name: ch, type: clickhouse, url: http://h:8123}\n"
                "  - {name: sr, type: starrocks, url: https://fe:8030}\n");
    assert_int_equal(c.n_sinks, 2);
    const cfg_sink_t *ch = &c.sinks[0], *sr = &c.sinks[1];
    assert_string_equal(ch->user, "default");
    assert_string_equal(sr->user, "root");
    assert_string_equal(ch->password, "");
    assert_null(ch->database);
    assert_int_equal(ch->enabled, 1);
    assert_int_equal(ch->primary, 1);
    assert_int_equal(sr->primary, 0);
    assert_int_equal(
        ch->n_include + ch->n_exclude + ch->n_rename + ch->n_settings + ch->n_drop_settings, 0);
    assert_int_equal(ch->batch_max_rows, 10000);
    assert_int_equal(ch->batch_max_bytes, 8ULL << 20);
    assert_int_equal(ch->batch_max_wait_ms, 200);
    assert_int_equal(ch->retry_initial_backoff_ms, 100);
    assert_int_equal(ch->retry_max_backoff_ms, 30000);
    assert_int_equal(ch->connect_timeout_ms, 2000);
    assert_int_equal(ch->request_timeout_ms, 30000);
    assert_int_equal(ch->compress, 0);
    assert_int_equal(ch->start_from, CFG_START_EARLIEST);
    assert_int_equal(ch->overflow, CFG_OVERFLOW_BLOCK);
    assert_int_equal(ch->dedup, CFG_DEDUP_AUTO);
    assert_true(ch->max_filter_ratio == 0.0);
    /* Defaults survive empty sections, and passthrough_url follows the primary. */
    assert_string_equal(c.wal.dir, "./sluice-wal");
    assert_string_equal(c.proxy.passthrough_url, "http://h:8123");
    assert_ptr_equal(cfg_primary_sink(&c), ch);
    assert_string_equal(c.path, "t.yaml");
    cfg_free(&c);
}

/* ---- every key ---- */

static const char *FULL = "wal:\n"
                          "  dir: /var/wal\n"
                          "  max_bytes: 2GiB\n"
                          "  max_record_bytes: 512KiB\n"
                          "  sync: interval\n"
                          "  sync_interval_ms: 250\n"
                          "  when_full: block\n"
                          "  block_timeout_ms: 7000\n"
                          "  truncate_chunk: 500\n"
                          "  ready_below_pct: 80\n"
                          "proxy:\n"
                          "  listen: 0.0.0.0:9000\n"
                          "  passthrough_url: http://reads:8123\n"
                          "  max_body_bytes: 100MB\n"
                          "  max_header_bytes: 32KiB\n"
                          "  idle_timeout_ms: 1000\n"
                          "  passthrough_timeout_ms: 2000\n"
                          "  read_barrier_ms: 300\n"
                          "  max_connections: 42\n"
                          "  users:\n"
                          "    - {user: alice, password: a$$b}\n"
                          "    - user: bob\n"
                          "sinks:\n"
                          "  - name: ch_1\n"
                          "    type: clickhouse\n"
                          "    enabled: yes\n"
                          "    primary: false\n"
                          "    url: http://ch:8123\n"
                          "    user: writer\n"
                          "    password: \"s3cr\\\"et\"\n"
                          "    database: analytics\n"
                          "    include: [A, B]\n"
                          "    exclude: [C]\n"
                          "    rename: {A: A_v2}\n"
                          "    settings: {max_insert_threads: \"4\", empty: \"\"}\n"
                          "    drop_settings: [async_insert]\n"
                          "    batch: {max_rows: 500, max_bytes: 1MiB, max_wait_ms: 0}\n"
                          "    retry: {initial_backoff_ms: 50, max_backoff_ms: 60000}\n"
                          "    connect_timeout_ms: 1500\n"
                          "    request_timeout_ms: 45000\n"
                          "    compress: gzip\n"
                          "    start_from: latest\n"
                          "    overflow: drop_oldest\n"
                          "    dedup: off\n"
                          "    max_filter_ratio: 0\n"
                          "  - name: ch-2\n"
                          "    type: clickhouse\n"
                          "    url: https://ch2:8443/prefix\n"
                          "    dedup: on\n"
                          "    compress: true\n"
                          "  - name: SR\n"
                          "    type: starrocks\n"
                          "    enabled: off\n"
                          "    url: http://fe:8030\n"
                          "    max_filter_ratio: 0.25\n"
                          "    compress: none\n"
                          "admin:\n"
                          "  listen: '[::1]:8124'\n"
                          "  token: tok\n"
                          "log:\n"
                          "  level: debug\n"
                          "shutdown:\n"
                          "  drain_timeout_s: 5\n";

static void check_full(const sluice_cfg_t *c, int masked)
{
    assert_string_equal(c->wal.dir, "/var/wal");
    assert_int_equal(c->wal.max_bytes, 2ULL << 30);
    assert_int_equal(c->wal.max_record_bytes, 512u << 10);
    assert_int_equal(c->wal.sync, CFG_SYNC_INTERVAL);
    assert_int_equal(c->wal.sync_interval_ms, 250);
    assert_int_equal(c->wal.when_full, CFG_FULL_BLOCK);
    assert_int_equal(c->wal.block_timeout_ms, 7000);
    assert_int_equal(c->wal.truncate_chunk, 500);
    assert_int_equal(c->wal.ready_below_pct, 80);
    assert_string_equal(c->proxy.listen, "0.0.0.0:9000");
    assert_string_equal(c->proxy.passthrough_url, "http://reads:8123");
    assert_int_equal(c->proxy.max_body_bytes, 100000000);
    assert_int_equal(c->proxy.max_header_bytes, 32768);
    assert_int_equal(c->proxy.idle_timeout_ms, 1000);
    assert_int_equal(c->proxy.passthrough_timeout_ms, 2000);
    assert_int_equal(c->proxy.read_barrier_ms, 300);
    assert_int_equal(c->proxy.max_connections, 42);
    assert_int_equal(c->proxy.n_users, 2);
    assert_string_equal(c->proxy.users[0].user, "alice");
    assert_string_equal(c->proxy.users[0].password, masked ? "***" : "a$b");
    assert_string_equal(c->proxy.users[1].user, "bob");
    assert_string_equal(c->proxy.users[1].password, "");
    assert_int_equal(c->n_sinks, 3);
    const cfg_sink_t *s = &c->sinks[0];
    assert_string_equal(s->name, "ch_1");
    assert_int_equal(s->type, CFG_SINK_CLICKHOUSE);
    assert_int_equal(s->enabled, 1);
    assert_int_equal(s->primary, 0);
    assert_string_equal(s->url, "http://ch:8123");
    assert_string_equal(s->user, "writer");
    assert_string_equal(s->password, masked ? "***" : "s3cr\"et");
    assert_string_equal(s->database, "analytics");
    assert_int_equal(s->n_include, 2);
    assert_string_equal(s->include[0], "A");
    assert_string_equal(s->include[1], "B");
    assert_int_equal(s->n_exclude, 1);
    assert_string_equal(s->exclude[0], "C");
    assert_int_equal(s->n_rename, 1);
    assert_string_equal(s->rename[0].key, "A");
    assert_string_equal(s->rename[0].value, "A_v2");
    assert_int_equal(s->n_settings, 2);
    assert_string_equal(s->settings[0].key, "max_insert_threads");
    assert_string_equal(s->settings[0].value, "4");
    assert_string_equal(s->settings[1].value, "");
    assert_int_equal(s->n_drop_settings, 1);
    assert_string_equal(s->drop_settings[0], "async_insert");
    assert_int_equal(s->batch_max_rows, 500);
    assert_int_equal(s->batch_max_bytes, 1u << 20);
    assert_int_equal(s->batch_max_wait_ms, 0);
    assert_int_equal(s->retry_initial_backoff_ms, 50);
    assert_int_equal(s->retry_max_backoff_ms, 60000);
    assert_int_equal(s->connect_timeout_ms, 1500);
    assert_int_equal(s->request_timeout_ms, 45000);
    assert_int_equal(s->compress, 1);
    assert_int_equal(s->start_from, CFG_START_LATEST);
    assert_int_equal(s->overflow, CFG_OVERFLOW_DROP_OLDEST);
    assert_int_equal(s->dedup, CFG_DEDUP_OFF);
    /* primary: false on the first clickhouse sink hands the default to the next one. */
    s = &c->sinks[1];
    assert_string_equal(s->name, "ch-2");
    assert_int_equal(s->primary, 1);
    assert_string_equal(s->url, "https://ch2:8443/prefix");
    assert_int_equal(s->dedup, CFG_DEDUP_ON);
    assert_int_equal(s->compress, 1);
    assert_ptr_equal(cfg_primary_sink(c), s);
    s = &c->sinks[2];
    assert_string_equal(s->name, "SR");
    assert_int_equal(s->type, CFG_SINK_STARROCKS);
    assert_int_equal(s->enabled, 0);
    assert_int_equal(s->primary, 0);
    assert_string_equal(s->user, "root");
    assert_true(s->max_filter_ratio == 0.25);
    assert_int_equal(s->compress, 0);
    assert_string_equal(c->admin.listen, "[::1]:8124");
    assert_string_equal(c->admin.token, masked ? "***" : "tok");
    assert_int_equal(c->log.level, LOG_LEVEL_DEBUG);
    assert_int_equal(c->shutdown.drain_timeout_s, 5);
}

static void test_every_key_parsed(void **state)
{
    (void)state;
    sluice_cfg_t c;
    load_ok(&c, FULL);
    check_full(&c, 0);
    cfg_free(&c);
}

static void test_bytes_units(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        uint64_t v;
    } good[] = {
        {"0", 0},
        {"1000", 1000},
        {"1B", 1},
        {"2KB", 2000},
        {"2KiB", 2048},
        {"3 MB", 3000000},
        {"3MiB", 3145728},
        {"1GB", 1000000000},
        {"1GiB", 1073741824},
        {"64mib", 64ULL << 20},
        {"18446744073709551615", UINT64_MAX},
    };
    static const char *bad[] = {"",
                                "-1",
                                "+1",
                                "1.5MiB",
                                "MiB",
                                "1 ",
                                " 1",
                                "1TiB",
                                "1 2",
                                "1MiBs",
                                "18446744073709551616",
                                "17179869184GiB",
                                "ten"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint64_t v = 7;
        assert_int_equal(cfg_parse_bytes(good[i].s, &v), 0);
        assert_true(v == good[i].v);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 7;
        if (cfg_parse_bytes(bad[i], &v) >= 0) fail_msg("accepted \"%s\"", bad[i]);
    }
}

static void test_booleans_every_spelling(void **state)
{
    (void)state;
    static const char *t[] = {"true", "yes", "on", "1", "True", "YES"};
    static const char *f[] = {"false", "no", "off", "0", "False", "NO"};
    char y[256];
    sluice_cfg_t c;
    for (size_t i = 0; i < 6; i++) {
        snprintf(y, sizeof y,
                 "sinks:\n  - {name: a, type: clickhouse, url: http://h:1, enabled: %s}\n", t[i]);
        load_ok(&c, y);
        assert_int_equal(c.sinks[0].enabled, 1);
        cfg_free(&c);
        snprintf(y, sizeof y,
                 "proxy: {passthrough_url: http://x:1}\nsinks:\n  - {name: a, type: clickhouse, "
                 "url: http://h:1, enabled: %s}\n",
                 f[i]);
        load_ok(&c, y);
        assert_int_equal(c.sinks[0].enabled, 0);
        assert_null(cfg_primary_sink(&c));
        cfg_free(&c);
    }
}

static void test_listen_forms(void **state)
{
    (void)state;
    char host[64];
    uint16_t port = 0;
    assert_int_equal(cfg_parse_listen("127.0.0.1:8123", host, sizeof host, &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8123);
    assert_int_equal(cfg_parse_listen("[::1]:1", host, sizeof host, &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 1);
    assert_int_equal(cfg_parse_listen("localhost:65535", host, sizeof host, &port), 0);
    assert_int_equal(port, 65535);
    static const char *bad[] = {"",      "8123",     ":8123",     "h:0",  "h:65536", "h:",
                                "h:12x", "::1:8123", "[::1]8123", "[]:1", "h h:1",   "h:123456"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (cfg_parse_listen(bad[i], host, sizeof host, &port) >= 0)
            fail_msg("accepted %s", bad[i]);
    assert_true(cfg_parse_listen("averyveryverylonghostname:1", host, 4, &port) < 0);
}

/* ---- errors: each one names file, line and key ---- */

static void test_error_bad_integer_names_file_line_key(void **state)
{
    (void)state;
    expect_error("sinks:\n"
                 "  - name: ch\n"
                 "    type: clickhouse\n"
                 "    url: http://h:8123\n"
                 "    batch:\n"
                 "      max_rows: ten\n",
                 "t.yaml:6: sinks[0].batch.max_rows: expected a positive integer, got \"ten\"");
    expect_error("sinks:\n  - {name: a, type: clickhouse, url: http://h:1}\n"
                 "  - name: b\n    type: clickhouse\n    url: http://h:1\n"
                 "    batch: {max_rows: \"ten\"}\n",
                 "t.yaml:6: sinks[1].batch.max_rows: expected a positive integer, got \"ten\"");
}

static void test_error_bad_values(void **state)
{
    (void)state;
    expect_error("wal:\n  truncate_chunk: -5\n",
                 "t.yaml:2: wal.truncate_chunk: expected a positive integer, got \"-5\"");
    expect_error("proxy:\n  read_barrier_ms: 1.5\n",
                 "t.yaml:2: proxy.read_barrier_ms: expected a non-negative integer, got \"1.5\"");
    expect_error(
        "proxy:\n  max_connections: 99999999999999999999999\n",
        "t.yaml:2: proxy.max_connections: \"99999999999999999999999\" is out of range 1..1000000");
    expect_error("proxy:\n  max_connections: 4294967296\n",
                 "t.yaml:2: proxy.max_connections: \"4294967296\" is out of range");
    expect_error("proxy:\n  max_connections: \"\"\n",
                 "t.yaml:2: proxy.max_connections: expected a positive integer, got \"\"");
    expect_error("proxy:\n  max_connections:\n",
                 "t.yaml:2: proxy.max_connections: expected a positive integer, got \"\"");
    expect_error("wal:\n  ready_below_pct: 0\n",
                 "t.yaml:2: wal.ready_below_pct: \"0\" is out of range 1..100");
    expect_error("wal:\n  ready_below_pct: 101\n",
                 "t.yaml:2: wal.ready_below_pct: \"101\" is out of range 1..100");
    expect_error("wal:\n  max_bytes: lots\n", "t.yaml:2: wal.max_bytes: expected a size in bytes");
    expect_error("wal:\n  max_bytes: -1GiB\n", "t.yaml:2: wal.max_bytes: expected a size in bytes");
    expect_error("wal:\n  max_bytes: 99999999999999GiB\n",
                 "t.yaml:2: wal.max_bytes: \"99999999999999GiB\" is out of range 1MiB..16TiB");
    expect_error("wal:\n  max_record_bytes: 512\n",
                 "t.yaml:2: wal.max_record_bytes: \"512\" is out of range 1KiB..1GiB");
    expect_error(
        "wal:\n  max_record_bytes: 512MiB\n  max_bytes: 256MiB\n",
        "t.yaml:2: wal.max_record_bytes: 536870912 is larger than wal.max_bytes (268435456)");
    expect_error("wal:\n  sync: sometimes\n",
                 "t.yaml:2: wal.sync: expected one of always, interval, none, got \"sometimes\"");
    expect_error("wal:\n  when_full: wait\n",
                 "t.yaml:2: wal.when_full: expected one of reject, block");
    expect_error("log:\n  level: verbose\n",
                 "t.yaml:2: log.level: expected one of debug, info, warn, error");
    expect_error("proxy:\n  listen: 8123\n", "t.yaml:2: proxy.listen: expected host:port");
    expect_error("proxy:\n  listen: 'h:0'\n",
                 "t.yaml:2: proxy.listen: expected host:port with port 1-65535");
    expect_error("proxy:\n  listen: 'h:65536'\n", "t.yaml:2: proxy.listen: expected host:port");
    expect_error("admin:\n  listen: nope\n", "t.yaml:2: admin.listen: expected host:port");
    expect_error(
        "proxy:\n  passthrough_url: ftp://x\n",
        "t.yaml:2: proxy.passthrough_url: expected an http:// or https:// URL, got \"ftp://x\"");
    expect_error("shutdown:\n  drain_timeout_s: 100000\n",
                 "t.yaml:2: shutdown.drain_timeout_s: \"100000\" is out of range 0..86400");
    expect_error("sinks:\n  - {name: a, type: mysql, url: http://h:1}\n",
                 "t.yaml:2: sinks[0].type: expected one of clickhouse, starrocks, got \"mysql\"");
    expect_error("sinks:\n  - {name: a, type: clickhouse, url: http://h:1, enabled: maybe}\n",
                 "t.yaml:2: sinks[0].enabled: expected true or false, got \"maybe\"");
    expect_error("sinks:\n  - {name: a, type: clickhouse, url: http://h:1, compress: zstd}\n",
                 "t.yaml:2: sinks[0].compress: expected gzip, none, true or false, got \"zstd\"");
    expect_error("sinks:\n  - {name: a, type: clickhouse, url: http://h:1, dedup: maybe}\n",
                 "t.yaml:2: sinks[0].dedup: expected one of auto, on, off");
    expect_error("sinks:\n  - {name: a, type: clickhouse, url: http://h:1, start_from: now}\n",
                 "t.yaml:2: sinks[0].start_from: expected one of earliest, latest");
    expect_error("sinks:\n  - {name: a, type: clickhouse, url: http://h:1, overflow: spill}\n",
                 "t.yaml:2: sinks[0].overflow: expected one of block, drop_oldest");
    expect_error(
        "sinks:\n  - {name: a, type: starrocks, url: http://h:1, max_filter_ratio: 1.5}\n",
        "t.yaml:2: sinks[0].max_filter_ratio: expected a number between 0 and 1, got \"1.5\"");
    expect_error(
        "sinks:\n  - {name: a, type: starrocks, url: http://h:1, max_filter_ratio: -0.1}\n",
        "t.yaml:2: sinks[0].max_filter_ratio: expected a number between 0 and 1");
    expect_error("sinks:\n  - {name: a, type: starrocks, url: http://h:1, max_filter_ratio: nan}\n",
                 "t.yaml:2: sinks[0].max_filter_ratio: expected a number between 0 and 1");
    expect_error("sinks:\n  - {name: a, type: clickhouse, url: 'h:8123'}\n",
                 "t.yaml:2: sinks[0].url: expected an http:// or https:// URL, got \"h:8123\"");
    expect_error("sinks:\n  - {name: a, type: clickhouse, url: 'http://u:p@h:8123'}\n",
                 "t.yaml:2: sinks[0].url: credentials in the URL are not allowed here");
    expect_error("sinks:\n  - {name: a, type: clickhouse, url: 'http://h:99999'}\n",
                 "t.yaml:2: sinks[0].url: bad port in URL (1-65535)");
    expect_error("sinks:\n  - {name: a, type: clickhouse, url: 'http://h:1/?x=1'}\n",
                 "t.yaml:2: sinks[0].url: a query string or fragment is not allowed");
    expect_error(
        "sinks:\n  - {name: 'a b', type: clickhouse, url: http://h:1}\n",
        "t.yaml:2: sinks[0].name: expected a name of 1-64 characters [A-Za-z0-9_-], got \"a b\"");
    expect_error(
        "sinks:\n  - {name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, "
        "type: clickhouse, url: http://h:1}\n",
        "t.yaml:2: sinks[0].name: expected a name of 1-64 characters");
    expect_error("sinks:\n  - {name: a, type: clickhouse, url: http://h:1, include: [A, \"\"]}\n",
                 "t.yaml:2: sinks[0].include[1]: expected a non-empty string");
    expect_error("sinks:\n  - {name: a, type: clickhouse, url: http://h:1, rename: {A: \"\"}}\n",
                 "t.yaml:2: sinks[0].rename.A: expected a non-empty string");
    expect_error(
        "sinks:\n  - name: a\n    type: clickhouse\n    url: http://h:1\n"
        "    retry: {initial_backoff_ms: 500, max_backoff_ms: 100}\n",
        "t.yaml:2: sinks[0].retry.max_backoff_ms: 100 is smaller than initial_backoff_ms (500)");
    expect_error("wal:\n  dir: \"\"\n", "t.yaml:2: wal.dir: expected a non-empty string");
    expect_error("wal:\n  dir: \"a\\0b\"\n", "t.yaml:2: wal.dir: NUL character in value");
}

static void test_error_unknown_keys(void **state)
{
    (void)state;
    expect_error("wal: {}\nsinkz: []\n", "t.yaml:2: sinkz: unknown key (did you mean sinks?)");
    expect_error("zzzz: 1\n", "t.yaml:1: zzzz: unknown key");
    expect_error("wal:\n  dir: x\n  max_byte: 1GiB\n",
                 "t.yaml:3: wal.max_byte: unknown key (did you mean max_bytes?)");
    expect_error("sinks:\n  - name: a\n    type: clickhouse\n    url: http://h:1\n    bogus: 1\n",
                 "t.yaml:5: sinks[0].bogus: unknown key");
    expect_error(
        "sinks:\n  - name: a\n    type: clickhouse\n    url: http://h:1\n    batch: {max_row: 1}\n",
        "t.yaml:5: sinks[0].batch.max_row: unknown key (did you mean max_rows?)");
    expect_error("proxy:\n  users:\n    - {user: a, pass: b}\n",
                 "t.yaml:3: proxy.users[0].pass: unknown key");
}

static void test_error_wrong_node_kinds(void **state)
{
    (void)state;
    expect_error("- a\n- b\n", "t.yaml:1: (top level): expected a mapping of sections, got a list");
    expect_error("wal: [1, 2]\n", "t.yaml:1: wal: expected a mapping, got a list");
    expect_error("wal:\n  dir: {a: 1}\n",
                 "t.yaml:2: wal.dir: expected a scalar value, got a mapping");
    expect_error("wal:\n  dir: [a]\n", "t.yaml:2: wal.dir: expected a scalar value, got a list");
    expect_error("sinks: {name: a}\n", "t.yaml:1: sinks: expected a list, got a mapping");
    expect_error("sinks:\n  - just-a-string\n",
                 "t.yaml:2: sinks[0]: expected a mapping, got a scalar");
    expect_error("sinks:\n  - {name: a, type: clickhouse, url: http://h:1, include: A}\n",
                 "t.yaml:2: sinks[0].include: expected a list, got a scalar");
    expect_error("sinks:\n  - {name: a, type: clickhouse, url: http://h:1, rename: [A]}\n",
                 "t.yaml:2: sinks[0].rename: expected a mapping, got a list");
    expect_error("sinks:\n  - {name: a, type: clickhouse, url: http://h:1, settings: {k: [1]}}\n",
                 "t.yaml:2: sinks[0].settings.k: expected a scalar value, got a list");
    expect_error("proxy:\n  users: {user: a}\n",
                 "t.yaml:2: proxy.users: expected a list, got a mapping");
    expect_error("wal:\n  ? [a]\n  : 1\n", "t.yaml:2: wal: expected a plain key, got a list");
}

static void test_error_duplicates(void **state)
{
    (void)state;
    expect_error("wal: {}\nwal: {}\n", "t.yaml:2: wal: duplicate key (first at line 1)");
    expect_error("wal:\n  dir: a\n  dir: b\n",
                 "t.yaml:3: wal.dir: duplicate key (first at line 2)");
    expect_error(
        "sinks:\n  - name: a\n    type: clickhouse\n    url: http://h:1\n    url: http://h:2\n",
        "t.yaml:5: sinks[0].url: duplicate key (first at line 4)");
    expect_error("sinks:\n  - {name: a, type: clickhouse, url: http://h:1, rename: {A: B, A: C}}\n",
                 "t.yaml:2: sinks[0].rename.A: duplicate key");
    expect_error(
        "sinks:\n"
        "  - name: dup\n    type: clickhouse\n    url: http://h:1\n"
        "  - name: dup\n    type: starrocks\n    url: http://h:2\n",
        "t.yaml:5: sinks[1].name: duplicate sink name \"dup\" (first at line 2, sinks[0])");
    expect_error("proxy:\n  users:\n    - {user: a}\n    - {user: a, password: x}\n",
                 "t.yaml:4: proxy.users[1]: duplicate user \"a\" (also proxy.users[0])");
    expect_error("proxy:\n  users:\n    - {user: a, user: b}\n",
                 "t.yaml:3: proxy.users[0].user: duplicate key");
}

static void test_error_missing_required(void **state)
{
    (void)state;
    expect_error("sinks:\n  - type: clickhouse\n    url: http://h:1\n",
                 "t.yaml:2: sinks[0].name: missing required key");
    expect_error("sinks:\n  - {name: a, url: http://h:1}\n",
                 "t.yaml:2: sinks[0].type: missing required key");
    expect_error("sinks:\n  - {name: a, type: clickhouse}\n",
                 "t.yaml:2: sinks[0].url: missing required key");
    expect_error("proxy:\n  users:\n    - {password: x}\n",
                 "t.yaml:3: proxy.users[0].user: missing required key");
}

static void test_error_primary_rules(void **state)
{
    (void)state;
    expect_error(
        "sinks:\n"
        "  - {name: a, type: clickhouse, url: http://h:1, primary: true}\n"
        "  - {name: b, type: clickhouse, url: http://h:1, primary: true}\n",
        "t.yaml:3: sinks[1].primary: only one sink may be primary (sinks[0] at line 2 is too)");
    expect_error("sinks:\n  - {name: a, type: starrocks, url: http://h:1, primary: true}\n",
                 "t.yaml:2: sinks[0].primary: the primary sink must be an enabled clickhouse sink");
    expect_error(
        "sinks:\n  - {name: a, type: clickhouse, url: http://h:1, enabled: false, primary: true}\n",
        "t.yaml:2: sinks[0].primary: the primary sink must be an enabled clickhouse sink");
}

static void test_error_yaml_syntax_and_documents(void **state)
{
    (void)state;
    expect_error("wal:\n  dir: x\n  bad: [unclosed\n",
                 "t.yaml:4: (yaml): did not find expected ',' or ']'");
    expect_error("wal:\n  dir: a: b\n", "t.yaml:2: (yaml): mapping values are not allowed");
    expect_error("wal: {}\n---\nproxy: {}\n",
                 "t.yaml:3: (top level): only one YAML document is allowed");
    expect_error("wal: {}\n---\n[\n", "t.yaml:4: (yaml): ");
    expect_error("wal: *nope\n", "t.yaml:1: (yaml): found undefined alias");
}

/* libyaml is quadratic in flow nesting depth: 200k levels used to take minutes. */
static void test_error_deep_nesting_refused_quickly(void **state)
{
    (void)state;
    size_t depth = 200000;
    char *y = malloc(2 * depth + 32);
    assert_non_null(y);
    strcpy(y, "wal: {dir: ");
    size_t o = strlen(y);
    memset(y + o, '[', depth);
    memset(y + o + depth, ']', depth);
    strcpy(y + o + 2 * depth, "}\n");
    expect_error(y, "t.yaml:1: (yaml): nested deeper than 32 levels");
    free(y);
}

static void test_error_file_not_found(void **state)
{
    (void)state;
    sluice_cfg_t c;
    assert_true(cfg_load(&c, "/nonexistent/sluice.yaml", err, sizeof err) < 0);
    assert_string_equal(err, "/nonexistent/sluice.yaml: cannot open: No such file or directory");
    assert_true(is_zero(&c));
    assert_true(cfg_load(&c, "/tmp", err, sizeof err) < 0);
    assert_string_equal(err, "/tmp: cannot read: Is a directory");
    assert_true(is_zero(&c));
}

static void test_file_name_in_messages(void **state)
{
    (void)state;
    char path[] = "/tmp/test_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("# comment\nwal:\n  max_bytes: 1PB\n", f);
    fclose(f);
    sluice_cfg_t c;
    char want[256];
    assert_true(cfg_load(&c, path, err, sizeof err) < 0);
    snprintf(want, sizeof want, "%s:3: wal.max_bytes: expected a size in bytes", path);
    assert_memory_equal(err, want, strlen(want));
    unlink(path);
}

/* ---- interpolation ---- */

static void test_interpolation_forms(void **state)
{
    (void)state;
    sluice_cfg_t c;
    setenv("CFGT_A", "alpha", 1);
    setenv("CFGT_B", "250", 1);
    setenv("CFGT_EMPTY", "", 1);
    load_ok(&c,
            "wal:\n"
            "  dir: /x/${CFGT_A}/${CFGT_UNSET:-dflt}/${CFGT_EMPTY:-e}/${CFGT_EMPTY}/$$HOME/a$b/$\n"
            "  sync_interval_ms: ${CFGT_B}\n"
            "  max_bytes: ${CFGT_UNSET:-2}GiB\n"
            "sinks:\n"
            "  - name: ${CFGT_A}\n"
            "    type: clickhouse\n"
            "    url: http://${CFGT_A}:8123\n"
            "    password: ${CFGT_UNSET:-}\n"
            "    include: [\"${CFGT_A}\", t]\n"
            "    settings: {\"${CFGT_A}\": \"${CFGT_B}\"}\n");
    assert_string_equal(c.wal.dir, "/x/alpha/dflt/e//$HOME/a$b/$");
    assert_int_equal(c.wal.sync_interval_ms, 250);
    assert_int_equal(c.wal.max_bytes, 2ULL << 30);
    assert_string_equal(c.sinks[0].name, "alpha");
    assert_string_equal(c.sinks[0].url, "http://alpha:8123");
    assert_string_equal(c.sinks[0].password, "");
    assert_string_equal(c.sinks[0].include[0], "alpha");
    /* keys are not interpolated, values are */
    assert_string_equal(c.sinks[0].settings[0].key, "${CFGT_A}");
    assert_string_equal(c.sinks[0].settings[0].value, "250");
    cfg_free(&c);
}

static void test_interpolation_errors(void **state)
{
    (void)state;
    expect_error(
        "wal:\n  dir: x\nsinks:\n  - name: a\n    type: clickhouse\n    url: http://h:1\n"
        "    password: ${CLICKHOUSE_PASSWORD}\n",
        "t.yaml:7: sinks[0].password: environment variable CLICKHOUSE_PASSWORD is not set");
    expect_error("wal:\n  dir: ${CFGT_A\n", "t.yaml:2: wal.dir: unterminated ${ in \"${CFGT_A\"");
    expect_error("wal:\n  dir: ${}\n", "t.yaml:2: wal.dir: bad ${...} in \"${}\"");
    expect_error("wal:\n  dir: ${1A}\n", "t.yaml:2: wal.dir: bad ${...}");
    expect_error("wal:\n  dir: ${A-b}\n", "t.yaml:2: wal.dir: bad ${...}");
    /* interpolation happens before type conversion, so a bad value is reported as such */
    setenv("CFGT_B", "lots", 1);
    expect_error("wal:\n  truncate_chunk: ${CFGT_B}\n",
                 "t.yaml:2: wal.truncate_chunk: expected a positive integer, got \"lots\"");
}

/* ---- cfg_finish: env overrides and cross-field rules ---- */

static void test_env_overrides_listen_and_wal_dir(void **state)
{
    (void)state;
    sluice_cfg_t c;
    setenv("SLUICE_LISTEN", "0.0.0.0:18123", 1);
    setenv("SLUICE_ADMIN_LISTEN", "127.0.0.2:18124", 1);
    setenv("SLUICE_WAL_DIR", "/data/wal", 1);
    load_ok(&c, MIN_SINK);
    assert_string_equal(c.proxy.listen, "0.0.0.0:18123");
    assert_string_equal(c.admin.listen, "127.0.0.2:18124");
    assert_string_equal(c.wal.dir, "/data/wal");
    cfg_free(&c);

    setenv("SLUICE_LISTEN", "nope", 1);
    assert_int_equal(load(&c, MIN_SINK), 0);
    assert_true(cfg_finish(&c, err, sizeof err) < 0);
    assert_string_equal(
        err,
        "SLUICE_LISTEN: expected host:port with port 1-65535 (IPv6 as [::1]:port), got \"nope\"");
    cfg_free(&c);

    unsetenv("SLUICE_LISTEN");
    setenv("SLUICE_ADMIN_LISTEN", "x:0", 1);
    assert_int_equal(load(&c, MIN_SINK), 0);
    assert_true(cfg_finish(&c, err, sizeof err) < 0);
    assert_memory_equal(err, "SLUICE_ADMIN_LISTEN: expected host:port", 39);
    cfg_free(&c);

    /* empty means unset */
    setenv("SLUICE_ADMIN_LISTEN", "", 1);
    setenv("SLUICE_WAL_DIR", "", 1);
    load_ok(&c, MIN_SINK);
    assert_string_equal(c.admin.listen, "127.0.0.1:8124");
    assert_string_equal(c.wal.dir, "./sluice-wal");
    cfg_free(&c);
}

static void test_env_clickhouse_url_adds_sink(void **state)
{
    (void)state;
    sluice_cfg_t c;
    setenv("SLUICE_CLICKHOUSE_URL", "http://chuser:p%40ss%3Aw0rd@ch.local:8123/tensor%5Fzero", 1);
    cfg_defaults(&c);
    assert_int_equal(cfg_finish(&c, err, sizeof err), 0);
    assert_int_equal(c.n_sinks, 1);
    const cfg_sink_t *s = cfg_primary_sink(&c);
    assert_non_null(s);
    assert_string_equal(s->name, "clickhouse");
    assert_int_equal(s->type, CFG_SINK_CLICKHOUSE);
    assert_int_equal(s->primary, 1);
    assert_int_equal(s->enabled, 1);
    assert_string_equal(s->url, "http://ch.local:8123");
    assert_string_equal(s->user, "chuser");
    assert_string_equal(s->password, "p@ss:w0rd");
    assert_string_equal(s->database, "tensor_zero");
    assert_int_equal(s->batch_max_rows, 10000);
    assert_string_equal(c.proxy.passthrough_url, "http://ch.local:8123");
    cfg_free(&c);

    /* a starrocks-only file gets a clickhouse sink added, which becomes the primary */
    setenv("SLUICE_CLICKHOUSE_URL", "https://ch.example.com", 1);
    load_ok(&c, "sinks:\n  - {name: sr, type: starrocks, url: http://fe:8030}\n");
    assert_int_equal(c.n_sinks, 2);
    assert_string_equal(c.sinks[1].name, "clickhouse");
    assert_string_equal(c.sinks[1].url, "https://ch.example.com:8443");
    assert_string_equal(c.sinks[1].user, "default");
    assert_string_equal(c.sinks[1].password, "");
    assert_null(c.sinks[1].database);
    assert_ptr_equal(cfg_primary_sink(&c), &c.sinks[1]);
    cfg_free(&c);
}

static void test_env_clickhouse_url_overrides_primary(void **state)
{
    (void)state;
    sluice_cfg_t c;
    setenv("SLUICE_CLICKHOUSE_URL", "http://tz:secret@10.0.0.5/db1", 1);
    load_ok(&c, "sinks:\n"
                "  - {name: sr, type: starrocks, url: http://fe:8030}\n"
                "  - {name: main, type: clickhouse, url: http://old:8123, user: u, password: p,"
                " database: old, batch: {max_rows: 7}}\n");
    assert_int_equal(c.n_sinks, 2);
    const cfg_sink_t *s = &c.sinks[1];
    assert_ptr_equal(cfg_primary_sink(&c), s);
    assert_string_equal(s->name, "main");
    assert_string_equal(s->url, "http://10.0.0.5:8123");
    assert_string_equal(s->user, "tz");
    assert_string_equal(s->password, "secret");
    assert_string_equal(s->database, "db1");
    assert_int_equal(s->batch_max_rows, 7);
    assert_string_equal(c.proxy.passthrough_url, "http://10.0.0.5:8123");
    cfg_free(&c);

    /* without credentials or database, the file's values stay */
    setenv("SLUICE_CLICKHOUSE_URL", "http://[::1]:9000/", 1);
    load_ok(&c, "sinks:\n  - {name: main, type: clickhouse, url: http://old:8123, user: u, "
                "password: p, database: old}\n");
    assert_string_equal(c.sinks[0].url, "http://[::1]:9000");
    assert_string_equal(c.sinks[0].user, "u");
    assert_string_equal(c.sinks[0].password, "p");
    assert_string_equal(c.sinks[0].database, "old");
    cfg_free(&c);

    /* user without password means an empty password */
    setenv("SLUICE_CLICKHOUSE_URL", "http://bob@h:1", 1);
    load_ok(
        &c,
        "sinks:\n  - {name: main, type: clickhouse, url: http://old:8123, user: u, password: p}\n");
    assert_string_equal(c.sinks[0].user, "bob");
    assert_string_equal(c.sinks[0].password, "");
    cfg_free(&c);
}

static void test_env_clickhouse_url_errors(void **state)
{
    (void)state;
    static const struct {
        const char *url, *want;
    } cases[] = {
        {"clickhouse:8123",
         "SLUICE_CLICKHOUSE_URL: expected an http:// or https:// URL, got \"clickhouse:8123\""},
        {"http://u:p%zz@h:1",
         "SLUICE_CLICKHOUSE_URL: malformed %-escape in user, password or database"},
        {"http://u:p%2@h:1", "SLUICE_CLICKHOUSE_URL: malformed %-escape"},
        {"http://u:p@h:1/db/x",
         "SLUICE_CLICKHOUSE_URL: expected at most one path segment (the database)"},
        {"http://:p@h:1", "SLUICE_CLICKHOUSE_URL: empty user name"},
        {"http://h:1/db?x=1", "SLUICE_CLICKHOUSE_URL: a query string or fragment is not allowed"},
        {"http://h:0", "SLUICE_CLICKHOUSE_URL: bad port in URL (1-65535)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sluice_cfg_t c;
        setenv("SLUICE_CLICKHOUSE_URL", cases[i].url, 1);
        cfg_defaults(&c);
        assert_true(cfg_finish(&c, err, sizeof err) < 0);
        if (strncmp(err, cases[i].want, strlen(cases[i].want)) != 0)
            fail_msg("%s\n got:  %s\n want: %s", cases[i].url, err, cases[i].want);
        cfg_free(&c);
    }
    /* clickhouse sinks exist but none is primary (all disabled): nothing sane to override */
    sluice_cfg_t c;
    setenv("SLUICE_CLICKHOUSE_URL", "http://h:1", 1);
    assert_int_equal(load(&c, "proxy: {passthrough_url: http://x:1}\nsinks:\n"
                              "  - {name: a, type: clickhouse, url: http://h:1, enabled: false}\n"),
                     0);
    assert_true(cfg_finish(&c, err, sizeof err) < 0);
    assert_string_equal(err, "SLUICE_CLICKHOUSE_URL: no primary clickhouse sink to apply it to "
                             "(sinks[0] \"a\" is a clickhouse sink but not the primary)");
    cfg_free(&c);
    /* a starrocks sink already named "clickhouse" collides with the one added */
    assert_int_equal(load(&c, "sinks:\n  - {name: clickhouse, type: starrocks, url: http://h:1}\n"),
                     0);
    assert_true(cfg_finish(&c, err, sizeof err) < 0);
    assert_string_equal(
        err, "t.yaml: sinks[1].name: duplicate sink name \"clickhouse\" (also sinks[0])");
    cfg_free(&c);
}

static void test_finish_cross_field_rules(void **state)
{
    (void)state;
    sluice_cfg_t c;
    /* no sinks at all */
    assert_int_equal(load(&c, "wal: {}\n"), 0);
    assert_true(cfg_finish(&c, err, sizeof err) < 0);
    assert_string_equal(err, "t.yaml: sinks: no sinks configured (add one under sinks, or set "
                             "SLUICE_CLICKHOUSE_URL)");
    cfg_free(&c);
    /* no primary and no passthrough_url */
    assert_int_equal(load(&c, "sinks:\n  - {name: sr, type: starrocks, url: http://h:1}\n"), 0);
    assert_true(cfg_finish(&c, err, sizeof err) < 0);
    assert_memory_equal(err, "t.yaml: proxy.passthrough_url: required when there is no primary",
                        64);
    cfg_free(&c);
    /* explicit passthrough_url is kept */
    load_ok(&c, "proxy: {passthrough_url: 'https://reads:8443'}\n"
                "sinks:\n  - {name: sr, type: starrocks, url: http://h:1}\n");
    assert_string_equal(c.proxy.passthrough_url, "https://reads:8443");
    assert_null(cfg_primary_sink(&c));
    cfg_free(&c);
    /* admin off loopback requires a token */
    static const char *open_admin[] = {"0.0.0.0:8124", "10.1.2.3:1", "[::]:8124", "example.com:80"};
    static const char *loop_admin[] = {"127.0.0.1:8124", "127.9.9.9:1", "'[::1]:8124'",
                                       "localhost:8124", "\"\""};
    char y[256];
    for (size_t i = 0; i < 4; i++) {
        snprintf(y, sizeof y, "admin: {listen: '%s'}\n%s", open_admin[i], MIN_SINK);
        assert_int_equal(load(&c, y), 0);
        assert_true(cfg_finish(&c, err, sizeof err) < 0);
        char want[128];
        snprintf(want, sizeof want,
                 "t.yaml: admin.token: required when admin.listen (%s) is not a loopback address",
                 open_admin[i]);
        assert_string_equal(err, want);
        cfg_free(&c);
        snprintf(y, sizeof y, "admin: {listen: '%s', token: t0k}\n%s", open_admin[i], MIN_SINK);
        load_ok(&c, y);
        cfg_free(&c);
    }
    for (size_t i = 0; i < 5; i++) {
        snprintf(y, sizeof y, "admin: {listen: %s}\n%s", loop_admin[i], MIN_SINK);
        load_ok(&c, y);
        cfg_free(&c);
    }
    /* SLUICE_ADMIN_LISTEN off loopback needs the token too */
    setenv("SLUICE_ADMIN_LISTEN", "0.0.0.0:9", 1);
    assert_int_equal(load(&c, MIN_SINK), 0);
    assert_true(cfg_finish(&c, err, sizeof err) < 0);
    assert_memory_equal(err, "t.yaml: admin.token: required", 29);
    cfg_free(&c);
}

static void test_finish_validates_configs_built_in_code(void **state)
{
    (void)state;
    sluice_cfg_t c;
    cfg_defaults(&c);
    c.wal.ready_below_pct = 0;
    assert_true(cfg_finish(&c, err, sizeof err) < 0);
    assert_string_equal(err, "config: wal.ready_below_pct: 0 is out of range 1..100");
    c.wal.ready_below_pct = 90;
    c.wal.max_record_bytes = 1u << 30;
    c.wal.max_bytes = 1u << 20;
    assert_true(cfg_finish(&c, err, sizeof err) < 0);
    assert_string_equal(
        err, "config: wal.max_record_bytes: 1073741824 is larger than wal.max_bytes (1048576)");
    cfg_free(&c);
    /* two primaries set by hand */
    assert_int_equal(load(&c, "sinks:\n  - {name: a, type: clickhouse, url: http://h:1}\n"
                              "  - {name: b, type: clickhouse, url: http://h:1}\n"),
                     0);
    c.sinks[1].primary = 1;
    assert_true(cfg_finish(&c, err, sizeof err) < 0);
    assert_string_equal(err,
                        "t.yaml: sinks[1].primary: only one sink may be primary (also sinks[0])");
    c.sinks[1].primary = 0;
    c.sinks[1].batch_max_rows = 0;
    assert_true(cfg_finish(&c, err, sizeof err) < 0);
    assert_string_equal(err, "t.yaml: sinks[1].batch.max_rows: 0 is out of range 1..10000000");
    cfg_free(&c);
}

static void test_primary_resolution(void **state)
{
    (void)state;
    sluice_cfg_t c;
    load_ok(&c, "sinks:\n"
                "  - {name: sr, type: starrocks, url: http://h:1}\n"
                "  - {name: off, type: clickhouse, url: http://h:1, enabled: false}\n"
                "  - {name: c1, type: clickhouse, url: http://h:2}\n"
                "  - {name: c2, type: clickhouse, url: http://h:3}\n");
    assert_string_equal(cfg_primary_sink(&c)->name, "c1");
    assert_int_equal(c.sinks[0].primary + c.sinks[1].primary + c.sinks[3].primary, 0);
    cfg_free(&c);
    load_ok(&c, "sinks:\n"
                "  - {name: c1, type: clickhouse, url: http://h:2}\n"
                "  - {name: c2, type: clickhouse, url: http://h:3, primary: on}\n");
    assert_string_equal(cfg_primary_sink(&c)->name, "c2");
    assert_int_equal(c.sinks[0].primary, 0);
    assert_string_equal(c.proxy.passthrough_url, "http://h:3");
    cfg_free(&c);
    assert_null(cfg_primary_sink(NULL));
}

/* ---- print ---- */

static char *print_to_string(const sluice_cfg_t *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    cfg_print(c, f);
    fclose(f);
    return buf;
}

static void test_print_load_round_trip(void **state)
{
    (void)state;
    sluice_cfg_t a, b;
    load_ok(&a, FULL);
    char *text = print_to_string(&a);
    if (load(&b, text) != 0) fail_msg("reload failed: %s\n%s", err, text);
    if (cfg_finish(&b, err, sizeof err) != 0) fail_msg("refinish failed: %s\n%s", err, text);
    check_full(&b, 1);
    assert_null(strstr(text, "s3cr"));
    assert_null(strstr(text, "tok\""));
    /* printing the reloaded config gives the same text (fixed point) */
    char *text2 = print_to_string(&b);
    assert_string_equal(text, text2);
    free(text);
    free(text2);
    cfg_free(&a);
    cfg_free(&b);
}

static void test_print_round_trip_awkward_strings(void **state)
{
    (void)state;
    sluice_cfg_t a, b;
    load_ok(&a, "wal:\n  dir: \"/tmp/$${x}/q\\\"uo\\\\te/\\t/é/#not-a-comment: x\"\n"
                "sinks:\n  - name: a\n    type: clickhouse\n    url: http://h:1\n"
                "    database: \"null\"\n"
                "    include: ['~', 'yes', '$${X}']\n"
                "    settings: {'$$k': \"a\\nb\", u: \"\\x80\\N\\L\\P\\uFEFF\\x7f\\e\u00e9\"}\n"
                "    max_filter_ratio: 0.1\n");
    char *text = print_to_string(&a);
    if (load(&b, text) != 0) fail_msg("reload failed: %s\n%s", err, text);
    assert_int_equal(cfg_finish(&b, err, sizeof err), 0);
    assert_string_equal(b.wal.dir, "/tmp/${x}/q\"uo\\te/\t/é/#not-a-comment: x");
    assert_string_equal(b.sinks[0].database, "null");
    assert_string_equal(b.sinks[0].include[0], "~");
    assert_string_equal(b.sinks[0].include[1], "yes");
    assert_string_equal(b.sinks[0].include[2], "${X}");
    assert_string_equal(b.sinks[0].settings[0].key, "$$k");
    assert_string_equal(b.sinks[0].settings[0].value, "a\nb");
    /* C1 controls, NEL, line/paragraph separators, BOM, DEL, ESC survive the round trip */
    assert_string_equal(b.sinks[0].settings[1].value,
                        "\xc2\x80\xc2\x85\xe2\x80\xa8\xe2\x80\xa9\xef\xbb\xbf\x7f\x1b\xc3\xa9");
    assert_true(b.sinks[0].max_filter_ratio == 0.1);
    assert_string_equal(b.proxy.passthrough_url, "http://h:1");
    free(text);
    cfg_free(&a);
    cfg_free(&b);
}

static void test_print_defaults_and_empty(void **state)
{
    (void)state;
    sluice_cfg_t c, d;
    cfg_defaults(&c);
    char *text = print_to_string(&c);
    assert_non_null(strstr(text, "  max_bytes: 1GiB\n"));
    assert_non_null(strstr(text, "sinks: []\n"));
    assert_non_null(strstr(text, "  token: null\n"));
    assert_int_equal(load(&d, text), 0);
    assert_int_equal(d.wal.max_bytes, c.wal.max_bytes);
    assert_int_equal(d.proxy.max_header_bytes, c.proxy.max_header_bytes);
    free(text);
    cfg_free(&c);
    cfg_free(&d);
    memset(&c, 0, sizeof c);
    text = print_to_string(&c); /* a zeroed cfg prints without crashing */
    free(text);
}

/* ---- examples ---- */

static void example_path(char *out, size_t n, const char *name)
{
    const char *src = __FILE__;
    const char *cut = strstr(src, "tests/unit/test_config.c");
    snprintf(out, n, "%.*sconfig/examples/%s", (int)(cut ? cut - src : 0), src, name);
}

static void test_examples_load(void **state)
{
    (void)state;
    char path[1024];
    sluice_cfg_t c;
    example_path(path, sizeof path, "single-clickhouse.yaml");
    if (cfg_load(&c, path, err, sizeof err) || cfg_finish(&c, err, sizeof err)) fail_msg("%s", err);
    assert_string_equal(cfg_primary_sink(&c)->url, "http://clickhouse.internal:8123");
    cfg_free(&c);

    example_path(path, sizeof path, "dual-write.yaml");
    if (cfg_load(&c, path, err, sizeof err) || cfg_finish(&c, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(c.n_sinks, 2);
    assert_int_equal(c.sinks[1].type, CFG_SINK_STARROCKS);
    assert_int_equal(c.sinks[1].overflow, CFG_OVERFLOW_DROP_OLDEST);
    assert_string_equal(cfg_primary_sink(&c)->name, "ch");
    cfg_free(&c);

    example_path(path, sizeof path, "sidecar.yaml");
    assert_true(cfg_load(&c, path, err, sizeof err) < 0);
    assert_non_null(
        strstr(err, "sinks[0].password: environment variable CLICKHOUSE_PASSWORD is not set"));
    setenv("CLICKHOUSE_PASSWORD", "pw", 1);
    setenv("SLUICE_ADMIN_TOKEN", "tk", 1);
    setenv("SLUICE_CLICKHOUSE_URL", "http://tz:tzpw@ch:8123/tensorzero", 1);
    if (cfg_load(&c, path, err, sizeof err) || cfg_finish(&c, err, sizeof err)) fail_msg("%s", err);
    assert_string_equal(c.wal.dir, "/data/sluice-wal");
    assert_string_equal(c.sinks[0].url, "http://ch:8123");
    assert_string_equal(c.sinks[0].user, "tz");
    assert_string_equal(c.sinks[0].password, "tzpw");
    assert_string_equal(c.admin.token, "tk");
    cfg_free(&c);
}

static void test_free_is_safe(void **state)
{
    (void)state;
    sluice_cfg_t c;
    memset(&c, 0, sizeof c);
    cfg_free(&c);
    cfg_free(NULL);
    cfg_defaults(&c);
    cfg_free(&c);
    cfg_free(&c);
    assert_true(is_zero(&c));
}

/* `url` as a list of endpoints (issue 16): each checked by the one URL parser, url = the
 * first, printed back as a list; a StarRocks batch over the JSON load limit is refused. */
static void test_sink_url_list_and_starrocks_batch_cap(void **state)
{
    (void)state;
    sluice_cfg_t c;
    load_ok(&c, "proxy: {passthrough_url: \"http://ch:8123\"}\n"
                "sinks:\n  - name: sr\n    type: starrocks\n    url: [\"http://fe1:8030\", "
                "\"http://fe2:8030\"]\n");
    assert_int_equal(c.sinks[0].n_urls, 2);
    assert_string_equal(c.sinks[0].urls[1], "http://fe2:8030");
    assert_string_equal(c.sinks[0].url, "http://fe1:8030");
    char *text = print_to_string(&c);
    assert_non_null(strstr(text, "url: [\"http://fe1:8030\", \"http://fe2:8030\"]"));
    free(text);
    cfg_free(&c);
    load_ok(&c, MIN_SINK);
    assert_int_equal(c.sinks[0].n_urls, 1);
    assert_string_equal(c.sinks[0].urls[0], "http://h:8123");
    cfg_free(&c);
    expect_error("sinks:\n  - name: sr\n    type: starrocks\n    url: [\"http://fe1:8030\", "
                 "\"ftp://x\"]\n",
                 "t.yaml:4: sinks[0].url[1]: ");
    expect_error("sinks:\n  - name: sr\n    type: starrocks\n    url: []\n",
                 "t.yaml:4: sinks[0].url: expected a URL or a non-empty list");
    expect_error("sinks:\n  - name: sr\n    type: starrocks\n    url: http://fe:8030\n"
                 "    batch: {max_bytes: 100MiB}\n",
                 "t.yaml:2: sinks[0].batch.max_bytes: 104857600 is more than 90MiB: StarRocks");
    load_ok(&c, "sinks:\n  - name: ch\n    type: clickhouse\n    url: http://h:8123\n"
                "    batch: {max_bytes: 100MiB}\n");
    cfg_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults_match_header, setup),
        cmocka_unit_test_setup(test_sink_defaults_and_empty_sections, setup),
        cmocka_unit_test_setup(test_every_key_parsed, setup),
        cmocka_unit_test_setup(test_bytes_units, setup),
        cmocka_unit_test_setup(test_booleans_every_spelling, setup),
        cmocka_unit_test_setup(test_listen_forms, setup),
        cmocka_unit_test_setup(test_error_bad_integer_names_file_line_key, setup),
        cmocka_unit_test_setup(test_error_bad_values, setup),
        cmocka_unit_test_setup(test_error_unknown_keys, setup),
        cmocka_unit_test_setup(test_error_wrong_node_kinds, setup),
        cmocka_unit_test_setup(test_error_duplicates, setup),
        cmocka_unit_test_setup(test_error_missing_required, setup),
        cmocka_unit_test_setup(test_error_primary_rules, setup),
        cmocka_unit_test_setup(test_error_yaml_syntax_and_documents, setup),
        cmocka_unit_test_setup(test_error_deep_nesting_refused_quickly, setup),
        cmocka_unit_test_setup(test_error_file_not_found, setup),
        cmocka_unit_test_setup(test_file_name_in_messages, setup),
        cmocka_unit_test_setup(test_interpolation_forms, setup),
        cmocka_unit_test_setup(test_interpolation_errors, setup),
        cmocka_unit_test_setup(test_env_overrides_listen_and_wal_dir, setup),
        cmocka_unit_test_setup(test_env_clickhouse_url_adds_sink, setup),
        cmocka_unit_test_setup(test_env_clickhouse_url_overrides_primary, setup),
        cmocka_unit_test_setup(test_env_clickhouse_url_errors, setup),
        cmocka_unit_test_setup(test_finish_cross_field_rules, setup),
        cmocka_unit_test_setup(test_finish_validates_configs_built_in_code, setup),
        cmocka_unit_test_setup(test_primary_resolution, setup),
        cmocka_unit_test_setup(test_print_load_round_trip, setup),
        cmocka_unit_test_setup(test_print_round_trip_awkward_strings, setup),
        cmocka_unit_test_setup(test_print_defaults_and_empty, setup),
        cmocka_unit_test_setup(test_examples_load, setup),
        cmocka_unit_test_setup(test_free_is_safe, setup),
        cmocka_unit_test_setup(test_sink_url_list_and_starrocks_batch_cap, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
