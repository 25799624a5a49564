/* test_wal_journal.c — the append journal of sync: always (wal/journal.c): what a stop
 * without wal_close leaves in the journal only is put back at the next open, whole requests
 * only, damaged tails are cut at the first record that does not check, and a start with
 * another sync mode still puts it back (then removes the journal). A child process appends
 * with checkpoint_ms so large that no LMDB commit happens, then exits without closing: its
 * acked records are in the journal and nowhere else (a read-only open sees none of them). */
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>
#include <zlib.h>

#include "wal/wal.h"

#define N_REQ 40

typedef struct {
    char base[64];
    char dir[128];
} fx_t;

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    snprintf(f->base, sizeof f->base, "/tmp/sluice-journal-XXXXXX");
    if (!mkdtemp(f->base)) return -1;
    snprintf(f->dir, sizeof f->dir, "%s/log", f->base);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    nftw(f->base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static cfg_wal_t jcfg(const char *dir, cfg_sync_t sync)
{
    return (cfg_wal_t){.dir = (char *)dir, .max_bytes = 64u << 20, .max_record_bytes = 1024,
                       .sync = sync, .sync_interval_ms = 100, .checkpoint_ms = 60000,
                       .when_full = CFG_FULL_REJECT, .block_timeout_ms = 1000,
                       .truncate_chunk = 1000};
}

/* Request i: its rows (request 7 and every 10th are several records: > max_record_bytes). */
static size_t request_rows(int i, char *buf, size_t cap)
{
    int n = i % 10 == 7 ? 30 : 2;
    size_t len = 0;
    for (int r = 0; r < n; r++)
        len += (size_t)snprintf(buf + len, cap - len,
                                "{\"req\":%d,\"row\":%d,\"pad\":\"%060d\"}\n", i, r, r);
    return len;
}

/* A child appends N_REQ requests (each acked) and stops without wal_close. */
static void unclean_stop(const char *dir)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        cfg_wal_t cfg = jcfg(dir, CFG_SYNC_ALWAYS);
        char err[512];
        wal_t *w;
        if (wal_open(&w, &cfg, err, sizeof err)) _exit(2);
        wal_consumer_t cons = {"s", 0, 0};
        if (wal_set_consumers(w, &cons, 1)) _exit(4); /* committed at once (not journaled) */
        char buf[8192];
        for (int i = 1; i <= N_REQ; i++) {
            size_t len = request_rows(i, buf, sizeof buf);
            wal_insert_t ins = {.db = "d", .table = "t", .rows = buf, .rows_len = len,
                                .n_rows = i % 10 == 7 ? 30 : 2};
            if (wal_append_wait(w, &ins, NULL, NULL)) _exit(3);
        }
        /* A sink's cursor commit with a dead-lettered row: journaled, acked, not in LMDB. */
        wal_cursor_t c = {5, 6, 8};
        wal_dlq_entry_t e = {.db = "d", .table = "t", .error = "refused", .rows = "{\"x\":1}\n",
                             .rows_len = 8, .n_rows = 1};
        if (wal_cursor_commit(w, "s", &c, &e, 1)) _exit(5);
        _exit(0); /* like kill -9 after the last ack: no checkpoint, no close */
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* Rows of every record in the log, concatenated, and the requests they hold. */
static char *log_rows(wal_t *w, size_t *len)
{
    size_t cap = 1 << 20, n = 0;
    char *out = malloc(cap);
    uint64_t after = 0;
    for (;;) {
        wal_batch_t b;
        assert_int_equal(wal_read(w, after, 1000, 1 << 20, &b), 0);
        if (b.n == 0) break;
        for (size_t i = 0; i < b.n; i++) {
            assert_true(n + b.recs[i].rows_len <= cap);
            memcpy(out + n, b.recs[i].rows, b.recs[i].rows_len);
            n += b.recs[i].rows_len;
            after = b.recs[i].seq;
        }
        wal_batch_free(&b);
    }
    *len = n;
    return out;
}

/* The log holds requests 1..upto exactly, in order. */
static void expect_requests(wal_t *w, int upto)
{
    size_t len, elen = 0;
    char *got = log_rows(w, &len), *want = malloc(1 << 20);
    for (int i = 1; i <= upto; i++) elen += request_rows(i, want + elen, (1 << 20) - elen);
    assert_int_equal(len, elen);
    assert_memory_equal(got, want, len);
    free(got);
    free(want);
}

static uint64_t readonly_last_seq(const char *dir)
{
    wal_t *ro;
    char err[512];
    assert_int_equal(wal_open_readonly(&ro, dir, err, sizeof err), 0);
    uint64_t s = wal_last_seq(ro);
    wal_cursor_t c;
    if (s == 0) { /* the journal-only state: the cursor commit is not in LMDB either */
        assert_int_equal(wal_cursor_get(ro, "s", &c), 0);
        assert_int_equal(c.acked, 0);
    }
    wal_close(ro);
    return s;
}

/* meta format_version of the log in dir, read as any sluice would. */
static int format_version(const char *dir)
{
    wal_t *ro;
    char err[512], buf[16];
    size_t len;
    assert_int_equal(wal_open_readonly(&ro, dir, err, sizeof err), 0);
    assert_int_equal(wal_meta_get(ro, "format_version", buf, sizeof buf, &len), 0);
    wal_close(ro);
    return atoi(buf);
}

static void test_unclean_stop_is_put_back(void **state)
{
    fx_t *f = *state;
    unclean_stop(f->dir);
    assert_int_equal(readonly_last_seq(f->dir), 0); /* acked, yet only in the journal */
    /* Marked so that a sluice older than the journal (which reads format 1 only) refuses
     * the log instead of opening it without those records. */
    assert_int_equal(format_version(f->dir), 2);
    /* `sluice wal stats` says how many acked records wait in the journal. */
    char *rep = NULL;
    size_t rep_len = 0;
    FILE *out = open_memstream(&rep, &rep_len);
    assert_int_equal(wal_print_stats(f->dir, out, stderr), 0);
    fclose(out);
    const char *jl = strstr(rep, "journal:");
    assert_non_null(jl);
    unsigned long long pending = strtoull(jl + strlen("journal:"), NULL, 10);
    free(rep);
    /* `sluice wal dump` prints them, from the journal, in seq order (and says so). */
    char *note = NULL;
    size_t note_len = 0;
    FILE *err_out = open_memstream(&note, &note_len);
    out = open_memstream(&rep, &rep_len);
    assert_int_equal(wal_print_dump(f->dir, 0, 0, out, err_out), 0);
    fclose(out);
    fclose(err_out);
    assert_true(pending > 2);
    unsigned long long lines = 0;
    for (const char *p = rep; *p; p = strchr(p, '\n') + 1) {
        char head[40];
        snprintf(head, sizeof head, "{\"seq\":%llu,", ++lines);
        assert_int_equal(strncmp(p, head, strlen(head)), 0);
    }
    assert_int_equal(lines, pending);
    assert_non_null(strstr(note, "only in the journal"));
    free(rep);
    free(note);
    out = open_memstream(&rep, &rep_len);
    assert_int_equal(wal_print_dump(f->dir, 2, 1, out, stderr), 0); /* --from 2 --limit 1 */
    fclose(out);
    assert_int_equal(strncmp(rep, "{\"seq\":2,", 9), 0);
    assert_int_equal(strchr(rep, '\n')[1], '\0'); /* one line */
    free(rep);
    cfg_wal_t cfg = jcfg(f->dir, CFG_SYNC_ALWAYS);
    char err[512];
    wal_t *w;
    assert_int_equal(wal_open(&w, &cfg, err, sizeof err), 0);
    expect_requests(w, N_REQ);
    assert_int_equal(pending, wal_last_seq(w)); /* every record put back, and only those */
    wal_cursor_t c;
    assert_int_equal(wal_cursor_get(w, "s", &c), 0);
    assert_int_equal(c.acked, 5);
    assert_int_equal(c.inflight_first, 6);
    assert_int_equal(c.inflight_last, 8);
    wal_dlq_list_t l;
    assert_int_equal(wal_dlq_list(w, "s", 0, 10, &l), 0);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.e[0].error, "refused");
    wal_dlq_free(&l);
    /* Going on after the replay: new appends follow, and survive a clean close. */
    uint64_t a, b;
    wal_insert_t ins = {.db = "d", .table = "t", .rows = "{}\n", .rows_len = 3, .n_rows = 1};
    uint64_t last = wal_last_seq(w);
    assert_int_equal(wal_append_wait(w, &ins, &a, &b), 0);
    assert_int_equal(a, last + 1);
    wal_close(w);
    assert_int_equal(readonly_last_seq(f->dir), last + 1);
    assert_int_equal(format_version(f->dir), 1); /* all in LMDB: any sluice may open it */
    out = open_memstream(&rep, &rep_len); /* a clean close leaves nothing in the journal */
    assert_int_equal(wal_print_stats(f->dir, out, stderr), 0);
    fclose(out);
    assert_null(strstr(rep, "journal:"));
    free(rep);
}

static void test_other_sync_mode_still_puts_back(void **state)
{
    fx_t *f = *state;
    unclean_stop(f->dir);
    cfg_wal_t cfg = jcfg(f->dir, CFG_SYNC_NONE);
    char err[512], path[256];
    wal_t *w;
    assert_int_equal(wal_open(&w, &cfg, err, sizeof err), 0);
    expect_requests(w, N_REQ);
    snprintf(path, sizeof path, "%s/journal.0", f->dir);
    assert_int_not_equal(access(path, F_OK), 0); /* no journal without sync: always */
    wal_close(w);
    assert_int_equal(format_version(f->dir), 1); /* replayed, journal gone: plain format */
}

/* The whole file; its size in *size. */
static unsigned char *read_file(const char *path, size_t *size)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    unsigned char *img = malloc((size_t)sb.st_size);
    assert_int_equal(pread(fd, img, (size_t)sb.st_size, 0), sb.st_size);
    close(fd);
    *size = (size_t)sb.st_size;
    return img;
}

/* Offsets of the journal entries in a segment (wal/journal.c: magic u32, len u32, epoch u64,
 * lsn u64, key u64, aux u64, crc u32, flags u32; flags bit 0 ends a unit). */
static size_t record_offsets(const char *path, size_t *offs, uint32_t *flags, size_t max)
{
    size_t size;
    unsigned char *img = read_file(path, &size);
    size_t n = 0, off = 0;
    while (off + 48 <= size && n < max && memcmp(img + off, "SLJ2", 4) == 0) {
        uint32_t len = img[off + 4] | img[off + 5] << 8 | img[off + 6] << 16 |
                       (uint32_t)img[off + 7] << 24;
        flags[n] = img[off + 44];
        offs[n++] = off;
        off += 48 + len;
    }
    free(img);
    return n;
}

static void flip_byte(const char *path, size_t off)
{
    int fd = open(path, O_RDWR);
    unsigned char c;
    assert_int_equal(pread(fd, &c, 1, (off_t)off), 1);
    c ^= 0x5a;
    assert_int_equal(pwrite(fd, &c, 1, (off_t)off), 1);
    close(fd);
}

/* A record that does not check ends the journal there: the requests before it come back
 * whole, the one it belongs to (all its records) and everything after do not. */
static void test_damaged_tail_is_cut_whole_requests_only(void **state)
{
    fx_t *f = *state;
    unclean_stop(f->dir);
    char path[256];
    snprintf(path, sizeof path, "%s/journal.0", f->dir);
    size_t offs[4096];
    uint32_t flags[4096];
    size_t n = record_offsets(path, offs, flags, 4096);
    assert_true(n > N_REQ); /* several requests are several records */
    /* Find the records of request 37 (several records): damage its second one. */
    size_t req = 0, target = 0;
    for (size_t i = 0; i < n; i++) {
        if (req == 36 && i > 0 && !(flags[i - 1] & 1) && (flags[i - 2] & 1)) {
            target = i;
            break;
        }
        if (flags[i] & 1) req++;
    }
    assert_true(target > 0);
    flip_byte(path, offs[target] + 48 + 3); /* in its payload: the crc fails */
    cfg_wal_t cfg = jcfg(f->dir, CFG_SYNC_ALWAYS);
    char err[512];
    wal_t *w;
    assert_int_equal(wal_open(&w, &cfg, err, sizeof err), 0);
    expect_requests(w, 36);
    wal_close(w);
}

/* Large records go to the journal from the request's own buffer (not copied): mixed with
 * small ones in the same groups, across segment switches (whose restamp recomputes their
 * crcs), they come back byte for byte after a stop without close. */
#define N_BIG 60

static size_t big_rows(int i, char *buf, size_t cap)
{
    int n = i % 3 == 0 ? 1 : 900; /* ~130 KiB records for two of every three requests */
    size_t len = 0;
    for (int r = 0; r < n; r++)
        len += (size_t)snprintf(buf + len, cap - len,
                                "{\"req\":%d,\"row\":%d,\"pad\":\"%0120d\"}\n", i, r, i * r);
    return len;
}

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, failed;
} acks = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};

static void on_ack(void *ctx, int status, uint64_t a, uint64_t b)
{
    (void)ctx, (void)a, (void)b;
    pthread_mutex_lock(&acks.mu);
    acks.done++;
    acks.failed += status != 0;
    pthread_cond_signal(&acks.cv);
    pthread_mutex_unlock(&acks.mu);
}

static uint64_t le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* Every entry of the segment's current epoch checks (crc over the header with its crc field
 * zeroed, then the payload); returns how many there are of at least min_len payload bytes. */
static size_t check_segment(const char *path, size_t min_len)
{
    size_t size;
    unsigned char *img = read_file(path, &size);
    size_t off = 0, big = 0;
    uint64_t epoch = le(img + 8, 8);
    while (off + 48 <= size && memcmp(img + off, "SLJ2", 4) == 0 &&
           le(img + off + 8, 8) == epoch) {
        size_t len = le(img + off + 4, 4);
        unsigned char h[48];
        memcpy(h, img + off, 48);
        memset(h + 40, 0, 4);
        uLong c = crc32(crc32(0L, Z_NULL, 0), h, 48);
        c = crc32(c, img + off + 48, (uInt)len);
        assert_int_equal((uint32_t)c, (uint32_t)le(img + off + 40, 4));
        big += len >= min_len;
        off += 48 + len;
    }
    free(img);
    return big;
}

static void test_large_records_in_place_are_put_back(void **state)
{
    fx_t *f = *state;
    size_t cap = 1 << 20;
    char *buf = malloc(cap);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        cfg_wal_t cfg = jcfg(f->dir, CFG_SYNC_ALWAYS);
        cfg.max_record_bytes = 1 << 20;
        char err[512];
        wal_t *w;
        if (wal_open(&w, &cfg, err, sizeof err)) _exit(2);
        for (int i = 1; i <= N_BIG; i++) { /* not waiting: they gather into shared groups */
            size_t len = big_rows(i, buf, cap);
            wal_insert_t ins = {.db = "d", .table = "t", .rows = buf, .rows_len = len,
                                .n_rows = i % 3 == 0 ? 1 : 900};
            wal_append(w, &ins, on_ack, NULL);
        }
        pthread_mutex_lock(&acks.mu);
        while (acks.done < N_BIG) pthread_cond_wait(&acks.cv, &acks.mu);
        int failed = acks.failed;
        pthread_mutex_unlock(&acks.mu);
        _exit(failed ? 3 : 0); /* acked, then gone without a close */
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    char path[256];
    size_t big = 0;
    for (int k = 0; k < 2; k++) { /* both segments, the one written after a switch included */
        snprintf(path, sizeof path, "%s/journal.%d", f->dir, k);
        big += check_segment(path, 64 << 10);
    }
    assert_true(big > 0);
    cfg_wal_t cfg = jcfg(f->dir, CFG_SYNC_ALWAYS);
    cfg.max_record_bytes = 1 << 20;
    char err[512];
    wal_t *w;
    assert_int_equal(wal_open(&w, &cfg, err, sizeof err), 0);
    uint64_t after = 0;
    for (int i = 1; i <= N_BIG; i++) {
        wal_batch_t b;
        assert_int_equal(wal_read(w, after, 1, 8 << 20, &b), 0);
        assert_int_equal(b.n, 1);
        size_t len = big_rows(i, buf, cap);
        assert_int_equal(b.recs[0].rows_len, len);
        assert_memory_equal(b.recs[0].rows, buf, len);
        after = b.recs[0].seq;
        wal_batch_free(&b);
    }
    wal_batch_t b;
    assert_int_equal(wal_read(w, after, 1, 8 << 20, &b), 0);
    assert_int_equal(b.n, 0);
    wal_batch_free(&b);
    wal_close(w);
    free(buf);
}

/* A request larger than a segment makes its segment grow; the next time that segment is
 * started again it is cut back to its size, and nothing acked is lost on the way. */
static void test_grown_segment_is_cut_back(void **state)
{
    fx_t *f = *state;
    cfg_wal_t cfg = jcfg(f->dir, CFG_SYNC_ALWAYS);
    cfg.max_record_bytes = 1 << 20;
    char err[512], path[2][256];
    wal_t *w;
    assert_int_equal(wal_open(&w, &cfg, err, sizeof err), 0);
    size_t cap = 6 << 20, total = 0;
    char *buf = malloc(cap);
    uint32_t n_rows = 0;
    for (size_t len = 0; len + 1100 < (5u << 20); n_rows++) /* one request of 5 MiB */
        len = total += (size_t)snprintf(buf + total, cap - total, "{\"big\":%u,\"p\":\"%01000d\"}\n",
                                        n_rows, 0);
    wal_insert_t ins = {.db = "d", .table = "t", .rows = buf, .rows_len = total,
                        .n_rows = n_rows};
    assert_int_equal(wal_append_wait(w, &ins, NULL, NULL), 0);
    struct stat sb[2];
    size_t grown = 0;
    for (int k = 0; k < 2; k++) {
        snprintf(path[k], sizeof path[k], "%s/journal.%d", f->dir, k);
        assert_int_equal(stat(path[k], &sb[k]), 0);
        grown += (size_t)sb[k].st_size > (4u << 20);
    }
    assert_int_equal(grown, 1);
    uint64_t last = 0;
    size_t small = 512u << 10; /* then 12 MiB more, in requests that fit: both segments turn */
    for (int i = 0; i < 24; i++) {
        ins.rows_len = small; /* the first 512 KiB of the big request's rows */
        ins.n_rows = 0;
        for (size_t o = 0; o < small; o++) ins.n_rows += buf[o] == '\n';
        assert_int_equal(wal_append_wait(w, &ins, NULL, &last), 0);
    }
    for (int k = 0; k < 2; k++) {
        assert_int_equal(stat(path[k], &sb[k]), 0);
        assert_true((size_t)sb[k].st_size <= (4u << 20));
    }
    wal_close(w);
    assert_int_equal(readonly_last_seq(f->dir), last); /* every acked record, after a close */
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unclean_stop_is_put_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_sync_mode_still_puts_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_tail_is_cut_whole_requests_only, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_large_records_in_place_are_put_back, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_grown_segment_is_cut_back, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
