/* test_sinks_engine.c — the sink engine against a real wal (temp dir) and a fake backend:
 * delivery and cursor advance, poison rows bisected into the DLQ, retries through transient
 * failures, resend of a persisted in-flight range under the same keys, target filtering,
 * prompt stop during backoff, pause/resume. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/time.h"
#include "sinks/sink_internal.h"

/* ---- fake backend: refuses rows containing "bad" for good, fails the first `fail_first`
 * sends transiently, records every successful send. ---- */

typedef struct {
    pthread_mutex_t mu;
    int fail_first;
    int always_retry;
    int sends;
    uint64_t rows_ok;
    char keys[64][SINK_KEY_MAX + 1];
    uint32_t key_rows[64];
    int n_keys;
    char *delivered; /* concatenated bodies */
    size_t delivered_len;
} fake_t;

static fake_t g_fake;

static int fake_open(const cfg_sink_t *cfg, atomic_int *abort, void **state, char *err,
                     size_t errlen)
{
    (void)cfg, (void)abort, (void)err, (void)errlen;
    *state = &g_fake;
    return 0;
}

static int fake_prepare(void *state, sink_result_t *res)
{
    (void)state, (void)res;
    return 0;
}

static void fake_send(void *state, const sink_batch_t *b, sink_result_t *res)
{
    fake_t *f = state;
    memset(res, 0, sizeof *res);
    assert_true(b->n_rows > 0 && b->body_len > 0);
    pthread_mutex_lock(&f->mu);
    f->sends++;
    if (f->always_retry || f->fail_first > 0) {
        if (f->fail_first > 0) f->fail_first--;
        res->kind = SINK_RES_RETRY;
        res->http_status = 503;
        snprintf(res->msg, sizeof res->msg, "fake: busy");
        pthread_mutex_unlock(&f->mu);
        return;
    }
    if (memmem(b->body, b->body_len, "weird", 5)) {
        res->kind = SINK_RES_UNKNOWN; /* a message no classification knows */
        res->http_status = 200;
        snprintf(res->msg, sizeof res->msg, "fake: something nobody has seen before");
        pthread_mutex_unlock(&f->mu);
        return;
    }
    if (memmem(b->body, b->body_len, "bad", 3)) {
        res->kind = SINK_RES_PERMANENT;
        res->http_status = 400;
        snprintf(res->msg, sizeof res->msg, "Code: 27. fake: cannot parse");
        pthread_mutex_unlock(&f->mu);
        return;
    }
    res->kind = SINK_RES_OK;
    f->rows_ok += b->n_rows;
    if (f->n_keys < 64) {
        snprintf(f->keys[f->n_keys], sizeof f->keys[0], "%s", b->key);
        f->key_rows[f->n_keys++] = b->n_rows;
    }
    f->delivered = realloc(f->delivered, f->delivered_len + b->body_len + 1);
    memcpy(f->delivered + f->delivered_len, b->body, b->body_len);
    f->delivered_len += b->body_len;
    f->delivered[f->delivered_len] = '\0';
    pthread_mutex_unlock(&f->mu);
}

static void fake_close(void *state)
{
    (void)state;
}

static const sink_backend_t fake_backend = {"fake", fake_open, fake_prepare, fake_send, fake_close,
                                           NULL, NULL};

static void fake_reset(void)
{
    free(g_fake.delivered);
    memset(&g_fake, 0, sizeof g_fake);
    pthread_mutex_init(&g_fake.mu, NULL);
}

/* ---- fixture ---- */

typedef struct {
    char dir[256];
    wal_t *w;
    cfg_wal_t wc;
    cfg_sink_t sc;
} fx_t;

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int setup(void **st)
{
    fx_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/sluice-test-sinks-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    sluice_cfg_t cfg;
    cfg_defaults(&cfg);
    f->wc = cfg.wal;
    f->wc.dir = f->dir; /* cfg's own dir string is freed below; keep ours */
    f->wc.sync = CFG_SYNC_NONE;
    free(cfg.wal.dir);
    cfg.wal.dir = NULL;
    char err[256];
    int rc = wal_open(&f->w, &f->wc, err, sizeof err);
    if (rc) fprintf(stderr, "wal_open: %s\n", err);
    assert_int_equal(rc, 0);
    cfg_free(&cfg);
    f->sc.name = "fake";
    f->sc.enabled = 1;
    f->sc.url = "http://127.0.0.1:1";
    f->sc.batch_max_rows = 10000;
    f->sc.batch_max_bytes = 8u << 20;
    f->sc.batch_max_wait_ms = 20;
    f->sc.retry_initial_backoff_ms = 5;
    f->sc.retry_max_backoff_ms = 20;
    fake_reset();
    *st = f;
    return 0;
}

static int teardown(void **st)
{
    fx_t *f = *st;
    wal_close(f->w);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
    fake_reset();
    free(f);
    return 0;
}

static void declare(fx_t *f)
{
    wal_consumer_t c = {.name = f->sc.name};
    assert_int_equal(wal_set_consumers(f->w, &c, 1), 0);
}

static void declare_latest(fx_t *f)
{
    wal_consumer_t c = {.name = f->sc.name, .start_latest = 1};
    assert_int_equal(wal_set_consumers(f->w, &c, 1), 0);
}

static sink_t *start(fx_t *f)
{
    sink_t *s = NULL;
    char err[256];
    assert_int_equal(sink_start_with_backend(&f->sc, f->w, &fake_backend, &s, err, sizeof err), 0);
    return s;
}

static void stop(sink_t *s, uint32_t drain_ms)
{
    sink_t **arr = malloc(sizeof *arr);
    arr[0] = s;
    sinks_stop(arr, 1, drain_ms);
}

static uint64_t append(fx_t *f, const char *table, const char *rows, uint32_t n)
{
    wal_insert_t ins = {
        .db = "db", .table = table, .rows = rows, .rows_len = strlen(rows), .n_rows = n};
    uint64_t a, b;
    assert_int_equal(wal_append_wait(f->w, &ins, &a, &b), 0);
    return b;
}

static uint64_t append_at(fx_t *f, const char *rows, uint64_t ts_ms)
{
    wal_insert_t ins = {.db = "db", .table = "T", .rows = rows, .rows_len = strlen(rows),
                        .n_rows = 1, .ts_ms = ts_ms};
    uint64_t a, b;
    assert_int_equal(wal_append_wait(f->w, &ins, &a, &b), 0);
    return b;
}

static int wait_delivered(sink_t *s, uint64_t seq, int ms)
{
    uint64_t end = mono_ms() + (uint64_t)ms;
    while (mono_ms() < end) {
        if (sink_delivered_seq(s) >= seq) return 1;
        usleep(5000);
    }
    return 0;
}

/* ---- tests ---- */

static void test_delivers_rows_and_advances_cursor(void **st)
{
    fx_t *f = *st;
    declare(f);
    append(f, "A", "{\"i\":1}\n{\"i\":2}\n", 2);
    uint64_t last = append(f, "B", "{\"i\":3}\n", 1);
    sink_t *s = start(f);
    assert_true(wait_delivered(s, last, 5000));
    wal_cursor_t cur;
    assert_int_equal(wal_cursor_get(f->w, "fake", &cur), 0);
    assert_int_equal(cur.acked, last);
    assert_int_equal(cur.inflight_first, 0);
    sink_stats_t ss;
    sink_get_stats(s, &ss);
    assert_int_equal(ss.rows_sent, 3);
    assert_int_equal(ss.cursor, last);
    assert_int_equal(ss.lag_records, 0);
    assert_int_equal(ss.state, SINK_OK);
    stop(s, 1000);
    assert_int_equal(g_fake.rows_ok, 3);
    assert_non_null(strstr(g_fake.keys[0], "_fake_A_"));
}

/* start_from: latest begins at the next whole second (meta sink_started_ms): the records
 * that arrived before it are the backfill's, skipped, and the cursor passes them; from the
 * first record at or after it, everything is delivered, even one stamped earlier after it. */
static void test_latest_sink_skips_the_records_before_its_start_second(void **st)
{
    fx_t *f = *st;
    append(f, "T", "{\"old\":0}\n", 1); /* before the sink existed */
    f->sc.start_from = CFG_START_LATEST;
    declare_latest(f);
    char val[32] = "";
    size_t len = 0;
    assert_int_equal(wal_meta_get(f->w, "sink_started_ms:fake", val, sizeof val, &len), 0);
    uint64_t t = strtoull(val, NULL, 10);
    assert_int_equal(t % 1000, 0);
    assert_true(t > time_wall_ms() && t <= time_wall_ms() + 2000);
    append_at(f, "{\"before\":1}\n", t - 600);
    uint64_t skipped = append_at(f, "{\"before\":2}\n", t - 1);
    append_at(f, "{\"at\":3}\n", t);
    append_at(f, "{\"late\":4}\n", t - 5); /* after the first delivered one: delivered */
    uint64_t last = append_at(f, "{\"after\":5}\n", t + 700);
    sink_t *s = start(f);
    assert_true(wait_delivered(s, last, 5000));
    stop(s, 1000);
    assert_int_equal(g_fake.rows_ok, 3);
    assert_null(strstr(g_fake.delivered, "before"));
    assert_null(strstr(g_fake.delivered, "old"));
    assert_non_null(strstr(g_fake.delivered, "\"at\":3"));
    assert_non_null(strstr(g_fake.delivered, "\"late\":4"));
    assert_non_null(strstr(g_fake.delivered, "\"after\":5"));
    wal_cursor_t cur;
    assert_int_equal(wal_cursor_get(f->w, "fake", &cur), 0);
    assert_int_equal(cur.acked, last);
    assert_true(cur.acked > skipped);

    /* After a restart, nothing is sent again and what follows is delivered. */
    fake_reset();
    uint64_t more = append_at(f, "{\"later\":6}\n", t + 900);
    s = start(f);
    assert_true(wait_delivered(s, more, 5000));
    stop(s, 1000);
    assert_int_equal(g_fake.rows_ok, 1);
}

static void test_poison_rows_bisected_into_dlq(void **st)
{
    fx_t *f = *st;
    declare(f);
    size_t cap = 1000 * 32;
    char *rows = malloc(cap);
    size_t len = 0;
    for (int i = 0; i < 1000; i++) {
        int bad = i == 17 || i == 500 || i == 999;
        len += (size_t)snprintf(rows + len, cap - len, bad ? "{\"i\":\"bad%d\"}\n" : "{\"i\":%d}\n",
                                i);
    }
    uint64_t last = append(f, "T", rows, 1000);
    free(rows);
    sink_t *s = start(f);
    assert_true(wait_delivered(s, last, 10000));
    sink_stats_t ss;
    sink_get_stats(s, &ss);
    assert_int_equal(ss.rows_sent, 997);
    assert_int_equal(ss.dlq_rows, 3);
    stop(s, 1000);
    assert_int_equal(g_fake.rows_ok, 997);
    wal_dlq_list_t l = {0};
    assert_int_equal(wal_dlq_list(f->w, "fake", 0, 100, &l), 0);
    assert_int_equal(l.n, 3);
    uint32_t rows_in_dlq = 0;
    for (size_t i = 0; i < l.n; i++) {
        rows_in_dlq += l.e[i].n_rows;
        assert_non_null(strstr(l.e[i].error, "cannot parse"));
        assert_non_null(strstr(l.e[i].rows, "bad"));
        assert_string_equal(l.e[i].table, "T");
    }
    assert_int_equal(rows_in_dlq, 3);
    wal_dlq_free(&l);
    /* good rows in order */
    assert_non_null(strstr(g_fake.delivered, "{\"i\":16}\n{\"i\":18}\n"));
}

/* Never stuck on data (issue 16): an unclassified failure caused by one row is retried a
 * bounded number of times, then the batch is bisected and that row dead-lettered with the
 * backend's message; the rest arrive. Before, it was retried forever. */
static void test_unknown_failure_converges_to_dlq(void **st)
{
    fx_t *f = *st;
    declare(f);
    char rows[64 * 24];
    size_t len = 0;
    for (int i = 0; i < 64; i++)
        len += (size_t)snprintf(rows + len, sizeof rows - len,
                                i == 40 ? "{\"i\":\"weird\"}\n" : "{\"i\":%d}\n", i);
    uint64_t last = append(f, "T", rows, 64);
    sink_t *s = start(f);
    assert_true(wait_delivered(s, last, 20000));
    sink_stats_t ss;
    sink_get_stats(s, &ss);
    assert_int_equal(ss.rows_sent, 63);
    assert_int_equal(ss.dlq_rows, 1);
    stop(s, 1000);
    wal_dlq_list_t l = {0};
    assert_int_equal(wal_dlq_list(f->w, "fake", 0, 10, &l), 0);
    assert_int_equal(l.n, 1);
    assert_non_null(strstr(l.e[0].rows, "weird"));
    assert_non_null(strstr(l.e[0].error, "nobody has seen"));
    wal_dlq_free(&l);
    /* bounded: SINK_UNKNOWN_TRIES per range on the path to the row (64 rows: 7 ranges) */
    assert_true(g_fake.sends <= 7 * SINK_UNKNOWN_TRIES + 7);
}

static void test_transient_failures_retried_then_delivered(void **st)
{
    fx_t *f = *st;
    declare(f);
    g_fake.fail_first = 5;
    uint64_t last = append(f, "A", "{\"i\":1}\n", 1);
    sink_t *s = start(f);
    assert_true(wait_delivered(s, last, 5000));
    sink_stats_t ss;
    sink_get_stats(s, &ss);
    assert_int_equal(ss.retries, 5);
    assert_int_equal(ss.state, SINK_OK);
    assert_string_equal(ss.last_error, "fake: busy");
    stop(s, 1000);
    assert_int_equal(g_fake.rows_ok, 1);
}

static void test_inflight_range_resent_with_same_keys(void **st)
{
    fx_t *f = *st;
    declare(f);
    uint64_t a = append(f, "A", "{\"i\":1}\n", 1);
    uint64_t b = append(f, "A", "{\"i\":2}\n", 1);
    append(f, "A", "{\"i\":3}\n", 1); /* after the range: a later batch */
    /* A crashed run had persisted [a, b] as in flight. */
    wal_cursor_t cur = {.acked = a - 1, .inflight_first = a, .inflight_last = b};
    assert_int_equal(wal_cursor_commit(f->w, "fake", &cur, NULL, 0), 0);
    sink_t *s = start(f);
    assert_true(wait_delivered(s, b + 1, 5000));
    stop(s, 1000);
    char want[SINK_KEY_MAX + 1];
    sink_build_key(want, wal_log_id(f->w), "fake", "A", a, b, 0, 0);
    assert_string_equal(g_fake.keys[0], want);
    assert_int_equal(g_fake.key_rows[0], 2);
    assert_int_equal(g_fake.rows_ok, 3);
}

static void test_records_for_other_sinks_skipped(void **st)
{
    fx_t *f = *st;
    declare(f);
    append(f, "A", "{\"i\":1}\n", 1);
    uint64_t last = append(f, "B", "{\"i\":2}\n", 1);
    char *exc[] = {"B"};
    f->sc.exclude = exc;
    f->sc.n_exclude = 1;
    sink_t *s = start(f);
    assert_true(wait_delivered(s, last, 5000));
    stop(s, 1000);
    f->sc.exclude = NULL;
    f->sc.n_exclude = 0;
    assert_int_equal(g_fake.rows_ok, 1);
}

static void test_stop_interrupts_backoff_promptly(void **st)
{
    fx_t *f = *st;
    declare(f);
    f->sc.retry_initial_backoff_ms = 60000;
    f->sc.retry_max_backoff_ms = 60000;
    g_fake.always_retry = 1;
    append(f, "A", "{\"i\":1}\n", 1);
    sink_t *s = start(f);
    uint64_t end = mono_ms() + 5000;
    while (mono_ms() < end) {
        pthread_mutex_lock(&g_fake.mu);
        int n = g_fake.sends;
        pthread_mutex_unlock(&g_fake.mu);
        if (n > 0) break;
        usleep(2000);
    }
    usleep(50000);
    sink_stats_t ss;
    sink_get_stats(s, &ss);
    assert_int_equal(ss.state, SINK_DEGRADED);
    uint64_t t0 = mono_ms();
    stop(s, 200); /* cannot drain: gives up after 200 ms, wakes the sleeping thread */
    assert_true(mono_ms() - t0 < 2000);
    /* the in-flight range stays persisted for the next run */
    wal_cursor_t cur;
    assert_int_equal(wal_cursor_get(f->w, "fake", &cur), 0);
    assert_int_equal(cur.acked, 0);
    assert_int_equal(cur.inflight_first, 1);
}

static void test_pause_holds_delivery_until_resume(void **st)
{
    fx_t *f = *st;
    declare(f);
    sink_t *s = start(f);
    sink_pause(s);
    usleep(50000);
    uint64_t last = append(f, "A", "{\"i\":1}\n", 1);
    assert_false(wait_delivered(s, last, 300));
    sink_stats_t ss;
    sink_get_stats(s, &ss);
    assert_int_equal(ss.state, SINK_PAUSED);
    assert_int_equal(ss.lag_records, 1);
    sink_resume(s);
    assert_true(wait_delivered(s, last, 5000));
    stop(s, 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_delivers_rows_and_advances_cursor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_latest_sink_skips_the_records_before_its_start_second,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_poison_rows_bisected_into_dlq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_failure_converges_to_dlq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transient_failures_retried_then_delivered, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_inflight_range_resent_with_same_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_records_for_other_sinks_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_interrupts_backoff_promptly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_holds_delivery_until_resume, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
