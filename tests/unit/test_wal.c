/* test_wal.c — unit tests of wal/: round trip, order, split atomicity, cursors, truncation,
 * log full (reject, block, drop_oldest), DLQ, refusing damaged/foreign/newer files, the
 * read-only CLI, and the envelope decoder against damaged input. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

#include "wal/wal.h"
#include "wal/wal_internal.h"

/* ---- helpers ---- */

typedef struct {
    char dir[256];
    cfg_wal_t cfg;
    wal_t *w;
} fx_t;

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/sluice-wal-test-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    strcat(f->dir, "/log"); /* wal_open creates it */
    f->cfg = (cfg_wal_t){.dir = f->dir,
                         .max_bytes = 64u << 20,
                         .max_record_bytes = 1u << 20,
                         .sync = CFG_SYNC_ALWAYS,
                         .sync_interval_ms = 100,
                         .when_full = CFG_FULL_REJECT,
                         .block_timeout_ms = 5000,
                         .truncate_chunk = 1000,
                         .ready_below_pct = 90};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    if (f->w) wal_close(f->w);
    char *slash = strrchr(f->dir, '/');
    *slash = '\0';
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void open_ok(fx_t *f)
{
    char err[1024] = "";
    int rc = wal_open(&f->w, &f->cfg, err, sizeof err);
    if (rc) fprintf(stderr, "wal_open: %d %s\n", rc, err);
    assert_int_equal(rc, 0);
}

static void reopen(fx_t *f)
{
    wal_close(f->w);
    f->w = NULL;
    open_ok(f);
}

static int append_at(wal_t *w, const char *table, const char *rows, uint64_t ts_ms,
                     uint64_t *first, uint64_t *last)
{
    uint32_t n = 0;
    for (const char *p = rows; *p; p++) n += *p == '\n';
    wal_insert_t ins = {.db = "db", .table = table, .rows = rows, .rows_len = strlen(rows),
                        .n_rows = n, .ts_ms = ts_ms};
    return wal_append_wait(w, &ins, first, last);
}

static int append_rows(wal_t *w, const char *table, const char *rows, uint64_t *first,
                       uint64_t *last)
{
    return append_at(w, table, rows, 0, first, last);
}

/* A record of about `size` bytes of rows: one JSON object. */
static char *make_row(size_t size, unsigned tag)
{
    char *s = malloc(size + 1);
    int n = snprintf(s, size + 1, "{\"tag\":%u,\"pad\":\"", tag);
    memset(s + n, 'x', size - (size_t)n - 3);
    memcpy(s + size - 3, "\"}\n", 4);
    return s;
}

static wal_stats_t stats(wal_t *w)
{
    wal_stats_t st;
    assert_int_equal(wal_stats(w, &st), 0);
    return st;
}

/* Poll a stats condition (the writer truncates asynchronously) with a deadline. */
static int wait_first_seq(wal_t *w, uint64_t want)
{
    for (int i = 0; i < 500; i++) {
        if (stats(w).first_seq == want) return 1;
        usleep(2000);
    }
    return 0;
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle)) fprintf(stderr, "'%s' not in '%s'\n", needle, hay);
    assert_non_null(strstr(hay, needle));
}

static void assert_prefix(const char *s, const char *prefix)
{
    if (strncmp(s, prefix, strlen(prefix)) != 0) fprintf(stderr, "got:  %s\nwant: %s\n", s, prefix);
    assert_int_equal(strncmp(s, prefix, strlen(prefix)), 0);
}

/* ---- round trip, order, split ---- */

static void test_append_read_round_trip(void **state)
{
    fx_t *f = *state;
    open_ok(f);
    wal_kv_t set[2] = {{"async_insert", "1"}, {"max_threads", "4"}};
    wal_insert_t ins = {.db = "obs", .table = "events", .columns = "a, b",
                        .settings = set, .n_settings = 2,
                        .rows = "{\"a\":1,\"b\":2}\n{\"a\":3,\"b\":4}\n", .n_rows = 2,
                        .ts_ms = 1234};
    ins.rows_len = strlen(ins.rows);
    uint64_t a, b;
    assert_int_equal(wal_append_wait(f->w, &ins, &a, &b), 0);
    assert_int_equal(a, 1);
    assert_int_equal(b, 1);
    for (int i = 0; i < 5; i++) {
        char row[64];
        snprintf(row, sizeof row, "{\"i\":%d}\n", i);
        assert_int_equal(append_rows(f->w, "t2", row, &a, &b), 0);
        assert_int_equal(a, (uint64_t)i + 2);
    }
    /* Acked records become readable at the writer's next checkpoint (sync: always), at
     * the latest when wal_flush returns. */
    assert_int_equal(wal_flush(f->w), 0);
    assert_int_equal(wal_last_seq(f->w), 6);

    wal_batch_t batch;
    assert_int_equal(wal_read(f->w, 0, 100, 1 << 20, &batch), 0);
    assert_int_equal(batch.n, 6);
    wal_record_t *r = &batch.recs[0];
    assert_int_equal(r->seq, 1);
    assert_int_equal(r->ts_ms, 1234);
    assert_string_equal(r->db, "obs");
    assert_string_equal(r->table, "events");
    assert_string_equal(r->columns, "a, b");
    assert_string_equal(r->fmt, "JSONEachRow");
    assert_null(r->target);
    assert_int_equal(r->n_settings, 2);
    assert_string_equal(r->settings[1].key, "max_threads");
    assert_string_equal(r->settings[1].value, "4");
    assert_int_equal(r->rows_len, ins.rows_len);
    assert_memory_equal(r->rows, ins.rows, ins.rows_len);
    assert_int_equal(r->n_rows, 2);
    assert_true(r->raw_bytes > ins.rows_len);
    for (size_t i = 1; i < 6; i++) {
        char row[64];
        snprintf(row, sizeof row, "{\"i\":%zu}\n", i - 1);
        assert_int_equal(batch.recs[i].seq, i + 1);
        assert_string_equal(batch.recs[i].rows, row);
        assert_null(batch.recs[i].columns);
        assert_int_equal(batch.recs[i].n_settings, 0);
    }
    wal_batch_free(&batch);

    /* Bounds: count, bytes (at least one record), after. */
    assert_int_equal(wal_read(f->w, 2, 2, 1 << 20, &batch), 0);
    assert_int_equal(batch.n, 2);
    assert_int_equal(batch.recs[0].seq, 3);
    wal_batch_free(&batch);
    assert_int_equal(wal_read(f->w, 0, 100, 1, &batch), 0);
    assert_int_equal(batch.n, 1);
    wal_batch_free(&batch);
    assert_int_equal(wal_read(f->w, 6, 100, 1 << 20, &batch), 0);
    assert_int_equal(batch.n, 0);
    wal_batch_free(&batch);

    assert_int_equal(wal_wait(f->w, 5, 1000), 0);
    assert_int_equal(wal_wait(f->w, 6, 20), WAL_ETIMEDOUT);

    /* Survives reopen, seqs continue. */
    reopen(f);
    assert_int_equal(wal_last_seq(f->w), 6);
    assert_int_equal(append_rows(f->w, "t", "{}\n", &a, &b), 0);
    assert_int_equal(a, 7);
    wal_stats_t st = stats(f->w);
    assert_int_equal(st.records, 7);
    assert_int_equal(st.first_seq, 1);
    assert_int_equal(st.last_seq, 7);
}

static void test_bad_appends_are_refused(void **state)
{
    fx_t *f = *state;
    open_ok(f);
    wal_insert_t ins = {.table = "", .rows = "{}\n", .rows_len = 3, .n_rows = 1};
    assert_int_equal(wal_append_wait(f->w, &ins, NULL, NULL), WAL_EINVAL);
    ins.table = "t";
    ins.rows_len = 0;
    assert_int_equal(wal_append_wait(f->w, &ins, NULL, NULL), WAL_EINVAL);
    assert_int_equal(wal_last_seq(f->w), 0);
    assert_string_equal(wal_strerror(WAL_EFULL), "write-ahead log full (wal.max_bytes reached)");
    for (int c = -30008; c <= -30001; c++) assert_non_null(wal_strerror(c));
    /* LMDB's own codes (MDB_KEYEXIST -30799 .. MDB_LAST_ERRCODE) read as LMDB says them. */
    assert_string_equal(wal_strerror(MDB_MAP_FULL), mdb_strerror(MDB_MAP_FULL));
    assert_string_equal(wal_strerror(MDB_CORRUPTED), mdb_strerror(MDB_CORRUPTED));
}

static void test_split_request_is_atomic_and_contiguous(void **state)
{
    fx_t *f = *state;
    f->cfg.max_record_bytes = 100;
    open_ok(f);
    assert_int_equal(append_rows(f->w, "before", "{}\n", NULL, NULL), 0);
    /* 20 rows of 30 bytes, one of 300 (bigger than a record), 5 more. */
    char rows[4096] = "";
    for (int i = 0; i < 26; i++) {
        char *row = make_row(i == 20 ? 300 : 30, (unsigned)i);
        strcat(rows, row);
        free(row);
    }
    uint64_t a, b;
    assert_int_equal(append_rows(f->w, "big", rows, &a, &b), 0);
    assert_int_equal(a, 2);
    assert_true(b - a + 1 >= 8);
    assert_int_equal(append_rows(f->w, "after", "{}\n", NULL, NULL), 0);
    assert_int_equal(wal_flush(f->w), 0);

    wal_batch_t batch;
    assert_int_equal(wal_read(f->w, 1, 1000, 1 << 20, &batch), 0);
    assert_int_equal(batch.n, b - a + 2);
    char joined[4096] = "";
    uint32_t nrows = 0;
    for (size_t i = 0; i + 1 < batch.n; i++) {
        wal_record_t *r = &batch.recs[i];
        assert_int_equal(r->seq, a + i); /* contiguous */
        assert_string_equal(r->table, "big");
        assert_true(r->rows_len <= 100 || r->n_rows == 1);
        assert_int_equal(r->rows[r->rows_len - 1], '\n'); /* split at row boundaries */
        strcat(joined, r->rows);
        nrows += r->n_rows;
    }
    assert_string_equal(joined, rows);
    assert_int_equal(nrows, 26);
    assert_string_equal(batch.recs[batch.n - 1].table, "after");
    wal_batch_free(&batch);
}

/* ---- cursors and truncation ---- */

static void test_cursor_persists_across_reopen(void **state)
{
    fx_t *f = *state;
    open_ok(f);
    wal_cursor_t c;
    assert_int_equal(wal_cursor_get(f->w, "ch", &c), WAL_ENOENT);
    for (int i = 0; i < 10; i++) assert_int_equal(append_rows(f->w, "t", "{}\n", NULL, NULL), 0);
    wal_consumer_t cons[2] = {{"ch", 0, 0}, {"sr", 1, 0}};
    assert_int_equal(wal_set_consumers(f->w, cons, 2), 0);
    assert_int_equal(wal_cursor_get(f->w, "ch", &c), 0);
    assert_int_equal(c.acked, 0); /* earliest: before the first record */
    assert_int_equal(wal_cursor_get(f->w, "sr", &c), 0);
    assert_int_equal(c.acked, 10); /* latest */
    wal_cursor_t set = {4, 5, 8};
    assert_int_equal(wal_cursor_commit(f->w, "ch", &set, NULL, 0), 0);
    reopen(f);
    assert_int_equal(wal_cursor_get(f->w, "ch", &c), 0);
    assert_int_equal(c.acked, 4);
    assert_int_equal(c.inflight_first, 5);
    assert_int_equal(c.inflight_last, 8);
    /* Not declared in this run: its cursor is kept but holds nothing. */
    assert_int_equal(wal_cursor_get(f->w, "sr", &c), 0);
    assert_int_equal(c.acked, 10);
}

static void test_truncation_never_passes_a_cursor(void **state)
{
    fx_t *f = *state;
    f->cfg.truncate_chunk = 7;
    open_ok(f);
    for (int i = 0; i < 50; i++) assert_int_equal(append_rows(f->w, "t", "{}\n", NULL, NULL), 0);
    /* No consumer declared: nothing is truncated. */
    usleep(20000);
    assert_int_equal(stats(f->w).first_seq, 1);
    wal_consumer_t cons[2] = {{"a", 0, 0}, {"b", 0, 0}};
    assert_int_equal(wal_set_consumers(f->w, cons, 2), 0);
    wal_cursor_t ca = {30, 0, 0}, cb = {10, 0, 0};
    assert_int_equal(wal_cursor_commit(f->w, "a", &ca, NULL, 0), 0);
    assert_int_equal(wal_cursor_commit(f->w, "b", &cb, NULL, 0), 0);
    assert_true(wait_first_seq(f->w, 11));
    ca.acked = 40;
    assert_int_equal(wal_cursor_commit(f->w, "a", &ca, NULL, 0), 0);
    usleep(20000);
    assert_int_equal(stats(f->w).first_seq, 11);
    cb.acked = 45;
    assert_int_equal(wal_cursor_commit(f->w, "b", &cb, NULL, 0), 0);
    assert_true(wait_first_seq(f->w, 41));
    assert_int_equal(wal_flush(f->w), 0); /* the truncation is committed */
    wal_batch_t batch;
    assert_int_equal(wal_read(f->w, 0, 100, 1 << 20, &batch), 0);
    assert_int_equal(batch.n, 10);
    assert_int_equal(batch.recs[0].seq, 41);
    wal_batch_free(&batch);

    /* Emptied log: seqs keep growing after a reopen (labels name one batch forever). */
    ca.acked = cb.acked = 50;
    assert_int_equal(wal_cursor_commit(f->w, "a", &ca, NULL, 0), 0);
    assert_int_equal(wal_cursor_commit(f->w, "b", &cb, NULL, 0), 0);
    for (int i = 0; i < 500 && stats(f->w).records; i++) usleep(2000);
    assert_int_equal(stats(f->w).records, 0);
    reopen(f);
    assert_int_equal(wal_last_seq(f->w), 50);
    uint64_t a;
    assert_int_equal(append_rows(f->w, "t", "{}\n", &a, NULL), 0);
    assert_int_equal(a, 51);
    /* A consumer added now starts after what was truncated. */
    wal_consumer_t c3[3] = {{"a", 0, 0}, {"b", 0, 0}, {"c", 0, 0}};
    assert_int_equal(wal_set_consumers(f->w, c3, 3), 0);
    wal_cursor_t cc;
    assert_int_equal(wal_cursor_get(f->w, "c", &cc), 0);
    assert_int_equal(cc.acked, 50);
}

/* ---- whole seconds: the boundary a new sink and `sluice backfill` share ---- */

static uint64_t meta_u64(wal_t *w, const char *key)
{
    char val[32] = "";
    size_t len = 0;
    assert_int_equal(wal_meta_get(w, key, val, sizeof val, &len), 0);
    return strtoull(val, NULL, 10);
}

static void test_new_sink_start_is_a_whole_second(void **state)
{
    fx_t *f = *state;
    open_ok(f);
    wal_consumer_t one = {"ch", 0, 0};
    assert_int_equal(wal_set_consumers(f->w, &one, 1), 0); /* on an empty log: now */
    uint64_t ch = meta_u64(f->w, "sink_started_ms:ch");
    assert_int_equal(ch % 1000, 0);
    assert_true(ch <= time_wall_ms() && ch + 2000 > time_wall_ms());
    uint64_t t = 1500000000000ull, first, last;
    assert_int_equal(append_at(f->w, "t", "{}\n", t + 300, &first, NULL), 0);
    assert_int_equal(append_at(f->w, "t", "{}\n", t + 1500, &last, NULL), 0);
    uint64_t before = time_wall_ms();
    wal_consumer_t two[3] = {{"ch", 0, 0}, {"sr", 1, 0}, {"old", 0, 0}};
    assert_int_equal(wal_set_consumers(f->w, two, 3), 0);
    uint64_t after = time_wall_ms();
    wal_cursor_t sr, old;
    assert_int_equal(wal_cursor_get(f->w, "sr", &sr), 0);
    assert_int_equal(wal_cursor_get(f->w, "old", &old), 0);
    /* latest: after the newest record, delivering from the next whole second on */
    assert_int_equal(sr.acked, last);
    uint64_t started = meta_u64(f->w, "sink_started_ms:sr");
    assert_int_equal(started % 1000, 0);
    assert_true(started > before && started <= after + 1000);
    /* earliest: from the oldest record, and the start of its second */
    assert_int_equal(old.acked, first - 1);
    assert_int_equal(meta_u64(f->w, "sink_started_ms:old"), t);
    /* A sink that already has a cursor keeps it and its start. */
    reopen(f);
    assert_int_equal(wal_set_consumers(f->w, two, 3), 0);
    assert_int_equal(meta_u64(f->w, "sink_started_ms:sr"), started);
    assert_int_equal(meta_u64(f->w, "sink_started_ms:ch"), ch);
}

/* ---- log full ---- */

static int fill(wal_t *w, size_t size, uint64_t *last_ok)
{
    char *row = make_row(size, 0);
    int rc, n = 0;
    uint64_t seq;
    while ((rc = append_rows(w, "t", row, &seq, NULL)) == 0) {
        n++;
        *last_ok = seq;
    }
    free(row);
    assert_int_equal(rc, WAL_EFULL);
    return n;
}

static void test_full_rejects_then_accepts_after_truncation(void **state)
{
    fx_t *f = *state;
    f->cfg.max_bytes = 256 << 10;
    open_ok(f);
    wal_consumer_t cons = {"s", 0, 0};
    assert_int_equal(wal_set_consumers(f->w, &cons, 1), 0);
    uint64_t last = 0;
    int n = fill(f->w, 1000, &last);
    assert_true(n > 100);
    wal_stats_t st = stats(f->w);
    assert_int_equal(st.rejected_full, 1);
    assert_true(st.live_bytes <= st.max_bytes);
    assert_true(st.live_bytes + 1000 > st.max_bytes);
    /* live bytes are recomputed at open to the same value */
    reopen(f);
    assert_int_equal(stats(f->w).live_bytes, st.live_bytes);
    assert_int_equal(wal_set_consumers(f->w, &cons, 1), 0);
    char *row = make_row(1000, 1);
    assert_int_equal(append_rows(f->w, "t", row, NULL, NULL), WAL_EFULL);
    /* A request larger than the whole log never fits. */
    char *huge = make_row(300 << 10, 2);
    assert_int_equal(append_rows(f->w, "t", huge, NULL, NULL), WAL_EFULL);
    free(huge);
    wal_cursor_t c = {last / 2, 0, 0};
    assert_int_equal(wal_cursor_commit(f->w, "s", &c, NULL, 0), 0);
    uint64_t a;
    assert_int_equal(append_rows(f->w, "t", row, &a, NULL), 0);
    assert_int_equal(a, last + 1);
    free(row);
    assert_true(stats(f->w).first_seq > 1);
    assert_true(stats(f->w).first_seq <= last / 2 + 1);
}

typedef struct {
    wal_t *w;
    int rc;
    uint64_t seq;
    volatile int done;
} bg_append_t;

static void *bg_append(void *arg)
{
    bg_append_t *b = arg;
    char *row = make_row(1000, 7);
    b->rc = append_rows(b->w, "t", row, &b->seq, NULL);
    free(row);
    __atomic_store_n(&b->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void test_block_mode_waits_then_succeeds_after_cursor_advance(void **state)
{
    fx_t *f = *state;
    f->cfg.max_bytes = 256 << 10;
    f->cfg.when_full = CFG_FULL_BLOCK;
    f->cfg.block_timeout_ms = 10000;
    open_ok(f);
    wal_consumer_t cons = {"s", 0, 0};
    assert_int_equal(wal_set_consumers(f->w, &cons, 1), 0);
    /* fill with reject semantics: in block mode the append would block, so count room */
    char *row = make_row(1000, 0);
    uint64_t last = 0;
    assert_int_equal(append_rows(f->w, "t", row, &last, NULL), 0);
    uint64_t cost = stats(f->w).live_bytes; /* every record here costs the same */
    while (stats(f->w).live_bytes + cost <= f->cfg.max_bytes)
        assert_int_equal(append_rows(f->w, "t", row, &last, NULL), 0);
    free(row);
    bg_append_t b[2] = {{.w = f->w}, {.w = f->w}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, bg_append, &b[i]);
    usleep(100000);
    /* Neither fits: both are held. A cursor commit is not blocked by them. */
    assert_int_equal(b[0].done + b[1].done, 0);
    wal_cursor_t c = {last, 0, 0};
    assert_int_equal(wal_cursor_commit(f->w, "s", &c, NULL, 0), 0);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    assert_int_equal(b[0].rc, 0);
    assert_int_equal(b[1].rc, 0);
    assert_true(b[0].seq > last && b[1].seq > last);

    /* With nobody advancing (no consumer declared), a held append times out. */
    f->cfg.block_timeout_ms = 150;
    reopen(f);
    char *r2 = make_row(1000, 9);
    while (stats(f->w).live_bytes + cost <= f->cfg.max_bytes)
        assert_int_equal(append_rows(f->w, "t", r2, NULL, NULL), 0);
    uint64_t t0 = time_mono_ms();
    assert_int_equal(append_rows(f->w, "t", r2, NULL, NULL), WAL_ETIMEDOUT);
    assert_true(time_mono_ms() - t0 >= 140);
    free(r2);
}

static void test_drop_oldest_records_a_gap(void **state)
{
    fx_t *f = *state;
    f->cfg.max_bytes = 256 << 10;
    open_ok(f);
    wal_consumer_t cons[2] = {{"fast", 0, 0}, {"slow", 0, 1}};
    assert_int_equal(wal_set_consumers(f->w, cons, 2), 0);
    char *row = make_row(1000, 0);
    uint64_t last = 0;
    assert_int_equal(append_rows(f->w, "t", row, &last, NULL), 0);
    uint64_t cost = stats(f->w).live_bytes;
    while (stats(f->w).live_bytes + cost <= f->cfg.max_bytes)
        assert_int_equal(append_rows(f->w, "t", row, &last, NULL), 0);
    /* "fast" (block) delivered everything; "slow" (drop_oldest) nothing: its backlog goes. */
    wal_cursor_t c = {last, 0, 0};
    assert_int_equal(wal_cursor_commit(f->w, "fast", &c, NULL, 0), 0);
    uint64_t a;
    assert_int_equal(append_rows(f->w, "t", row, &a, NULL), 0);
    assert_int_equal(a, last + 1);
    wal_stats_t st = stats(f->w);
    assert_int_equal(st.gaps, 1);
    assert_int_equal(st.rejected_full, 0);
    wal_cursor_t s;
    assert_int_equal(wal_flush(f->w), 0); /* the cursor move is committed */
    assert_int_equal(wal_cursor_get(f->w, "slow", &s), 0);
    assert_true(s.acked >= 1);
    assert_true(st.first_seq == s.acked + 1);
    char key[128], val[32];
    snprintf(key, sizeof key, "gap:slow:%020d", 1);
    size_t len;
    assert_int_equal(wal_meta_get(f->w, key, val, sizeof val, &len), 0);
    assert_int_equal(strtoull(val, NULL, 10), s.acked);
    reopen(f);
    assert_int_equal(stats(f->w).gaps, 1);

    /* A block consumer holding the minimum: no drop, the append is refused. */
    wal_consumer_t c2[2] = {{"fast", 0, 0}, {"slow", 0, 1}};
    assert_int_equal(wal_set_consumers(f->w, c2, 2), 0);
    wal_cursor_t sc = {a + 100, 0, 0};
    assert_int_equal(wal_cursor_commit(f->w, "slow", &sc, NULL, 0), 0);
    while (append_rows(f->w, "t", row, NULL, NULL) == 0) {
    }
    assert_int_equal(stats(f->w).gaps, 1);
    assert_true(stats(f->w).rejected_full >= 1);
    free(row);
}

/* ---- DLQ ---- */

static void test_dlq_put_list_replay_drop(void **state)
{
    fx_t *f = *state;
    open_ok(f);
    wal_consumer_t cons[2] = {{"a", 0, 0}, {"b", 0, 0}};
    assert_int_equal(wal_set_consumers(f->w, cons, 2), 0);
    wal_kv_t set = {"input_format_skip_unknown_fields", "1"};
    wal_dlq_entry_t e[2] = {
        {.db = "d", .table = "t1", .columns = "x", .settings = &set, .n_settings = 1,
         .error = "Code: 27. Cannot parse", .ts_ms = 77, .rows = "{\"x\":\"bad\"}\n",
         .rows_len = 12, .n_rows = 1},
        {.db = "d", .table = "t2", .error = "type", .rows = "{\"y\":1}\n{\"y\":2}\n",
         .rows_len = 16, .n_rows = 2}};
    wal_cursor_t c = {0, 0, 0};
    assert_int_equal(wal_cursor_commit(f->w, "a", &c, e, 2), 0);
    assert_int_equal(wal_cursor_commit(f->w, "b", &c, e + 1, 1), 0);
    assert_int_equal(stats(f->w).dlq_entries, 3);

    wal_dlq_list_t l;
    assert_int_equal(wal_dlq_list(f->w, NULL, 0, 100, &l), 0);
    assert_int_equal(l.n, 3);
    assert_int_equal(l.e[0].id, 1);
    assert_string_equal(l.e[0].sink, "a");
    assert_string_equal(l.e[0].error, "Code: 27. Cannot parse");
    assert_string_equal(l.e[0].columns, "x");
    assert_int_equal(l.e[0].n_settings, 1);
    assert_string_equal(l.e[0].settings[0].value, "1");
    assert_int_equal(l.e[0].ts_ms, 77);
    assert_string_equal(l.e[2].sink, "b");
    wal_dlq_free(&l);
    assert_int_equal(wal_dlq_list(f->w, "a", 1, 100, &l), 0);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.e[0].id, 2);
    wal_dlq_free(&l);

    /* Replay entry 1: a log record for sink a only, gone from the DLQ, same txn. */
    uint64_t id = 1;
    size_t moved;
    uint64_t before = wal_last_seq(f->w);
    assert_int_equal(wal_dlq_replay(f->w, "a", &id, 1, &moved), 0);
    assert_int_equal(moved, 1);
    assert_int_equal(wal_last_seq(f->w), before + 1);
    wal_batch_t batch;
    assert_int_equal(wal_read(f->w, before, 10, 1 << 20, &batch), 0);
    assert_int_equal(batch.n, 1);
    assert_string_equal(batch.recs[0].target, "a");
    assert_string_equal(batch.recs[0].table, "t1");
    assert_string_equal(batch.recs[0].columns, "x");
    assert_string_equal(batch.recs[0].rows, "{\"x\":\"bad\"}\n");
    assert_int_equal(batch.recs[0].n_settings, 1);
    assert_string_equal(batch.recs[0].settings[0].key, "input_format_skip_unknown_fields");
    wal_batch_free(&batch);
    /* Replay of a's id by sink b's name moves nothing. */
    id = 2;
    assert_int_equal(wal_dlq_replay(f->w, "b", &id, 1, &moved), 0);
    assert_int_equal(moved, 0);

    assert_int_equal(wal_dlq_drop(f->w, "b", NULL, 0), 0);
    assert_int_equal(wal_dlq_list(f->w, NULL, 0, 0, &l), 0);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.e[0].id, 2);
    wal_dlq_free(&l);
    assert_int_equal(wal_dlq_drop(f->w, NULL, &id, 1), 0);
    assert_int_equal(stats(f->w).dlq_entries, 0);
    /* ids keep growing */
    assert_int_equal(wal_cursor_commit(f->w, "a", &c, e, 1), 0);
    reopen(f);
    assert_int_equal(wal_dlq_list(f->w, NULL, 0, 0, &l), 0);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.e[0].id, 4);
    wal_dlq_free(&l);
    assert_int_equal(wal_dlq_replay(f->w, NULL, NULL, 0, &moved), 0);
    assert_int_equal(moved, 1);
    assert_int_equal(stats(f->w).dlq_entries, 0);
}

static void test_meta_put_get(void **state)
{
    fx_t *f = *state;
    open_ok(f);
    char buf[64];
    size_t len;
    assert_int_equal(wal_meta_get(f->w, "magic", buf, sizeof buf, &len), 0);
    assert_string_equal(buf, "sluice-wal");
    assert_int_equal(wal_meta_get(f->w, "format_version", buf, sizeof buf, &len), 0);
    /* 2 while a journaled writer has it open: a sluice without the journal refuses it */
    assert_string_equal(buf, f->cfg.sync == CFG_SYNC_ALWAYS ? "2" : "1");
    assert_int_equal(wal_meta_get(f->w, "log_id", buf, sizeof buf, &len), 0);
    assert_int_equal(strtoull(buf, NULL, 16), wal_log_id(f->w));
    assert_true(wal_log_id(f->w) != 0);
    assert_int_equal(wal_meta_get(f->w, "nope", buf, sizeof buf, &len), WAL_ENOENT);
    assert_int_equal(wal_meta_put(f->w, "backfill:t", "123", 3), 0);
    assert_int_equal(wal_meta_put(f->w, "magic", "x", 1), WAL_EINVAL);
    uint64_t id = wal_log_id(f->w);
    reopen(f);
    assert_int_equal(wal_log_id(f->w), id);
    assert_int_equal(wal_meta_get(f->w, "backfill:t", buf, sizeof buf, &len), 0);
    assert_int_equal(len, 3);
    assert_string_equal(buf, "123");
}

/* ---- refusing files that are not a good sluice log ---- */

static void expect_refused(fx_t *f, int code, const char *what)
{
    char err[1024] = "";
    char data[300];
    snprintf(data, sizeof data, "%s/data.mdb", f->dir);
    struct stat before, after;
    assert_int_equal(stat(data, &before), 0);
    wal_t *w = NULL;
    assert_int_equal(wal_open(&w, &f->cfg, err, sizeof err), code);
    assert_null(w);
    assert_contains(err, data);
    assert_contains(err, what);
    assert_int_equal(wal_open_readonly(&w, f->dir, err, sizeof err), code);
    assert_int_equal(stat(data, &after), 0);
    assert_int_equal(before.st_size, after.st_size); /* never re-created */
    assert_int_equal(before.st_mtime, after.st_mtime);
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, n, fp), n);
    fclose(fp);
}

static void test_refuses_garbage_file(void **state)
{
    fx_t *f = *state;
    mkdir(f->dir, 0755);
    char path[300], junk[20000];
    snprintf(path, sizeof path, "%s/data.mdb", f->dir);
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)(i * 7 + 3);
    write_file(path, junk, sizeof junk);
    expect_refused(f, WAL_ECORRUPT, "not an LMDB file");
    write_file(path, "", 0);
    expect_refused(f, WAL_ECORRUPT, "empty");
}

static void test_refuses_truncated_file(void **state)
{
    fx_t *f = *state;
    open_ok(f);
    char *row = make_row(3000, 1);
    for (int i = 0; i < 200; i++) assert_int_equal(append_rows(f->w, "t", row, NULL, NULL), 0);
    free(row);
    wal_close(f->w);
    f->w = NULL;
    char path[300];
    snprintf(path, sizeof path, "%s/data.mdb", f->dir);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(truncate(path, sb.st_size / 2), 0);
    expect_refused(f, WAL_ECORRUPT, "truncated");
    assert_int_equal(truncate(path, 100), 0); /* not even the meta pages */
    expect_refused(f, WAL_ECORRUPT, "damaged");
}

/* An LMDB env made by someone else (raw LMDB API). */
static void make_raw_env(const char *dir, const char *dbname, const char *key, const char *val)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    mkdir(dir, 0755);
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 8);
    assert_int_equal(mdb_env_open(env, dir, 0, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, dbname, MDB_CREATE, &dbi), 0);
    MDB_val k = {strlen(key), (void *)key}, v = {strlen(val), (void *)val};
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static void test_refuses_foreign_env(void **state)
{
    fx_t *f = *state;
    make_raw_env(f->dir, "sessions", "k", "v");
    expect_refused(f, WAL_EFOREIGN, "not a sluice write-ahead log");
}

static void test_refuses_foreign_plain_keys(void **state)
{
    fx_t *f = *state;
    make_raw_env(f->dir, NULL, "user:1", "alice");
    expect_refused(f, WAL_EFOREIGN, "not a sluice write-ahead log");
}

static void test_refuses_meta_without_magic(void **state)
{
    fx_t *f = *state;
    make_raw_env(f->dir, "meta", "magic", "other-tool");
    expect_refused(f, WAL_EFOREIGN, "magic \"other-tool\"");
}

static void test_refuses_newer_version(void **state)
{
    fx_t *f = *state;
    open_ok(f);
    assert_int_equal(append_rows(f->w, "t", "{}\n", NULL, NULL), 0);
    wal_close(f->w);
    f->w = NULL;
    make_raw_env(f->dir, "meta", "format_version", "3");
    expect_refused(f, WAL_EVERSION, "format version 3");
    char err[1024];
    wal_t *w;
    assert_int_equal(wal_open(&w, &f->cfg, err, sizeof err), WAL_EVERSION);
    assert_contains(err, "newer sluice");
}

/* A damaged record: wal_read says WAL_ECORRUPT, no crash. */
static void test_damaged_record_reads_as_corrupt(void **state)
{
    fx_t *f = *state;
    open_ok(f);
    assert_int_equal(append_rows(f->w, "t", "{}\n", NULL, NULL), 0);
    wal_close(f->w);
    f->w = NULL;
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 8);
    mdb_env_set_mapsize(env, 128 << 20);
    assert_int_equal(mdb_env_open(env, f->dir, 0, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "log", 0, &dbi), 0);
    uint8_t kb[8];
    wal_put_be64(kb, 2);
    MDB_val k = {8, kb}, v = {5, "\x8a\xa1v\x01\xdb"}; /* map of 10, then str32 w/o length */
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    open_ok(f);
    wal_batch_t b;
    assert_int_equal(wal_read(f->w, 0, 10, 1 << 20, &b), WAL_ECORRUPT);
    assert_int_equal(wal_read(f->w, 0, 1, 1 << 20, &b), 0); /* record 1 is fine */
    assert_int_equal(b.n, 1);
    wal_batch_free(&b);
    FILE *devnull = fopen("/dev/null", "w");
    assert_int_equal(wal_print_dump(f->dir, 0, 0, devnull, devnull), 1);
    fclose(devnull);
}

/* Every prefix and many byte flips of a valid envelope: decode or WAL_ECORRUPT, in bounds. */
static void test_envelope_decoder_survives_damage(void **state)
{
    (void)state;
    wal_kv_t set[2] = {{"a", "1"}, {"b", "2"}};
    wal_env_hdr_t h = {.db = wal_slice("d"), .table = wal_slice("t"), .cols = wal_slice("x"),
                       .target = wal_slice("s"), .settings = set, .n_settings = 2, .ts_ms = 5};
    wal_sbuf_t sb = {0};
    msgpack_sbuffer_init(&sb.sb);
    size_t *lens, len1;
    assert_int_equal(wal_env_pack_records(&sb, &h, "{\"x\":1}\n", 8, 1, 1 << 20, &lens, &len1),
                     1);
    size_t n = sb.sb.size;
    wal_env_view_t v;
    assert_int_equal(wal_env_parse_record(sb.sb.data, n, &v), 0);
    assert_int_equal(v.n_settings, 2);
    for (size_t cut = 0; cut < n; cut++) {
        char *p = malloc(cut ? cut : 1); /* exact size: ASan catches any overread */
        memcpy(p, sb.sb.data, cut);
        assert_int_equal(wal_env_parse_record(p, cut, &v), WAL_ECORRUPT);
        free(p);
    }
    srand(42);
    char *p = malloc(n);
    for (int round = 0; round < 20000; round++) {
        memcpy(p, sb.sb.data, n);
        for (int k = 0; k < 1 + round % 4; k++) p[rand() % n] = (char)rand();
        if (wal_env_parse_record(p, n, &v) == 0) {
            /* whatever decoded must be copyable within its computed size */
            size_t sz = wal_env_copy_size(&v);
            char *chars = malloc(sz);
            wal_kv_t *kv = calloc(v.n_settings + 1, sizeof *kv), *kv0 = kv;
            char *c0 = chars;
            wal_record_t r;
            wal_env_to_record(&v, 1, n, &r, &kv, &chars);
            assert_true((size_t)(chars - c0) <= sz);
            free(c0);
            free(kv0);
        }
    }
    free(p);
    msgpack_sbuffer_destroy(&sb.sb);
}

/* A DLQ entry from a damaged or foreign file may lack db and error (both become ""): the
 * arena copy still fits in wal_env_copy_size (found by fuzz_envelope; seed dlq_no_db_no_error). */
static void test_dlq_entry_without_db_and_error_fits_its_copy_size(void **state)
{
    (void)state;
    /* {"sink":"s","table":"t","rows":bin "{}\n","nrows":1} */
    static const char env[] = "\x84\xa4sink\xa1s\xa5table\xa1t\xa4rows\xc4\x03{}\n"
                              "\xa5nrows\x01";
    wal_env_view_t v;
    assert_int_equal(wal_env_parse_dlq(env, sizeof env - 1, &v), 0);
    size_t sz = wal_env_copy_size(&v);
    char *chars = malloc(sz), *c0 = chars; /* exact size: ASan sees one byte more */
    wal_kv_t *kv = NULL;
    wal_dlq_entry_t e;
    wal_env_to_dlq(&v, 1, &e, &kv, &chars);
    assert_true((size_t)(chars - c0) <= sz);
    assert_string_equal(e.db, "");
    assert_string_equal(e.error, "");
    assert_string_equal(e.table, "t");
    free(c0);
}

/* ---- read-only open and CLI ---- */

/* What `sluice wal dump [--from from] [--limit limit]` prints (malloc'ed). */
static char *dump_text(const char *dir, uint64_t from, uint64_t limit)
{
    /* Not open_memstream: gcc -O3 sees its buffer pointer as a local that escapes. */
    FILE *out = tmpfile();
    assert_non_null(out);
    assert_int_equal(wal_print_dump(dir, from, limit, out, stderr), 0);
    long n = ftell(out);
    assert_true(n >= 0);
    char *buf = malloc((size_t)n + 1);
    rewind(out);
    assert_int_equal(fread(buf, 1, (size_t)n, out), (size_t)n);
    buf[n] = '\0';
    fclose(out);
    return buf;
}

/* `wal dump` of formats that are not one JSON value per line: each record names its format;
 * text (CSV with its header rows) is one JSON string, binary (RowBinary) base64, a JSON
 * family with header rows gets "header" as an array. Each line must parse as JSON. */
static void test_cli_dumps_every_format(void **state)
{
    fx_t *f = *state;
    open_ok(f);
    static const char bin[] = {0x01, 0x00, (char)0xff, (char)0xfe, 'a', 0x00};
    wal_insert_t ins[] = {
        {.table = "t", .fmt = "CSVWithNames", .hdr = "\"a\",\"b\"\n", .hdr_len = 8,
         .rows = "1,\"x\ty\"\n2,\"\"\n", .rows_len = 13, .n_rows = 2},
        {.table = "t", .fmt = "RowBinary", .rows = bin, .rows_len = sizeof bin, .n_rows = 1,
         .whole = 1},
        {.table = "t", .fmt = "JSONCompactEachRowWithNames", .hdr = "[\"a\"]\n", .hdr_len = 6,
         .rows = "[1]\n[2]\n", .rows_len = 8, .n_rows = 2},
    };
    for (size_t i = 0; i < 3; i++) assert_int_equal(wal_append_wait(f->w, &ins[i], NULL, NULL), 0);
    assert_int_equal(wal_flush(f->w), 0);
    char *buf = dump_text(f->dir, 0, 0);
    assert_contains(buf, "\"format\":\"CSVWithNames\",\"settings\":{},\"n_rows\":2,"
                         "\"header\":\"\\\"a\\\",\\\"b\\\"\\n\",\"data\":\"1,\\\"x\\u0009y\\\"\\n2,\\\"\\\"\\n\"}\n");
    /* 01 00 ff fe 61 00 */
    assert_contains(buf, "\"format\":\"RowBinary\",\"settings\":{},\"n_rows\":1,"
                         "\"data_base64\":\"AQD//mEA\"}\n");
    assert_contains(buf, "\"format\":\"JSONCompactEachRowWithNames\",\"settings\":{},"
                         "\"n_rows\":2,\"header\":[[\"a\"]],\"rows\":[[1],[2]]}\n");
    free(buf);
}

static void test_cli_reads_while_log_is_open(void **state)
{
    fx_t *f = *state;
    open_ok(f);
    wal_kv_t set = {"k", "v\"q"};
    wal_insert_t ins = {.db = "d", .table = "t", .columns = "a", .settings = &set,
                        .n_settings = 1, .rows = "{\"a\":1}\n{\"a\":2}\n", .rows_len = 16,
                        .n_rows = 2, .ts_ms = 9};
    assert_int_equal(wal_append_wait(f->w, &ins, NULL, NULL), 0);
    assert_int_equal(append_rows(f->w, "u", "{\"b\":\"x\\ny\"}\n", NULL, NULL), 0);
    wal_consumer_t c = {"ch", 0, 0};
    assert_int_equal(wal_set_consumers(f->w, &c, 1), 0);
    wal_cursor_t cur = {0, 1, 2};
    assert_int_equal(wal_cursor_commit(f->w, "ch", &cur, NULL, 0), 0);
    /* Another process sees the log as of the running writer's last checkpoint. */
    assert_int_equal(wal_flush(f->w), 0);

    char *buf = dump_text(f->dir, 0, 0);
    size_t len;
    assert_prefix(
        buf, "{\"seq\":1,\"ts_ms\":9,\"db\":\"d\",\"table\":\"t\",\"columns\":\"a\",\"target\":null,"
             "\"format\":\"JSONEachRow\",\"settings\":{\"k\":\"v\\\"q\"},\"n_rows\":2,\"rows\":[{\"a\":1},{\"a\":2}]}\n"
             "{\"seq\":2,");
    free(buf);
    buf = dump_text(f->dir, 2, 1);
    assert_non_null(strstr(buf, "\"rows\":[{\"b\":\"x\\ny\"}]}\n"));
    assert_int_equal(strncmp(buf, "{\"seq\":2,", 9), 0);
    free(buf);

    FILE *out = open_memstream(&buf, &len);
    assert_int_equal(wal_print_stats(f->dir, out, stderr), 0);
    fclose(out);
    assert_contains(buf, "records:      2\n");
    assert_contains(buf, "first seq:    1\n");
    assert_contains(buf, "last seq:     2\n");
    assert_contains(buf, "ch");
    assert_contains(buf, "inflight 1-2");
    char id[32];
    snprintf(id, sizeof id, "%016" PRIx64, wal_log_id(f->w));
    assert_contains(buf, id);
    free(buf);

    /* Still writable after the CLI looked. */
    assert_int_equal(append_rows(f->w, "t", "{}\n", NULL, NULL), 0);
    assert_int_equal(wal_flush(f->w), 0); /* a reader sees what is checkpointed */
    wal_t *ro;
    char err[512];
    assert_int_equal(wal_open_readonly(&ro, f->dir, err, sizeof err), 0);
    assert_int_equal(wal_last_seq(ro), 3);
    assert_int_equal(wal_append_wait(ro, &ins, NULL, NULL), -EROFS);
    wal_close(ro);

    FILE *devnull = fopen("/dev/null", "w");
    assert_int_equal(wal_print_stats("/nonexistent/sluice", devnull, devnull), 1);
    fclose(devnull);
}

/* ---- sync modes, close ---- */

static void test_sync_modes_keep_data_across_clean_close(void **state)
{
    fx_t *f = *state;
    cfg_sync_t modes[2] = {CFG_SYNC_INTERVAL, CFG_SYNC_NONE};
    for (int m = 0; m < 2; m++) {
        f->cfg.sync = modes[m];
        f->cfg.sync_interval_ms = 10;
        open_ok(f);
        uint64_t base = wal_last_seq(f->w);
        for (int i = 0; i < 20; i++)
            assert_int_equal(append_rows(f->w, "t", "{}\n", NULL, NULL), 0);
        if (modes[m] == CFG_SYNC_INTERVAL) {
            for (int i = 0; i < 500 && stats(f->w).fsyncs == 0; i++) usleep(1000);
            assert_true(stats(f->w).fsyncs >= 1);
        } else {
            assert_int_equal(stats(f->w).fsyncs, 0);
        }
        reopen(f);
        assert_int_equal(wal_last_seq(f->w), base + 20);
        wal_close(f->w);
        f->w = NULL;
    }
}

typedef struct {
    int calls, status;
} slot_t;

static void count_cb(void *ctx, int status, uint64_t a, uint64_t b)
{
    (void)a, (void)b;
    slot_t *slot = ctx;
    slot->calls++;
    slot->status = status;
}

static void test_close_commits_everything_queued(void **state)
{
    fx_t *f = *state;
    open_ok(f);
    slot_t *c = calloc(200, sizeof *c);
    wal_insert_t ins = {.table = "t", .rows = "{}\n", .rows_len = 3, .n_rows = 1};
    for (int i = 0; i < 200; i++) assert_int_equal(wal_append(f->w, &ins, count_cb, &c[i]), 0);
    wal_close(f->w);
    f->w = NULL;
    for (int i = 0; i < 200; i++) {
        assert_int_equal(c[i].calls, 1);
        assert_int_equal(c[i].status, 0);
    }
    open_ok(f);
    wal_stats_t st = stats(f->w);
    assert_int_equal(st.records, 200);
    free(c);
}

static void test_stats_count_groups(void **state)
{
    fx_t *f = *state;
    open_ok(f);
    for (int i = 0; i < 10; i++) assert_int_equal(append_rows(f->w, "t", "{}\n{}\n", NULL, NULL), 0);
    wal_stats_t st = stats(f->w);
    assert_int_equal(st.appends, 10);
    assert_int_equal(st.appended_rows, 20);
    assert_true(st.commits >= 10);
#ifdef SLUICE_WAL_META_SYNC
    /* One at a time, no commit follows: data flush + meta flush each. */
    assert_int_equal(st.fsyncs, 2 * st.commits);
#else
    /* The journal: one flush per group; a checkpoint (LMDB commit) costs one more, and its
     * meta flush at most one. */
    assert_int_equal(st.commits, 10);
    assert_true(st.fsyncs >= st.commits + st.checkpoints);
    assert_true(st.fsyncs <= st.commits + 2 * st.checkpoints);
#endif
    uint64_t groups = 0;
    for (int i = 0; i < 8; i++) groups += st.group_hist[i];
    assert_int_equal(groups, 10);
    assert_int_equal(st.group_hist[0], 10); /* one at a time: 1 request per commit */
}

typedef struct {
    wal_t *w;
    int n, rc;
} burst_t;

static void *burst_append(void *arg)
{
    burst_t *b = arg;
    for (int i = 0; i < b->n && b->rc == 0; i++)
        b->rc = append_rows(b->w, "t", "{\"a\":1}\n", NULL, NULL);
    return NULL;
}

/* Concurrent appends: a commit that follows flushes the previous one's meta page, so the
 * log needs fewer than the two flushes per commit of a lone append (and acks stay durable:
 * test_wal_crash checks that under power cuts). */
static void test_overlapping_commits_share_flushes(void **state)
{
    fx_t *f = *state;
    open_ok(f);
    burst_t b[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        b[i] = (burst_t){.w = f->w, .n = 200};
        pthread_create(&th[i], NULL, burst_append, &b[i]);
    }
    for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 8; i++) assert_int_equal(b[i].rc, 0);
    wal_stats_t st = stats(f->w);
    assert_int_equal(st.appends, 1600);
    assert_int_equal(st.last_seq, 1600);
    fprintf(stderr, "overlapping appends: %" PRIu64 " commits, %" PRIu64 " flushes\n",
            st.commits, st.fsyncs);
#ifdef SLUICE_WAL_META_SYNC
    assert_int_equal(st.fsyncs, 2 * st.commits);
#else
    assert_true(st.fsyncs < 2 * st.commits);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_read_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_appends_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_request_is_atomic_and_contiguous, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cursor_persists_across_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncation_never_passes_a_cursor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_sink_start_is_a_whole_second, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_rejects_then_accepts_after_truncation, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_block_mode_waits_then_succeeds_after_cursor_advance,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop_oldest_records_a_gap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dlq_put_list_replay_drop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_put_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_garbage_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_truncated_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_foreign_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_foreign_plain_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_meta_without_magic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_newer_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_record_reads_as_corrupt, setup, teardown),
        cmocka_unit_test(test_envelope_decoder_survives_damage),
        cmocka_unit_test(test_dlq_entry_without_db_and_error_fits_its_copy_size),
        cmocka_unit_test_setup_teardown(test_cli_dumps_every_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_reads_while_log_is_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_modes_keep_data_across_clean_close, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_close_commits_everything_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_count_groups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overlapping_commits_share_flushes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
