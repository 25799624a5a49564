/* test_wal_crash.c — acked means durable, under kill -9 and under power cuts (see
 * test_acked_appends_survive_power_cut and tests/crash/powercut.c). The test re-executes
 * itself as a child that appends from several threads (sync: always) and reports every acknowledged
 * request (seq range, content hash) on a pipe after its ack; the parent kills it at a random
 * moment, reopens the log and checks each acknowledged request is there byte for byte, and
 * that every request in the log is whole (split requests are all-or-nothing). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

#include "wal/wal.h"

#define ROUNDS 50
/* Appending threads in the child; SLUICE_CRASH_THREADS (up to MAX_THREADS) drives larger
 * groups, where the syncer leaves the meta flush to the writer (wal/writer.c). */
#define MAX_THREADS 64
static int crash_threads(void)
{
    const char *e = getenv("SLUICE_CRASH_THREADS");
    int n = e ? atoi(e) : 0;
    return n > 0 && n <= MAX_THREADS ? n : 6;
}
#define MAX_RECORD 2048 /* small, so that many requests are split into several records */

typedef struct {
    uint64_t first, last, hash;
} ack_t;

static uint64_t fnv(const void *p, size_t n, uint64_t h)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ull;
    return h;
}
#define FNV0 14695981039346656037ull

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static cfg_wal_t crash_cfg(const char *dir)
{
    return (cfg_wal_t){.dir = (char *)dir, .max_bytes = 1ull << 30,
                       .max_record_bytes = MAX_RECORD, .sync = CFG_SYNC_ALWAYS,
                       .sync_interval_ms = 100, .when_full = CFG_FULL_REJECT,
                       .block_timeout_ms = 1000, .truncate_chunk = 1000};
}

/* ---- child ---- */

typedef struct {
    wal_t *w;
    int fd;
    uint64_t seed;
} child_arg_t;

/* Rows of one request: every row names the request and its row count, so the parent can
 * tell a whole request from a torn one. */
static size_t make_request(uint64_t *s, const char *id, char *buf, size_t cap, uint32_t *n_rows)
{
    uint32_t n = 1 + (uint32_t)(rnd(s) % (rnd(s) % 4 == 0 ? 40 : 3));
    size_t len = 0;
    if (rnd(s) % 16 == 0) { /* a row of 66-130 KiB: a record the journal writes in place */
        size_t pad = (66u << 10) + (size_t)(rnd(s) % (64u << 10));
        len = (size_t)snprintf(buf, cap, "{\"r\":\"%s\",\"n\":%u,\"i\":0,\"p\":\"", id, n);
        memset(buf + len, 'y', pad);
        len += pad;
        len += (size_t)snprintf(buf + len, cap - len, "\"}\n");
    }
    for (uint32_t i = len ? 1 : 0; i < n && len + 1200 < cap; i++) {
        int pad = (int)(rnd(s) % 300);
        len += (size_t)snprintf(buf + len, cap - len, "{\"r\":\"%s\",\"n\":%u,\"i\":%u,\"p\":\"%.*s\"}\n",
                                id, n, i, pad,
                                "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                                "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                                "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                                "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    }
    *n_rows = n;
    return len;
}

static void *child_thread(void *arg)
{
    child_arg_t *a = arg;
    uint64_t s = a->seed;
    static __thread char buf[256 << 10];
    for (uint64_t i = 0;; i++) {
        char id[64];
        snprintf(id, sizeof id, "%" PRIx64 "-%" PRIu64, a->seed, i);
        uint32_t n;
        size_t len = make_request(&s, id, buf, sizeof buf, &n);
        wal_insert_t ins = {.db = "crash", .table = "t", .rows = buf, .rows_len = len,
                            .n_rows = n};
        ack_t ack;
        int rc = wal_append_wait(a->w, &ins, &ack.first, &ack.last);
        if (rc != 0) {
            fprintf(stderr, "child: append failed: %s\n", wal_strerror(rc));
            _exit(3);
        }
        /* Reported only after the ack: the parent may rely on it being durable. */
        ack.hash = fnv(buf, len, FNV0);
        if (write(a->fd, &ack, sizeof ack) != (ssize_t)sizeof ack) _exit(4);
    }
    return NULL;
}

/* A sink's cursor commits beside the appends (name not declared as a consumer, so nothing is
 * truncated under the check): the in-flight range, then the delivered mark, each reported
 * after its ack as {first 0, last = acked}. */
#define CRASH_SINK "crash-sink"
static void *cursor_thread(void *arg)
{
    child_arg_t *a = arg;
    wal_cursor_t cur = {0};
    if (wal_cursor_get(a->w, CRASH_SINK, &cur) != 0) memset(&cur, 0, sizeof cur);
    uint64_t after = cur.acked;
    for (;;) {
        if (wal_wait(a->w, after, 20) != 0) continue;
        uint64_t last = wal_last_seq(a->w);
        wal_cursor_t inflight = {after, after + 1, last}, done = {last, 0, 0};
        ack_t ack = {0, after, 0};
        if (wal_cursor_commit(a->w, CRASH_SINK, &inflight, NULL, 0) != 0) _exit(6);
        if (write(a->fd, &ack, sizeof ack) != (ssize_t)sizeof ack) _exit(4);
        if (wal_cursor_commit(a->w, CRASH_SINK, &done, NULL, 0) != 0) _exit(6);
        ack.last = last;
        if (write(a->fd, &ack, sizeof ack) != (ssize_t)sizeof ack) _exit(4);
        after = last;
    }
    return NULL;
}

static int child_main(const char *dir, int fd, uint64_t seed)
{
    cfg_wal_t cfg = crash_cfg(dir);
    char err[1024];
    wal_t *w;
    if (wal_open(&w, &cfg, err, sizeof err)) {
        fprintf(stderr, "child: %s\n", err);
        return 2;
    }
    int threads = crash_threads();
    child_arg_t args[MAX_THREADS];
    pthread_t th[MAX_THREADS];
    for (int i = 0; i < threads; i++) {
        args[i] = (child_arg_t){w, fd, seed * 1000 + (uint64_t)i + 1};
        pthread_create(&th[i], NULL, child_thread, &args[i]);
    }
    child_arg_t carg = {w, fd, seed};
    pthread_t cth;
    pthread_create(&cth, NULL, cursor_thread, &carg);
    for (int i = 0; i < threads; i++) pthread_join(th[i], NULL); /* killed before this ends */
    return 0;
}

/* ---- parent ---- */

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void read_acks(int fd, ack_t **acks, size_t *n, size_t *cap, char *part, size_t *plen)
{
    char buf[4096];
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < r; i++) {
            part[(*plen)++] = buf[i];
            if (*plen == sizeof(ack_t)) {
                if (*n == *cap) {
                    *cap = *cap ? *cap * 2 : 1024;
                    *acks = realloc(*acks, *cap * sizeof **acks);
                }
                memcpy(&(*acks)[(*n)++], part, sizeof(ack_t));
                *plen = 0;
            }
        }
    }
}

/* Every request in (after, end] is whole: its records are contiguous and hold n rows. */
static void check_requests_whole(wal_t *w, uint64_t after, uint64_t *records)
{
    char cur[64] = "";
    uint32_t want = 0, got = 0;
    for (;;) {
        wal_batch_t b;
        assert_int_equal(wal_read(w, after, 2000, 8u << 20, &b), 0);
        if (b.n == 0) break;
        for (size_t i = 0; i < b.n; i++) {
            const char *r = b.recs[i].rows;
            char id[64];
            unsigned n;
            assert_int_equal(sscanf(r, "{\"r\":\"%63[^\"]\",\"n\":%u", id, &n), 2);
            if (strcmp(id, cur) != 0) {
                assert_int_equal(got, want); /* previous request complete */
                snprintf(cur, sizeof cur, "%s", id);
                want = n;
                got = 0;
            }
            got += b.recs[i].n_rows;
            (*records)++;
        }
        after = b.recs[b.n - 1].seq;
        wal_batch_free(&b);
    }
    assert_int_equal(got, want);
}

/* An acked cursor commit {0, acked}: the cursor is there, at least that far. */
static int cursor_kept(wal_t *w, const ack_t *a)
{
    wal_cursor_t c;
    if (wal_cursor_get(w, CRASH_SINK, &c) != 0) return a->last == 0;
    if (c.acked < a->last)
        fprintf(stderr, "acked cursor %" PRIu64 " came back as %" PRIu64 "\n", a->last, c.acked);
    return c.acked >= a->last;
}

static void verify_acks(wal_t *w, const ack_t *acks, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        wal_batch_t b;
        const ack_t *a = &acks[i];
        if (a->first == 0) {
            assert_true(cursor_kept(w, a));
            continue;
        }
        assert_true(a->first >= 1 && a->last >= a->first);
        assert_int_equal(wal_read(w, a->first - 1, a->last - a->first + 1, 0, &b), 0);
        assert_int_equal(b.n, a->last - a->first + 1);
        uint64_t h = FNV0;
        for (size_t j = 0; j < b.n; j++) {
            assert_int_equal(b.recs[j].seq, a->first + j);
            h = fnv(b.recs[j].rows, b.recs[j].rows_len, h);
        }
        if (h != a->hash)
            fprintf(stderr, "acked request %" PRIu64 "-%" PRIu64 " differs\n", a->first, a->last);
        assert_true(h == a->hash);
        wal_batch_free(&b);
    }
}

static void test_acked_appends_survive_kill_9(void **state)
{
    (void)state;
    char base[] = "/tmp/sluice-wal-crash-XXXXXX";
    assert_non_null(mkdtemp(base));
    char dir[300];
    snprintf(dir, sizeof dir, "%s/log", base);
    uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20), s = seed;
    fprintf(stderr, "crash test seed %" PRIu64 "\n", seed);
    ack_t *acks = NULL;
    size_t n_acks = 0, cap = 0, killed_with_acks = 0;
    uint64_t last_seen = 0;

    for (int round = 0; round < ROUNDS; round++) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        char fdarg[16], seedarg[32];
        snprintf(fdarg, sizeof fdarg, "%d", p[1]);
        snprintf(seedarg, sizeof seedarg, "%" PRIu64, seed + (uint64_t)round);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            execl("/proc/self/exe", "test_wal_crash", "--crash-child", dir, fdarg, seedarg,
                  (char *)NULL);
            _exit(127);
        }
        close(p[1]);
        fcntl(p[0], F_SETFL, O_NONBLOCK);
        size_t before = n_acks, plen = 0;
        char part[sizeof(ack_t)];
        /* Kill at a random moment: every 8th round during startup, the others under load
         * (0-150 ms after the first ack, however slow the child is to start). */
        int startup = round % 8 == 0;
        int delay = startup ? (int)(rnd(&s) % 30) : (int)(rnd(&s) % 150);
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int armed = startup;
        for (;;) {
            clock_gettime(CLOCK_MONOTONIC, &t);
            long ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
            if (!armed && (n_acks > before || ms > 10000)) {
                armed = 1;
                t0 = t;
                ms = 0;
            }
            if (armed && ms >= delay) break;
            struct pollfd pfd = {p[0], POLLIN, 0};
            poll(&pfd, 1, armed ? (int)(delay - ms) : 10);
            read_acks(p[0], &acks, &n_acks, &cap, part, &plen);
        }
        kill(pid, SIGKILL);
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL))
            fprintf(stderr, "child exited early: status %d\n", st);
        assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        read_acks(p[0], &acks, &n_acks, &cap, part, &plen); /* what it wrote before dying */
        close(p[0]);
        assert_int_equal(plen, 0); /* acks are written whole (< PIPE_BUF) */
        if (n_acks > before) killed_with_acks++;

        struct stat sb;
        char data[320];
        snprintf(data, sizeof data, "%s/data.mdb", dir);
        if (stat(data, &sb) != 0) { /* killed before the log existed: nothing acked */
            assert_int_equal(n_acks, 0);
            continue;
        }
        cfg_wal_t cfg = crash_cfg(dir);
        char err[1024] = "";
        wal_t *w;
        int rc = wal_open(&w, &cfg, err, sizeof err);
        if (rc) fprintf(stderr, "reopen after kill: %s\n", err);
        assert_int_equal(rc, 0);
        verify_acks(w, acks + before, n_acks - before);
        uint64_t records = 0;
        check_requests_whole(w, last_seen, &records);
        last_seen = wal_last_seq(w);
        wal_close(w);
    }
    /* Finally every ack of every round, once more. */
    cfg_wal_t cfg = crash_cfg(dir);
    char err[1024];
    wal_t *w;
    assert_int_equal(wal_open(&w, &cfg, err, sizeof err), 0);
    verify_acks(w, acks, n_acks);
    wal_close(w);
    fprintf(stderr, "crash test: %d rounds, %zu acked requests checked, %zu rounds killed "
                    "with acks in flight\n", ROUNDS, n_acks, killed_with_acks);
    assert_true(killed_with_acks >= ROUNDS / 2);
    free(acks);
    nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- power cut ---- */

/* SLUICE_CRASH_ROUNDS raises it for long runs (CI keeps the default). */
static size_t power_rounds(void)
{
    const char *e = getenv("SLUICE_CRASH_ROUNDS");
    int n = e ? atoi(e) : 0;
    return n > 0 ? (size_t)n : 40;
}
#define POWER_ROUNDS power_rounds()

static int expect_loss; /* --expect-loss: a build that acks too early; the harness must see it */

/* Acks of [acks, acks+n) missing or different in w (counted, not asserted). */
static size_t count_lost(wal_t *w, const ack_t *acks, size_t n)
{
    size_t lost = 0;
    for (size_t i = 0; i < n; i++) {
        wal_batch_t b;
        const ack_t *a = &acks[i];
        if (a->first == 0) {
            lost += !cursor_kept(w, a);
            continue;
        }
        if (wal_read(w, a->first - 1, a->last - a->first + 1, 0, &b) != 0) {
            lost++;
            continue;
        }
        uint64_t h = FNV0;
        for (size_t j = 0; j < b.n; j++) h = fnv(b.recs[j].rows, b.recs[j].rows_len, h);
        lost += b.n != a->last - a->first + 1 || h != a->hash;
        wal_batch_free(&b);
    }
    return lost;
}

static int copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    char buf[1 << 16];
    ssize_t r = in < 0 || out < 0 ? -1 : 0;
    while (r == 0 && (r = read(in, buf, sizeof buf)) > 0)
        r = write(out, buf, (size_t)r) == r ? 0 : -1;
    if (in >= 0) close(in);
    if (out >= 0 && fsync(out)) r = -1;
    if (out >= 0) close(out);
    return (int)r;
}

/* Acked means durable, under power loss: the child runs under tests/crash/powercut.c, which
 * at a random write or flush of data.mdb or of a journal segment writes the images the disk
 * could hold after losing power there (per file, only what completed flushes of that file
 * covered, plus a random torn subset of the rest) and kills the child. The parent puts the
 * images in place, reopens the log (it must open cleanly: the journal puts back what LMDB
 * lost) and checks every acked request byte for byte. */
static void test_acked_appends_survive_power_cut(void **state)
{
    (void)state;
    const char *shim = getenv("SLUICE_POWERCUT");
    if (!shim) fprintf(stderr, "SLUICE_POWERCUT (path of libsluice_powercut.so) is not set\n");
    assert_non_null(shim);
    char base[] = "/tmp/sluice-wal-power-XXXXXX";
    assert_non_null(mkdtemp(base));
    char dir[300], data[320], image[320], lock[320], watch[1000], jimg[2][340], jfile[2][320];
    snprintf(dir, sizeof dir, "%s/log", base);
    snprintf(data, sizeof data, "%s/data.mdb", dir);
    /* The journal's segments too (wal/journal.c): each has its own flushes. */
    for (int i = 0; i < 2; i++) {
        snprintf(jfile[i], sizeof jfile[i], "%s/journal.%d", dir, i);
        snprintf(jimg[i], sizeof jimg[i], "%s/image.mdb.%d", base, i + 1);
    }
    snprintf(watch, sizeof watch, "%s:%s:%s", data, jfile[0], jfile[1]);
    snprintf(lock, sizeof lock, "%s/lock.mdb", dir);
    snprintf(image, sizeof image, "%s/image.mdb", base);
    uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20), s = seed;
    fprintf(stderr, "power-cut test seed %" PRIu64 "\n", seed);
    cfg_wal_t cfg = crash_cfg(dir);
    char err[1024] = "";
    wal_t *w;
    assert_int_equal(wal_open(&w, &cfg, err, sizeof err), 0); /* created (and synced) here */
    wal_close(w);

    ack_t *acks = NULL;
    size_t n_acks = 0, cap = 0, cut_with_acks = 0, lost = 0, earlier_acks = 0;
    uint64_t last_seen = 0;
    size_t round;
    for (round = 0; round < POWER_ROUNDS && !(expect_loss && lost); round++) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        char fdarg[16], seedarg[32], at[32], asan[512];
        snprintf(fdarg, sizeof fdarg, "%d", p[1]);
        snprintf(seedarg, sizeof seedarg, "%" PRIu64, seed + (uint64_t)round);
        /* Mostly under load; every 5th round among the first calls (open, first commits). */
        snprintf(at, sizeof at, "%" PRIu64, 1 + rnd(&s) % (round % 5 == 0 ? 12 : 1500));
        const char *asan0 = getenv("ASAN_OPTIONS");
        snprintf(asan, sizeof asan, "%s%sverify_asan_link_order=0", asan0 ? asan0 : "",
                 asan0 ? ":" : "");
        unlink(image);
        unlink(jimg[0]);
        unlink(jimg[1]);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            setenv("LD_PRELOAD", shim, 1);
            setenv("ASAN_OPTIONS", asan, 1);
            setenv("POWERCUT_FILE", watch, 1);
            setenv("POWERCUT_IMAGE", image, 1);
            setenv("POWERCUT_AT", at, 1);
            setenv("POWERCUT_SEED", seedarg, 1);
            setenv("POWERCUT_MODE", round % 3 == 2 ? "drop" : "sectors", 1);
            execl("/proc/self/exe", "test_wal_crash", "--crash-child", dir, fdarg, seedarg,
                  (char *)NULL);
            _exit(127);
        }
        close(p[1]);
        size_t before = n_acks, plen = 0;
        char part[sizeof(ack_t)];
        /* The child dies by the cut; blocking reads end at EOF when it is gone. */
        read_acks(p[0], &acks, &n_acks, &cap, part, &plen);
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        close(p[0]);
        if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL))
            fprintf(stderr, "child did not die by the power cut: status %d\n", st);
        assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        assert_int_equal(plen, 0);
        if (n_acks > before) cut_with_acks++;

        /* The machine comes back with the disk image; the lock file's reader table is
         * rebuilt by the first opener anyway. */
        assert_int_equal(copy_file(image, data), 0);
        for (int i = 0; i < 2; i++)
            if (access(jimg[i], F_OK) == 0) assert_int_equal(copy_file(jimg[i], jfile[i]), 0);
        unlink(lock);
        err[0] = 0;
        int rc = wal_open(&w, &cfg, err, sizeof err);
        if (rc) fprintf(stderr, "reopen after power cut (round %zu): %s\n", round, err);
        assert_int_equal(rc, 0);
        if (expect_loss) {
            lost += count_lost(w, acks + before, n_acks - before);
        } else {
            verify_acks(w, acks + before, n_acks - before);
            uint64_t records = 0;
            check_requests_whole(w, last_seen, &records);
            last_seen = wal_last_seq(w);
            wal_stats_t st;
            if (wal_stats(w, &st) == 0 && st.live_bytes > cfg.max_bytes / 2) {
                /* A long run (SLUICE_CRASH_ROUNDS) would fill the log: check every ack so
                 * far once more, then go on with a new one. */
                verify_acks(w, acks, n_acks);
                wal_close(w);
                nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
                assert_int_equal(wal_open(&w, &cfg, err, sizeof err), 0);
                earlier_acks += n_acks;
                n_acks = 0;
                last_seen = 0;
            }
        }
        wal_close(w);
    }
    fprintf(stderr, "power-cut test: %zu rounds, %zu acked requests, %zu rounds cut with acks "
                    "in flight, %zu acked requests lost\n", round, earlier_acks + n_acks,
            cut_with_acks, lost);
    if (expect_loss) {
        assert_true(lost > 0); /* this build acks before the meta page is flushed */
    } else {
        assert_int_equal(wal_open(&w, &cfg, err, sizeof err), 0);
        verify_acks(w, acks, n_acks);
        wal_close(w);
        assert_true(cut_with_acks >= POWER_ROUNDS / 2);
    }
    free(acks);
    nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--crash-child") == 0)
        return child_main(argv[2], atoi(argv[3]), strtoull(argv[4], NULL, 10));
    /* --power-only: the two-flush and the broken builds run just the power-cut test. */
    int power_only = argc > 1 && strcmp(argv[1], "--power-only") == 0;
    expect_loss = argc > 1 && strcmp(argv[1], "--expect-loss") == 0;
    const struct CMUnitTest all[] = {
        cmocka_unit_test(test_acked_appends_survive_kill_9),
        cmocka_unit_test(test_acked_appends_survive_power_cut),
    };
    const struct CMUnitTest power[] = {
        cmocka_unit_test(test_acked_appends_survive_power_cut),
    };
    if (power_only || expect_loss) return cmocka_run_group_tests(power, NULL, NULL);
    return cmocka_run_group_tests(all, NULL, NULL);
}
